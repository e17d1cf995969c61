"""The metric catalogue: every instrument otel_livekit records, defined once.

Name, kind, unit, description, bucket boundaries and the attribute keys allowed on it.
Recording, the SDK Views (buckets and the attribute allow-list that guards cardinality),
the README table and the dashboards all derive from ``CATALOGUE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from .. import semconv as sc
from .buckets import (
    COUNT_PER_SESSION,
    FAST_SECONDS,
    GENAI_DURATION_SECONDS,
    GENAI_TOKENS,
    LATENCY_SECONDS,
    SESSION_SECONDS,
    TOKENS_PER_SECOND,
)
from .livekit_views import LIVEKIT_METER

logger = logging.getLogger("otel_livekit")

METER_NAME = "otel_livekit"

Kind = Literal["counter", "histogram", "updowncounter"]

_MODEL = (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL)
_GENAI = (sc.GEN_AI_OPERATION_NAME, *_MODEL)


@dataclass(frozen=True)
class InstrumentSpec:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    source: str = ""
    """The LiveKit event the values come from (for the README)."""
    observed: bool = False
    """Read by a callback elsewhere (the export self-metrics), not recorded by the recorder."""
    meter: str = METER_NAME
    """Who records it: ``otel_livekit``, or LiveKit's own meter for the LiveKit instruments
    the catalogue exposes as they are (their View is in ``livekit_views``)."""
    exemplars: bool = False
    """Samples carry an exemplar (trace and span id): the latency a dashboard links to its
    trace. Elsewhere the SDK's exemplar reservoir would cost every sample for nothing."""
    exemplar_attributes: tuple[str, ...] = ()
    """Recorded with each sample but kept off the series by the View: they ride on the
    exemplar only (the turn id)."""

    @property
    def recorded(self) -> bool:
        """Recorded by the recorder (neither read by a callback nor recorded by LiveKit)."""
        return not self.observed and self.meter == METER_NAME

    def view(self) -> View:
        aggregation = ExplicitBucketHistogramAggregation(self.buckets) if self.buckets is not None else None
        # the recorder passes only catalogue attributes (tested); the SDK filters per sample
        # only where some attributes must stay off the series
        keys = set(self.attributes) if self.exemplar_attributes else None
        return View(
            meter_name=METER_NAME,
            instrument_name=self.name,
            attribute_keys=keys,
            aggregation=aggregation,
        )


def _h(name: str, unit: str, desc: str, attrs: tuple[str, ...], buckets: tuple[float, ...],
       source: str, exemplars: bool = False) -> InstrumentSpec:  # fmt: skip
    return InstrumentSpec(name, "histogram", unit, desc, attrs, buckets, source, exemplars=exemplars)


def _turn(name: str, desc: str, attrs: tuple[str, ...], source: str) -> InstrumentSpec:
    """A turn-breakdown histogram: exemplars link each sample to its agent_turn span."""
    return InstrumentSpec(name, "histogram", "s", desc, attrs, LATENCY_SECONDS, source,
                          exemplars=True, exemplar_attributes=(sc.TURN_ID,))  # fmt: skip


def _c(name: str, unit: str, desc: str, attrs: tuple[str, ...], source: str) -> InstrumentSpec:
    return InstrumentSpec(name, "counter", unit, desc, attrs, None, source)


S = "s"
LAT = LATENCY_SECONDS
_EXPORTS = "the exporters' ExportHealth"

CATALOGUE: tuple[InstrumentSpec, ...] = (
    # --- GenAI semantic conventions (LLM and realtime models) ---
    _h("gen_ai.client.token.usage", "{token}", "Input and output tokens per LLM request",
       (*_GENAI, sc.GEN_AI_TOKEN_TYPE), GENAI_TOKENS, "LLMMetrics, RealtimeModelMetrics"),
    _h("gen_ai.client.operation.duration", S, "LLM request duration (cancelled ones excluded)",
       (*_GENAI, sc.ERROR_TYPE), GENAI_DURATION_SECONDS, "LLMMetrics, RealtimeModelMetrics"),
    _h("gen_ai.client.operation.time_to_first_chunk", S, "LLM time to first token",
       _GENAI, GENAI_DURATION_SECONDS, "LLMMetrics, RealtimeModelMetrics (ttft ≥ 0)"),
    # --- live per-turn latency breakdown ---
    _turn("voice_agent.turn.latency",
          "Turn latency: end-of-utterance delay + LLM time to first token + TTS time to first byte",
          (sc.TURN_INPUT,), "EOUMetrics + LLMMetrics + TTSMetrics of one speech_id"),
    _turn("voice_agent.turn.end_of_utterance_delay",
          "End of user speech (VAD) to the end-of-turn decision", (), "EOUMetrics"),
    _turn("voice_agent.turn.llm_ttft", "LLM time to first token of the turn's reply",
          (*_MODEL, sc.TURN_INPUT), "LLMMetrics (last before the turn's first TTS)"),
    _turn("voice_agent.turn.tts_ttfb", "TTS time to first byte of the turn's first audio",
          (*_MODEL, sc.TURN_INPUT), "TTSMetrics (first of the speech_id)"),
    _turn("voice_agent.turn.e2e_latency",
          "User stopped speaking to agent started speaking, as LiveKit measures it", (),
          "assistant ChatMessage.metrics e2e_latency"),
    _turn("voice_agent.turn.remainder",
          "e2e latency not explained by the three parts (queueing, first sentence, playout)",
          (), "e2e_latency - (eou + llm ttft + tts ttfb)"),
    _turn("voice_agent.turn.budget",
          "Where the turn's wait went, part by part (vad_silence, endpointing, on_user_turn_completed, "
          "tool_llm, tool, llm_ttft, realtime_ttft, first_sentence, tts_ttfb, playback, "
          "residual): a turn's parts add up to its wait (LiveKit's e2e latency)",
          (sc.TURN_PART, sc.TURN_INPUT, *_MODEL),
          "conversation, metrics and tool events of the turn (metrics/budget.py)"),
    _c("voice_agent.turn.slow", "{turn}",
       "Turns whose wait passed OTEL_LIVEKIT_SLOW_TURN_SECONDS, by the part that took longest",
       (sc.TURN_DOMINANT_PART, sc.TURN_INPUT), "the turn budget"),
    _h("voice_agent.turn.transcription_delay", S, "End of user speech to final transcript",
       (), LAT, "EOUMetrics"),
    _h("voice_agent.turn.on_user_turn_completed_delay", S,
       "Time spent in Agent.on_user_turn_completed", (), LAT, "EOUMetrics"),
    # --- LLM / TTS / STT request metrics ---
    _h("voice_agent.llm.tokens_per_second", "{token}/s", "LLM output tokens per second",
       _MODEL, TOKENS_PER_SECOND, "LLMMetrics, RealtimeModelMetrics"),
    _h("voice_agent.tts.ttfb", S, "TTS time to first byte, every request", _MODEL, LAT,
       "TTSMetrics", exemplars=True),
    _h("voice_agent.tts.duration", S, "TTS request duration", _MODEL, LAT, "TTSMetrics"),
    _h("voice_agent.stt.duration", S, "STT request duration (non-streaming STT only)",
       _MODEL, LAT, "STTMetrics (duration > 0)"),
    _c("voice_agent.requests.cancelled", "{request}", "Cancelled LLM/TTS/realtime requests",
       (sc.COMPONENT, *_MODEL), "LLMMetrics, TTSMetrics, RealtimeModelMetrics (cancelled)"),
    # --- usage and cost ---
    _c("voice_agent.tokens", "{token}",
       "Tokens by type: input, output, cached_input, cache_write, reasoning, audio/text input "
       "and output (realtime)", (sc.COMPONENT, *_MODEL, sc.GEN_AI_TOKEN_TYPE),
       "LLMMetrics, RealtimeModelMetrics, STTMetrics, TTSMetrics, DecisionMetrics"),
    _c("voice_agent.tts.characters", "{character}", "Characters synthesized", _MODEL,
       "TTSMetrics"),
    _c("voice_agent.tts.audio.duration", S, "Seconds of audio synthesized", _MODEL, "TTSMetrics"),
    _c("voice_agent.stt.audio.duration", S, "Seconds of audio transcribed", _MODEL, "STTMetrics"),
    _c("voice_agent.realtime.session.duration", S, "Realtime connection seconds (billed by time)",
       _MODEL, "RealtimeModelMetrics"),
    _c("voice_agent.cost", "{USD}", "Estimated cost in US dollars, from the price table",
       (sc.COMPONENT, *_MODEL), "LLM, realtime, STT and TTS metrics x prices"),
    # --- VAD, end-of-turn model, interruption model, decision, avatar ---
    _h("voice_agent.vad.inference.duration", S, "Mean VAD inference time per reporting period",
       _MODEL, FAST_SECONDS, "VADMetrics"),
    _c("voice_agent.vad.inferences", "{inference}", "VAD inferences run", _MODEL, "VADMetrics"),
    _h("voice_agent.eot.inference.duration", S, "End-of-turn model round trip", _MODEL, LAT,
       "EOTInferenceMetrics"),
    _h("voice_agent.eot.detection_delay", S, "Latest audio to end-of-turn prediction", _MODEL,
       LAT, "EOTInferenceMetrics"),
    _c("voice_agent.eot.requests", "{request}", "End-of-turn model requests", _MODEL,
       "EOTInferenceMetrics"),
    _h("voice_agent.interruption.inference.duration", S, "Interruption model round trip",
       _MODEL, LAT, "InterruptionMetrics"),
    _h("voice_agent.interruption.detection_delay", S,
       "Speech onset to the interruption model's verdict", _MODEL, LAT, "InterruptionMetrics"),
    _c("voice_agent.interruption.requests", "{request}", "Interruption model requests", _MODEL,
       "InterruptionMetrics"),
    _h("voice_agent.decision.duration", S, "Decision model request duration", _MODEL, LAT,
       "DecisionMetrics"),
    _h("voice_agent.avatar.playback_latency", S, "First audio frame to avatar playback start",
       _MODEL, LAT, "AvatarMetrics"),
    _h("voice_agent.avatar.join_delay", S, "Avatar session start to avatar joined", _MODEL,
       SESSION_SECONDS, "AvatarMetrics"),
    # --- conversation KPIs ---
    _c("voice_agent.sessions.started", "{session}", "Agent sessions started", (),
       "AgentSession.start"),
    _c("voice_agent.sessions.ended", "{session}", "Agent sessions ended, by close reason",
       (sc.CLOSE_REASON,), "close"),
    InstrumentSpec("voice_agent.sessions.active", "updowncounter", "{session}",
                   "Agent sessions running now", (), None, "AgentSession.start, close"),
    _h("voice_agent.session.duration", S, "Agent session length", (sc.CLOSE_REASON,),
       SESSION_SECONDS, "AgentSession.start to close"),
    _h("voice_agent.session.turns", "{turn}", "Agent turns per session", (), COUNT_PER_SESSION,
       "assistant messages (replies and say())"),
    _c("voice_agent.interruptions", "{interruption}",
       "Interruptions: interrupted (agent speech cut), false (resumed), detected and "
       "backchannel (adaptive interruption model)", (sc.INTERRUPTION_KIND,),
       "ChatMessage.interrupted, agent_false_interruption, InterruptionMetrics"),
    _c("voice_agent.tool.calls", "{call}", "Function tool calls", (sc.GEN_AI_TOOL_NAME,),
       "function_tools_executed"),
    _c("voice_agent.tool.errors", "{call}", "Function tool calls that failed",
       (sc.GEN_AI_TOOL_NAME,), "function_tools_executed (is_error)"),
    _c("voice_agent.errors", "{error}", "Pipeline errors by component and recoverability",
       (sc.COMPONENT, sc.ERROR_RECOVERABLE, sc.ERROR_TYPE), "error"),
    # --- LiveKit's own instruments, exposed as LiveKit records them (its View gives the buckets)
    InstrumentSpec("gen_ai.execute_tool.duration", "histogram", S, "Tool execution duration",
                   (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_TOOL_NAME, sc.ERROR_TYPE), LAT,
                   "LiveKit (function tool executions)", meter=LIVEKIT_METER),
    InstrumentSpec("gen_ai.invoke_agent.duration", "histogram", S, "Agent turn duration",
                   (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_AGENT_NAME), LAT,
                   "LiveKit (agent turns)", meter=LIVEKIT_METER),
    # --- the telemetry pipeline's own health (read from each destination's ExportHealth) ---
    InstrumentSpec("otel_livekit.export.attempts", "counter", "{attempt}",
                   "Export HTTP attempts (retries and spool replays included)",
                   (sc.EXPORT_SIGNAL,), None, _EXPORTS, observed=True),
    InstrumentSpec("otel_livekit.export.failures", "counter", "{attempt}",
                   "Failed export attempts (refused, timeout, HTTP error)",
                   (sc.EXPORT_SIGNAL,), None, _EXPORTS, observed=True),
    InstrumentSpec("otel_livekit.export.items", "counter", "{item}",
                   "Spans / metric points by outcome: delivered, spooled for later, replayed "
                   "from the spool, dropped for good", (sc.EXPORT_SIGNAL, sc.EXPORT_OUTCOME), None,
                   _EXPORTS, observed=True),
)  # fmt: skip

BY_NAME: dict[str, InstrumentSpec] = {spec.name: spec for spec in CATALOGUE}

REPLACED_LIVEKIT_INSTRUMENTS: tuple[str, ...] = (
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.*",
    "lk.agents.usage.*",
)
"""LiveKit instruments whose quantity the catalogue records itself (live, with units,
normalized provider names, cancelled requests apart): LiveKit gets no-op instruments for
them (``CatalogueMeterProvider``), so nothing is counted twice and nothing is paid for them."""


def views() -> list[View]:
    return [spec.view() for spec in CATALOGUE if spec.meter == METER_NAME]


def markdown_table() -> str:
    """The README's metric table (``otel-livekit catalogue`` prints it)."""
    rows = [
        "| metric | kind | unit | attributes | buckets | from | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in CATALOGUE:
        attrs = ", ".join(f"`{a}`" for a in spec.attributes) or "—"
        if spec.buckets:
            low, high = (int(b) if b == int(b) else b for b in (spec.buckets[0], spec.buckets[-1]))
            buckets = f"{len(spec.buckets)}: {low}–{high}"
        else:
            buckets = "—"
        kind = f"{spec.kind}, exemplars" if spec.exemplars else spec.kind
        rows.append(
            f"| `{spec.name}` | {kind} | `{spec.unit}` | {attrs} | {buckets} | "
            f"{spec.source} | {spec.description} |"
        )
    return "\n".join(rows) + "\n"
