"""The Langfuse mapping: trace-level attributes on every span of a call (stamped at span
start) and observation fields (added per destination at export, see ``content.py``).

Langfuse groups a call only when every span carries the session and user ids, types an
observation by ``langfuse.observation.type`` first, and reads LiveKit's content from
pre-1.7 names; so we set those keys ourselves. ``session.id``/``user.id`` (OTel's general
registry, read by Phoenix and others) go beside them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import AttributeValue

from .. import semconv as sc
from ..metrics.pricing import normalize_provider
from .calls import CallInfo, CallTable, job_info, take_starting

SESSION_ID = "session.id"
USER_ID = "user.id"
LF_SESSION_ID = "langfuse.session.id"
LF_USER_ID = "langfuse.user.id"
LF_TRACE_NAME = "langfuse.trace.name"
LF_TRACE_TAGS = "langfuse.trace.tags"
LF_TRACE_METADATA = "langfuse.trace.metadata."
LF_ENVIRONMENT = "langfuse.environment"
LF_TYPE = "langfuse.observation.type"
LF_MODEL = "langfuse.observation.model.name"
LF_USAGE = "langfuse.observation.usage_details"
LF_COST = "langfuse.observation.cost_details"
LF_COMPLETION_START = "langfuse.observation.completion_start_time"
LF_INPUT = "langfuse.observation.input"
LF_OUTPUT = "langfuse.observation.output"
LF_METADATA = "langfuse.observation.metadata."
TURN_ID = sc.TURN_ID
"""The agent turn's LiveKit ``speech_id``, on the turn span and everything under it."""

DEFAULT_TRACE_NAME = "voice_call"

OBSERVATION_TYPES: Mapping[str, str] = {
    sc.SPAN_AGENT_SESSION: "agent",
    sc.SPAN_AGENT_TURN: "agent",
    sc.SPAN_LLM_REQUEST: "generation",
    sc.SPAN_REALTIME: "generation",
    sc.SPAN_TTS_REQUEST: "generation",
    sc.SPAN_STT_REQUEST: "generation",
    "function_tool": "tool",
    # these carry a model attribute but no usage: typed explicitly so Langfuse does not
    # count them as generations
    sc.SPAN_USER_TURN: "span",
    "llm_node": "span",
    "tts_node": "span",
    "llm_request_run": "span",
    "tts_request_run": "span",
    "tts_stream_adapter": "span",
    "start_agent_activity": "span",
}

# request spans GenAI-aware backends (Datadog LLM Observability, …) look for, with the
# component whose provider they name; llm_request already carries both keys
OPERATIONS: Mapping[str, tuple[str, str]] = {
    sc.SPAN_LLM_REQUEST: (sc.OP_CHAT, "llm"),
    sc.SPAN_REALTIME: (sc.OP_REALTIME, "llm"),
    sc.SPAN_TTS_REQUEST: ("text_to_speech", "tts"),
    sc.SPAN_USER_TURN: ("speech_to_text", "stt"),  # LiveKit has no STT request span
}


@dataclass(frozen=True)
class CallDefaults:
    """Process-wide settings (argument > env); a per-session call overrides them."""

    session_id: str | None = None
    user_id: str | None = None
    trace_name: str | None = None
    environment: str | None = None
    tags: tuple[str, ...] = ()
    langfuse: bool = False


def session_models(session: Any) -> dict[str, tuple[str, str]]:
    """component → (normalized provider, model) of the session's plugins."""
    out: dict[str, tuple[str, str]] = {}
    for component in ("llm", "stt", "tts"):
        plugin = getattr(session, component, None)
        if plugin is None:
            continue
        try:
            out[component] = (normalize_provider(plugin.provider), str(plugin.model))
        except Exception:
            continue
    return out


class _Call:
    """What the processor resolved for one trace (session models captured once)."""

    def __init__(self, info: CallInfo, models: dict[str, tuple[str, str]], job: dict[str, str]):
        self.info = info
        self.models = models
        self.job = job
        self.cached: tuple[int, Mapping[str, AttributeValue]] | None = None


class CallAttributesProcessor(SpanProcessor):
    """Stamps the call's ids (and, for Langfuse, trace name/tags/metadata/environment and
    observation types) on every span at start; spans stay mutable only until they end."""

    def __init__(self, defaults: CallDefaults, max_calls: int = 1024) -> None:
        self.defaults = defaults
        self._calls: CallTable[_Call] = CallTable(max_calls)
        self._sessions: CallTable[SpanContext] = CallTable(max_calls)  # job id → agent_session

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        with contextlib.suppress(Exception):  # telemetry never raises into the agent
            self._stamp(span, parent_context)

    def _call_for(self, span: Span) -> _Call | None:
        trace_id = span.context.trace_id
        if span.name == sc.SPAN_AGENT_SESSION:
            info = take_starting()
            if info is not None:
                session = info.session_ref() if info.session_ref else None
                call = _Call(info, session_models(session) if session is not None else {}, job_info())
                self._calls.put(trace_id, call)
                return call
        return self._calls.get(trace_id)

    def _link_to_session(self, span: Span, parent_context: context_api.Context | None, job: str) -> None:
        """A job-level root after the session (``job_shutdown``…) points at the call's span."""
        if span.name == sc.SPAN_AGENT_SESSION:
            self._sessions.put(job, span.context)
        elif not trace.get_current_span(parent_context).get_span_context().is_valid:
            session = self._sessions.get(job)
            if session is not None and session.trace_id != span.context.trace_id:
                span.add_link(session, {"voice_agent.link": "call"})

    def _stamp(self, span: Span, parent_context: context_api.Context | None) -> None:
        call = self._call_for(span)
        job = call.job if call else job_info()
        if job_id := job.get("job_id"):
            self._link_to_session(span, parent_context, job_id)
        attrs = dict(self._trace_attributes(call, job))
        if turn := self._turn_id(span, parent_context):
            attrs[TURN_ID] = turn
        op = OPERATIONS.get(span.name)
        if op is not None and call is not None:
            existing = span.attributes or {}
            if sc.GEN_AI_OPERATION_NAME not in existing:
                attrs[sc.GEN_AI_OPERATION_NAME] = op[0]
            model = call.models.get(op[1])
            if model is not None and sc.GEN_AI_PROVIDER_NAME not in existing:
                attrs[sc.GEN_AI_PROVIDER_NAME] = model[0]
        if self.defaults.langfuse and (kind := OBSERVATION_TYPES.get(span.name)) is not None:
            attrs[LF_TYPE] = kind
        span.set_attributes(attrs)

    def _trace_attributes(self, call: _Call | None, job: Mapping[str, str]) -> Mapping[str, AttributeValue]:
        """The same for every span of a call: cached once the user is known, until
        ``set_call_attributes`` changes the call."""
        info = call.info if call else None
        if call is not None and call.cached is not None and call.cached[0] == call.info.version:
            return call.cached[1]
        d = self.defaults
        attrs: dict[str, AttributeValue] = {}
        session_id, user_id = self.call_ids(info, job)
        if session_id:
            attrs[SESSION_ID] = session_id
        if user_id:
            attrs[USER_ID] = user_id
        if d.langfuse:
            if session_id:
                attrs[LF_SESSION_ID] = session_id
            if user_id:
                attrs[LF_USER_ID] = user_id
            attrs[LF_TRACE_NAME] = (info.trace_name if info else None) or d.trace_name or DEFAULT_TRACE_NAME
            if d.environment:
                attrs[LF_ENVIRONMENT] = d.environment
            tags = (info.tags if info and info.tags else ()) or d.tags
            if tags:
                attrs[LF_TRACE_TAGS] = tags
            for key, value in self._metadata(call, dict(job)).items():
                attrs[LF_TRACE_METADATA + key] = value
        if call is not None and user_id:
            call.cached = (call.info.version, attrs)
        return attrs

    def call_ids(self, info: CallInfo | None, job: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(session id, user id): per-session call > argument > env > room / participant."""
        d = self.defaults
        session_id = (info.session_id if info else None) or d.session_id or job.get("room")
        user_id = (info.user_id if info else None) or d.user_id or (info.resolve_user() if info else None)
        return session_id, user_id

    @staticmethod
    def _metadata(call: _Call | None, job: dict[str, str]) -> dict[str, str]:
        out = {k: v for k, v in job.items() if k in ("agent_name", "job_id")}
        if call is not None:
            if call.models:
                out["models"] = ",".join(f"{c}:{p}/{m}" for c, (p, m) in sorted(call.models.items()))
            out.update(call.info.metadata)
        return out

    @staticmethod
    def _turn_id(span: Span, parent_context: context_api.Context | None) -> str | None:
        own = (span.attributes or {}).get(sc.LK_SPEECH_ID)
        if span.name == sc.SPAN_AGENT_TURN and own:
            return str(own)
        parent = trace.get_current_span(parent_context)
        parent_attrs = getattr(parent, "attributes", None) or {}
        turn = parent_attrs.get(TURN_ID)
        if turn is None and getattr(parent, "name", None) == sc.SPAN_AGENT_TURN:
            turn = parent_attrs.get(sc.LK_SPEECH_ID)
        if turn is None or not parent.get_span_context().is_valid:
            return None
        if parent.get_span_context().trace_id != span.context.trace_id:
            return None
        return str(turn)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --- export time: observation fields for one destination ------------------------------

_CONTENT_SOURCES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # span name → (input keys, output keys), first present wins
    sc.SPAN_LLM_REQUEST: (("gen_ai.input.messages",), ("gen_ai.output.messages",)),
    sc.SPAN_REALTIME: (("gen_ai.input.messages", "lk.pii.user_input"),
                       ("gen_ai.output.messages", "lk.pii.response.text")),
    sc.SPAN_TTS_REQUEST: (("lk.pii.input_text",), ()),
    sc.SPAN_USER_TURN: ((), ("lk.pii.user_transcript",)),
    sc.SPAN_AGENT_TURN: (("lk.pii.user_input",), ("lk.pii.response.text",)),
    "function_tool": (("gen_ai.tool.call.arguments", "lk.pii.function_tool.arguments"),
                      ("gen_ai.tool.call.result", "lk.pii.function_tool.output")),
}  # fmt: skip


def _iso(ns: int) -> str:
    return json.dumps(datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat())


def observation_attributes(span: ReadableSpan, *, with_content: bool) -> dict[str, AttributeValue]:
    """Langfuse observation fields derived from what LiveKit and the recorder set."""
    a = span.attributes or {}
    out: dict[str, AttributeValue] = {}
    if a.get(LF_TYPE) == "generation":
        model = a.get("gen_ai.response.model") or a.get(sc.GEN_AI_REQUEST_MODEL)
        if model:
            out[LF_MODEL] = str(model)
        usage = _usage(a)
        if usage:
            out[LF_USAGE] = json.dumps(usage)
        cost = a.get(sc.ATTR_COST)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            out[LF_COST] = json.dumps({"total": cost})
        if LF_COMPLETION_START not in a and span.start_time:
            first = a.get(sc.ATTR_TTS_TTFB) or a.get("gen_ai.response.time_to_first_chunk")
            if isinstance(first, (int, float)) and first >= 0:
                out[LF_COMPLETION_START] = _iso(span.start_time + int(first * 1e9))
    if span.name == sc.SPAN_AGENT_TURN:
        out.update(_budget_metadata(a))
    if with_content and (sources := _CONTENT_SOURCES.get(span.name)):
        for target, keys in ((LF_INPUT, sources[0]), (LF_OUTPUT, sources[1])):
            value = next((a[k] for k in keys if a.get(k) not in (None, "")), None)
            if value is not None:
                out[target] = str(value)
    return out


def _budget_metadata(a: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The turn budget as the turn observation's own metadata keys (Langfuse lists and
    filters those; other span attributes sit nested under ``attributes``): ``budget.total``,
    ``budget.dominant``, ``budget.slow``, ``budget.<part>``."""
    prefix = sc.ATTR_BUDGET + "."
    return {
        f"{LF_METADATA}budget.{key[len(prefix):]}": value for key, value in a.items()
        if key.startswith(prefix) and ".timeline." not in key and value is not None
    }  # fmt: skip


LANGFUSE_USAGE_DOCS = "https://langfuse.com/docs/observability/features/token-and-cost-tracking"


def _int(a: Mapping[str, Any], key: str) -> int:
    value = a.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(a: Mapping[str, Any]) -> dict[str, int]:
    """Langfuse's usage types, no token counted twice (LANGFUSE_USAGE_DOCS): Langfuse sums
    every usage type into the total unless one is given, and counts every type named
    ``input…`` as input. LiveKit's input count includes the cached tokens (OpenAI's
    convention), so ``input`` is the uncached part and ``input_cached_tokens`` (the name
    Langfuse's OpenAI models price) the cached one; modality and reasoning breakdowns, which
    are parts of input or output, stay span attributes only; ``total`` is given."""
    usage: dict[str, int] = {}
    if any(isinstance(a.get(k), int) for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")):
        prompt, completion = _int(a, "gen_ai.usage.input_tokens"), _int(a, "gen_ai.usage.output_tokens")
        cached = _int(a, "gen_ai.usage.cache_read.input_tokens")
        written = _int(a, "gen_ai.usage.cache_write.input_tokens")
        usage["input"] = max(0, prompt - cached - written)
        usage["input_cached_tokens"] = cached
        if written:
            usage["input_cache_write_tokens"] = written
        usage["output"] = completion
        usage["total"] = prompt + completion
    audio = a.get(sc.ATTR_STT_AUDIO_DURATION)
    if isinstance(audio, (int, float)) and not isinstance(audio, bool) and audio > 0:
        usage["input_audio_milliseconds"] = round(audio * 1000)  # Langfuse's units are integers
    chars = a.get(sc.ATTR_TTS_CHARACTERS)
    if isinstance(chars, int) and chars:
        usage["characters"] = chars
    return usage
