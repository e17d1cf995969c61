"""Names: metric attribute keys, span attribute keys and the LiveKit span names we enrich.

GenAI semantic-convention keys where one exists; ``voice_agent.*`` for the voice pipeline
the conventions do not cover yet.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "voice_agent"

# --- metric attribute keys (all low-cardinality) ----------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
ERROR_TYPE: Final = "error.type"
COMPONENT: Final = "voice_agent.component"
"""Pipeline stage: llm, realtime, stt, tts, vad, eou, eot, interruption, decision, avatar."""
TURN_INPUT: Final = "voice_agent.turn.input"
TURN_ID: Final = "voice_agent.turn.id"
"""LiveKit's speech id of the agent turn: on the turn's spans, and on its histogram samples' exemplars only
(the catalogue's Views keep it off the series, so it never adds one)."""
"""How the user's turn arrived: audio (VAD/STT, has an end-of-utterance delay) or text."""
TURN_PART: Final = "voice_agent.turn.part"
"""A part of the turn's wait (metrics/budget.py ``PARTS``): endpointing, tool, llm_ttft, …"""
TURN_DOMINANT_PART: Final = "voice_agent.turn.dominant_part"
"""The part that took the most of a slow turn's wait."""
CLOSE_REASON: Final = "voice_agent.close_reason"
ERROR_RECOVERABLE: Final = "voice_agent.error.recoverable"
INTERRUPTION_KIND: Final = "voice_agent.interruption.kind"
"""interrupted (the agent's speech was cut), false (a false interruption), or the
adaptive detector's verdicts: detected, backchannel."""

# GenAI operation names
OP_CHAT: Final = "chat"
OP_REALTIME: Final = "generate_content"

# --- span names LiveKit creates ----------------------------------------------------------
SPAN_AGENT_SESSION: Final = "agent_session"
SPAN_AGENT_TURN: Final = "agent_turn"
SPAN_USER_TURN: Final = "user_turn"
SPAN_STT_REQUEST: Final = "stt_request"
"""Ours: one per STT usage report (LiveKit makes no STT span), a Langfuse generation."""
SPAN_LLM_REQUEST: Final = "llm_request"
SPAN_TTS_REQUEST: Final = "tts_request"
SPAN_REALTIME: Final = "realtime_inference"
LK_SPEECH_ID: Final = "lk.speech_id"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"

# --- span attributes we add ---------------------------------------------------------------
ATTR_LLM_DURATION: Final = "voice_agent.llm.duration"
ATTR_LLM_TTFT: Final = "voice_agent.llm.ttft"
ATTR_LLM_TOKENS_PER_SECOND: Final = "voice_agent.llm.tokens_per_second"
ATTR_COST: Final = "gen_ai.usage.cost"
"""Estimated USD cost of the request (the key Langfuse reads cost from)."""
ATTR_TTS_TTFB: Final = "voice_agent.tts.ttfb"
ATTR_TTS_DURATION: Final = "voice_agent.tts.duration"
ATTR_TTS_CHARACTERS: Final = "voice_agent.tts.characters"
ATTR_TTS_AUDIO_DURATION: Final = "voice_agent.tts.audio_duration"
ATTR_STT_DURATION: Final = "voice_agent.stt.duration"
ATTR_STT_AUDIO_DURATION: Final = "voice_agent.stt.audio_duration"
ATTR_STT_STREAMED: Final = "voice_agent.stt.streamed"
ATTR_TURN_LATENCY: Final = "voice_agent.turn.latency"
ATTR_TURN_EOU: Final = "voice_agent.turn.end_of_utterance_delay"
ATTR_TURN_LLM_TTFT: Final = "voice_agent.turn.llm_ttft"
ATTR_TURN_TTS_TTFB: Final = "voice_agent.turn.tts_ttfb"
ATTR_TURN_REMAINDER: Final = "voice_agent.turn.remainder"
ATTR_BUDGET: Final = "voice_agent.turn.budget"
"""Prefix of the turn budget's span attributes: ``.<part>`` seconds, ``.total``, ``.dominant``,
``.slow``, ``.slo``, ``.interrupted``, ``.handoff``, ``.timeline.parts``/``.timeline.seconds``."""
ATTR_SESSION_TURNS: Final = "voice_agent.session.turns"
ATTR_SESSION_COST: Final = "voice_agent.session.cost"

EXPORT_SIGNAL: Final = "otel_livekit.signal"
"""Self-metrics: ``traces`` or ``metrics``."""
EXPORT_OUTCOME: Final = "otel_livekit.export.outcome"
"""Self-metrics: ``delivered``, ``dropped``, ``spooled`` or ``replayed``."""
