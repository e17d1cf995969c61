"""LiveKit metrics events → catalogue instruments and numbers on the spans they belong to.

One small handler per event type. Values are checked the way LiveKit documents them:
``ttft == -1`` is "no token", streaming STT has ``duration == 0``, EOU delays of 0.0 mean
"end of speech not detected"; negative and non-finite values are never recorded.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from livekit.agents.metrics.base import (
    AvatarMetrics,
    DecisionMetrics,
    EOTInferenceMetrics,
    EOUMetrics,
    InterruptionMetrics,
    LLMMetrics,
    RealtimeModelMetrics,
    STTMetrics,
    TTSMetrics,
    VADMetrics,
)
from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import Span
from opentelemetry.util.types import AttributeValue

from .. import semconv as sc
from . import budget as b
from .catalogue import CATALOGUE
from .instruments import Instruments
from .pricing import PriceTable, normalize_provider
from .spans import SpanIndex
from .turns import Request, TurnState, TurnTracker, UserInput

logger = logging.getLogger("otel_livekit")

Attrs = dict[str, AttributeValue]


MAX_MEASUREMENT = 1e9
"""No real latency, token count or duration reaches this; a larger value is corrupt and
would push a histogram's running sum towards infinity."""


def valid(value: object) -> TypeGuard[float]:
    """A measurement we may record: a finite, non-negative, sane number."""
    kind = type(value)
    if kind is float or kind is int:  # the common case, checked cheaply (NaN fails both)
        return 0 <= value < MAX_MEASUREMENT  # type: ignore[operator]
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < MAX_MEASUREMENT
    )


def moment(value: object) -> TypeGuard[float]:
    """A wall-clock time (Unix seconds) we may place on a turn's timeline."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0  # type: ignore[arg-type,operator]


class ModelAttributes:
    """One provider/model's metric attribute sets, built once and shared read-only.

    Every metrics event needs the same few dicts (the model, plus an operation, component
    or token type); building them per event was a good part of the recorder's cost.
    """

    __slots__ = ("_derived", "attrs", "model", "provider")

    def __init__(self, provider: str | None, model: str | None) -> None:
        self.provider = normalize_provider(provider)
        self.model = model or "unknown"
        self.attrs: Attrs = {sc.GEN_AI_PROVIDER_NAME: self.provider, sc.GEN_AI_REQUEST_MODEL: self.model}
        self._derived: dict[tuple[tuple[str, AttributeValue], ...], Attrs] = {}

    def plus(self, *items: tuple[str, AttributeValue]) -> Attrs:
        """The model's attributes and ``items`` (a small, fixed set of combinations)."""
        attrs = self._derived.get(items)
        if attrs is None:
            attrs = self._derived[items] = {**dict(items), **self.attrs}
        return attrs


@functools.lru_cache(maxsize=512)
def model_attributes(provider: str | None, model: str | None) -> ModelAttributes:
    return ModelAttributes(provider, model)


def _model(metadata: Any) -> ModelAttributes:
    return model_attributes(getattr(metadata, "model_provider", None), getattr(metadata, "model_name", None))


_NO_EXEMPLAR = trace.set_span_in_context(trace.INVALID_SPAN, Context())
"""Not empty (the SDK would take the current context instead), and no sampled span in it."""


class _Once:
    """Warn once per key: a broken event type must not flood the agent's logs."""

    def __init__(self) -> None:
        self._seen: set[object] = set()

    def warn(self, key: object, msg: str, *args: object, exc_info: bool = False) -> None:
        if key in self._seen or len(self._seen) > 1000:
            return
        self._seen.add(key)
        logger.warning(msg, *args, exc_info=exc_info)


class Recorder:
    """Process-wide: holds the instruments, the price table and the span index."""

    def __init__(self, instruments: Instruments, prices: PriceTable, spans: SpanIndex | None = None,
                 *, stt_generations: bool = False,
                 slow_turn_seconds: float | None = 1.5) -> None:  # fmt: skip
        self.slow_turn_seconds = slow_turn_seconds
        """A turn whose wait is longer is slow (``voice_agent.turn.slow``, the hook's verdict)."""
        self.stt_generations = stt_generations
        """An ``stt_request`` span per STT usage report (with the Langfuse mapping, where a
        trace's cost is the sum of its generations); a span costs the loop ~0.1 ms."""
        self.instruments = instruments
        self.prices = prices
        self.spans = spans
        self.once = _Once()
        self._pending = instruments.pending
        self._histograms = {
            spec.name: (instruments.histogram(spec.name), spec.exemplars)
            for spec in CATALOGUE if spec.kind == "histogram" and spec.recorded
        }  # fmt: skip
        self._counters = {
            spec.name: instruments.counter(spec.name)
            for spec in CATALOGUE if spec.kind != "histogram" and spec.recorded
        }  # fmt: skip
        self._handlers: dict[type, Callable[[Any, TurnTracker], None]] = {
            LLMMetrics: self._llm,
            RealtimeModelMetrics: self._realtime,
            STTMetrics: self._stt,
            TTSMetrics: self._tts,
            VADMetrics: self._vad,
            EOUMetrics: self._eou,
            EOTInferenceMetrics: self._eot,
            InterruptionMetrics: self._interruption,
            DecisionMetrics: self._decision,
            AvatarMetrics: self._avatar,
        }

    # --- primitives -----------------------------------------------------------------
    def hist(self, name: str, value: object, attrs: Attrs | None = None, span: Span | None = None) -> None:
        if not valid(value):
            return
        histogram, exemplars = self._histograms[name]
        if exemplars:
            # the span, when known, makes the exemplar point at the turn/request, not the session
            ctx = trace.set_span_in_context(span) if span is not None else get_current()
        else:
            ctx = _NO_EXEMPLAR
        self._pending.put(histogram, value, attrs, ctx)

    def add(self, name: str, value: object, attrs: Attrs | None = None) -> None:
        if valid(value) and value:
            self._counters[name].add(value, attrs)

    def cost(self, component: str, usd: float | None, model: ModelAttributes, turns: TurnTracker) -> None:
        """The one pricing of an event: the ``voice_agent.cost`` counter and the session's
        running total (its summary and ``agent_session`` span) add the same figure."""
        if usd:
            self.add("voice_agent.cost", usd, model.plus((sc.COMPONENT, component)))
            turns.cost_usd += usd

    def tokens(self, component: str, model: ModelAttributes, by_type: Mapping[str, int]) -> None:
        for token_type, count in by_type.items():
            if count:
                attrs = model.plus((sc.COMPONENT, component), (sc.GEN_AI_TOKEN_TYPE, token_type))
                self.add("voice_agent.tokens", count, attrs)

    @staticmethod
    def annotate(span: Span | None, attrs: Mapping[str, object]) -> None:
        if span is None or not span.is_recording():
            return
        clean = {k: v for k, v in attrs.items() if valid(v)}
        span.set_attributes(clean)

    def find_near(self, name: str, attr: tuple[str, object] | None = None) -> Span | None:
        return self.spans.find_near(name, attr) if self.spans else None

    def span_with(self, name: str, key: str, value: object) -> Span | None:
        """The open ``name`` span whose attribute ``key`` is ``value``."""
        if self.spans is None:
            return None
        return self.spans.find_with(name, key, value)

    # --- dispatch ---------------------------------------------------------------------
    def record(self, metrics: object, turns: TurnTracker) -> None:
        """Never raises: telemetry must not hurt the agent."""
        handler = self._handlers.get(type(metrics))
        if handler is None:
            self.once.warn(type(metrics), "otel_livekit: unknown metrics event %s", type(metrics))
            return
        try:
            handler(metrics, turns)
        except Exception:
            self.once.warn(
                ("error", type(metrics)), "otel_livekit: failed to record %s",
                type(metrics).__name__, exc_info=True,
            )  # fmt: skip

    # --- LLM ----------------------------------------------------------------------------
    def _genai(self, op: str, model: ModelAttributes, m: LLMMetrics | RealtimeModelMetrics,
               input_tokens: int, output_tokens: int, span: Span | None) -> None:  # fmt: skip
        operation = (sc.GEN_AI_OPERATION_NAME, op)
        for token_type, count in (("input", input_tokens), ("output", output_tokens)):
            if count:
                self.hist("gen_ai.client.token.usage", count,
                          model.plus(operation, (sc.GEN_AI_TOKEN_TYPE, token_type)), span)  # fmt: skip
        if m.cancelled:
            self.add("voice_agent.requests.cancelled", 1,
                     model.plus((sc.COMPONENT, "llm" if op == sc.OP_CHAT else "realtime")))  # fmt: skip
            return  # a cut-short request is no latency sample
        genai = model.plus(operation)
        if m.duration > 0:
            self.hist("gen_ai.client.operation.duration", m.duration, genai, span)
        self.hist("gen_ai.client.operation.time_to_first_chunk", m.ttft, genai, span)
        if m.tokens_per_second > 0:
            self.hist("voice_agent.llm.tokens_per_second", m.tokens_per_second, model.attrs, span)

    def _llm(self, m: LLMMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata)
        span = self.span_with(sc.SPAN_LLM_REQUEST, sc.GEN_AI_RESPONSE_ID, m.request_id) or self.find_near(
            sc.SPAN_LLM_REQUEST
        )
        self._genai(sc.OP_CHAT, model, m, m.prompt_tokens, m.completion_tokens, span)
        self.tokens("llm", model, {
            "input": m.prompt_tokens, "output": m.completion_tokens,
            "cached_input": m.prompt_cached_tokens, "cache_write": m.cache_creation_tokens,
            "reasoning": m.reasoning_tokens,
        })  # fmt: skip
        usd = self.prices.llm_cost(
            model.provider, model.model,
            input_tokens=m.prompt_tokens, output_tokens=m.completion_tokens,
            cached_input=m.prompt_cached_tokens, cache_write=m.cache_creation_tokens,
        )  # fmt: skip
        self.cost("llm", usd, model, turns)
        if span is not None:
            self.annotate(span, {
                sc.ATTR_LLM_DURATION: m.duration, sc.ATTR_LLM_TTFT: m.ttft,
                sc.ATTR_LLM_TOKENS_PER_SECOND: m.tokens_per_second, sc.ATTR_COST: usd,
            })  # fmt: skip
        self._request(m, model, turns, realtime=False)
        if m.speech_id and not m.cancelled and valid(m.ttft):
            state = turns.get(m.speech_id)
            if state.tts_ttfb is None:  # the request whose text the turn's first audio spoke
                state.llm_ttft, state.llm_attributes = m.ttft, model.attrs

    def _realtime(self, m: RealtimeModelMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata)
        span = self.find_near(sc.SPAN_REALTIME)
        self._genai(sc.OP_REALTIME, model, m, m.input_tokens, m.output_tokens, span)
        inp, out = m.input_token_details, m.output_token_details
        cached = inp.cached_tokens_details
        self.tokens("realtime", model, {
            "input": m.input_tokens, "output": m.output_tokens,
            "cached_input": inp.cached_tokens,
            "audio_input": inp.audio_tokens, "text_input": inp.text_tokens,
            "image_input": inp.image_tokens,
            "cached_audio_input": cached.audio_tokens if cached else 0,
            "cached_text_input": cached.text_tokens if cached else 0,
            "audio_output": out.audio_tokens, "text_output": out.text_tokens,
        })  # fmt: skip
        self.add("voice_agent.realtime.session.duration", m.session_duration, model.attrs)
        usd = self.prices.llm_cost(
            model.provider, model.model,
            input_tokens=m.input_tokens, output_tokens=m.output_tokens,
            cached_input=inp.cached_tokens, audio_input=inp.audio_tokens,
            audio_output=out.audio_tokens,
        )  # fmt: skip
        self.cost("realtime", usd, model, turns)
        self.annotate(span, {sc.ATTR_COST: usd})
        self._request(m, model, turns, realtime=True)

    @staticmethod
    def _request(m: LLMMetrics | RealtimeModelMetrics, model: ModelAttributes, turns: TurnTracker,
                 realtime: bool) -> None:  # fmt: skip
        """A request on the wall clock, for the budget of the turn it is part of."""
        if not valid(m.duration) or not moment(m.timestamp):
            return
        turns.requests.append(Request(m.timestamp - m.duration, m.timestamp, m.ttft,
                                      getattr(m, "speech_id", None), model.attrs, realtime,
                                      m.cancelled))  # fmt: skip

    # --- speech -------------------------------------------------------------------------
    def _tts(self, m: TTSMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata)
        span = self.find_near(sc.SPAN_TTS_REQUEST)
        self.add("voice_agent.tts.characters", m.characters_count, model.attrs)
        self.add("voice_agent.tts.audio.duration", m.audio_duration, model.attrs)
        self.tokens("tts", model, {"input": m.input_tokens, "output": m.output_tokens})
        usd = self.prices.tts_cost(model.provider, model.model, m.characters_count)
        self.cost("tts", usd, model, turns)
        self.annotate(span, {
            sc.ATTR_TTS_TTFB: m.ttfb, sc.ATTR_TTS_DURATION: m.duration,
            sc.ATTR_TTS_CHARACTERS: m.characters_count,
            sc.ATTR_TTS_AUDIO_DURATION: m.audio_duration, sc.ATTR_COST: usd,
        })  # fmt: skip
        if m.cancelled:
            self.add("voice_agent.requests.cancelled", 1, model.plus((sc.COMPONENT, "tts")))
            return
        self.hist("voice_agent.tts.ttfb", m.ttfb, model.attrs, span)
        self.hist("voice_agent.tts.duration", m.duration, model.attrs, span)
        if m.speech_id and valid(m.ttfb):
            state = turns.peek(m.speech_id)
            if state is not None and state.tts_ttfb is None:
                state.tts_ttfb, state.tts_attributes = m.ttfb, model.attrs
                self._turn_parts_known(state)

    def _turn_parts_known(self, state: TurnState) -> None:
        """EOU (if any), LLM and TTS are in: record the breakdown now, live."""
        total = state.parts_sum()
        if total is None:
            return
        state.total = total
        turn_input = "audio" if state.eou_delay is not None else "text"
        span = self.span_with(sc.SPAN_AGENT_TURN, sc.LK_SPEECH_ID, state.speech_id)
        # the turn id rides along to the exemplars; the View keeps it off the series
        turn: Attrs = {sc.TURN_ID: state.speech_id}
        kind: Attrs = {sc.TURN_INPUT: turn_input, **turn}
        self.hist("voice_agent.turn.latency", total, kind, span)
        if state.eou_delay is not None:
            self.hist("voice_agent.turn.end_of_utterance_delay", state.eou_delay, turn, span)
        self.hist("voice_agent.turn.llm_ttft", state.llm_ttft,
                  {**(state.llm_attributes or {}), **kind}, span)  # fmt: skip
        self.hist("voice_agent.turn.tts_ttfb", state.tts_ttfb,
                  {**(state.tts_attributes or {}), **kind}, span)  # fmt: skip
        self.annotate(span, {
            sc.ATTR_TURN_LATENCY: total, sc.ATTR_TURN_EOU: state.eou_delay,
            sc.ATTR_TURN_LLM_TTFT: state.llm_ttft, sc.ATTR_TURN_TTS_TTFB: state.tts_ttfb,
        })  # fmt: skip

    def finish_turn(self, speech_id: str | None, metrics: Mapping[str, Any], turns: TurnTracker,
                    span: Span | None, *, created_at: float | None = None, interrupted: bool = False,
                    session: Any = None) -> b.TurnBudget | None:  # fmt: skip
        """The assistant message is in: LiveKit's e2e latency, what the three parts miss, and
        the turn's budget."""
        state = turns.pop(speech_id) if speech_id else None
        if speech_id:
            turns.answered.append(speech_id)
        e2e = metrics.get("e2e_latency")
        turn: Attrs | None = {sc.TURN_ID: speech_id} if speech_id else None
        if valid(e2e):
            self.hist("voice_agent.turn.e2e_latency", e2e, turn, span)
            if state is not None and state.total is not None:
                remainder = float(e2e) - state.total
                self.hist("voice_agent.turn.remainder", remainder, turn, span)
                self.annotate(span, {sc.ATTR_TURN_REMAINDER: remainder})
        budget = self._budget(speech_id, metrics, turns, state, created_at, interrupted)
        if budget is not None:
            budget.session, budget.span = session, span
            self._record_budget(budget, span)
            b.notify(budget)
        return budget

    def _budget(self, speech_id: str | None, metrics: Mapping[str, Any], turns: TurnTracker,
                state: TurnState | None, created_at: float | None,
                interrupted: bool) -> b.TurnBudget | None:  # fmt: skip
        """From the user's last word (or text) to the first audio, or to the interruption."""
        started, e2e, user = metrics.get("started_speaking_at"), metrics.get("e2e_latency"), turns.user
        handoff, turns.handoff = turns.handoff, False
        user_at = None if user is None else (user.stopped_at if user.stopped_at is not None else user.text_at)
        if moment(started) and valid(e2e):
            end = float(started)
            start = end - float(e2e)
        elif user_at is not None and moment(started):
            end, start = float(started), user_at  # no e2e from LiveKit (after a hand-off, #7157)
        elif user_at is not None and interrupted and moment(created_at):
            end, start = float(created_at), user_at
        else:
            return None  # say(), or a reply to nothing we saw
        if end < start:
            return None
        turns.user = None  # answered: the next reply needs a new user turn
        spoken = (user is not None and user.stopped_at is not None) or valid(e2e)
        intervals: list[b.Interval] = []
        if spoken and user is not None and user.eou_delay is not None:
            decided, heard = start + user.eou_delay, turns.heard_end_at
            if heard is not None and start < heard < decided:  # the VAD's silence, then the rest
                intervals.append(b.Interval(b.VAD_SILENCE, start, heard))
                intervals.append(b.Interval(b.ENDPOINTING, heard, decided))
            else:
                intervals.append(b.Interval(b.ENDPOINTING, start, decided))
        if user is not None and user.hook_end is not None and user.hook_seconds is not None:
            hook_start = user.hook_end - user.hook_seconds
            intervals.append(b.Interval(b.ON_USER_TURN_COMPLETED, hook_start, user.hook_end))
        requests = [r for r in turns.requests
                    if r.end > start and r.start < end and (interrupted or not r.cancelled)]
        mine = [r for r in requests if speech_id is not None and r.speech_id == speech_id] or requests
        reply = max(mine, key=lambda r: r.start) if mine else None
        groups = [g for g in turns.tool_groups if g[1] > start and g[0] < end]
        for g_start, g_end in groups:
            intervals.append(b.Interval(b.TOOL, g_start, g_end))
        for r in requests:
            if r is reply or (reply is not None and r.start >= reply.start):
                continue
            tools_at = min((g[0] for g in groups if g[0] >= r.start), default=r.end)
            intervals.append(b.Interval(b.TOOL_LLM, r.start, min(r.end, tools_at), dict(r.attributes or {})))
        first_token = None
        if reply is not None:
            part = b.REALTIME_TTFT if reply.realtime else b.LLM_TTFT
            if valid(reply.ttft):
                first_token = reply.start + reply.ttft
            waited = first_token if first_token is not None else reply.end  # cut before a token
            intervals.append(b.Interval(part, reply.start, waited, dict(reply.attributes or {})))
        if moment(started):
            playback = metrics.get("playback_latency")
            play_at = end - (float(playback) if valid(playback) else 0.0)
            if play_at < end:
                intervals.append(b.Interval(b.PLAYBACK, play_at, end))
            ttfb = metrics.get("tts_node_ttfb", state.tts_ttfb if state is not None else None)
            if valid(ttfb):
                sentence_at = play_at - float(ttfb)
                tts_attrs = dict(state.tts_attributes or {}) if state is not None else None
                intervals.append(b.Interval(b.TTS_TTFB, sentence_at, play_at, tts_attrs))
                if first_token is not None and reply is not None and not reply.realtime:
                    intervals.append(b.Interval(b.FIRST_SENTENCE, first_token, sentence_at))
        timeline, parts = b.walk(start, end, intervals)
        attributes: dict[str, dict[str, Any]] = {}
        for iv in intervals:
            if iv.attributes and iv.part in parts:
                attributes.setdefault(iv.part, iv.attributes)
        return b.TurnBudget(
            speech_id=speech_id, total=end - start, parts=parts, timeline=timeline,
            turn_input="audio" if spoken else "text", interrupted=interrupted,
            handoff=handoff, slo_seconds=self.slow_turn_seconds, attributes=attributes,
        )  # fmt: skip

    def _record_budget(self, budget: b.TurnBudget, span: Span | None) -> None:
        base: Attrs = {sc.TURN_INPUT: budget.turn_input}
        if budget.speech_id:
            base[sc.TURN_ID] = budget.speech_id  # rides on the exemplar only
        for part, seconds in budget.parts.items():
            attrs: Attrs = {**budget.attributes.get(part, {}), sc.TURN_PART: part, **base}
            self.hist("voice_agent.turn.budget", seconds, attrs, span)
        if budget.slow:
            self.add("voice_agent.turn.slow", 1,
                     {sc.TURN_DOMINANT_PART: budget.dominant, sc.TURN_INPUT: budget.turn_input})  # fmt: skip
        if span is None or not span.is_recording():
            return
        names, durations = b.timeline_attributes(budget.timeline)
        prefix = sc.ATTR_BUDGET
        attrs = {f"{prefix}.{part}": value for part, value in budget.parts.items()}
        span.set_attributes({
            **attrs, f"{prefix}.total": budget.total, f"{prefix}.dominant": budget.dominant,
            f"{prefix}.slow": budget.slow, f"{prefix}.interrupted": budget.interrupted,
            f"{prefix}.handoff": budget.handoff, f"{prefix}.timeline.parts": names,
            f"{prefix}.timeline.seconds": durations,
            **({f"{prefix}.slo": budget.slo_seconds} if budget.slo_seconds is not None else {}),
        })  # fmt: skip

    def _stt(self, m: STTMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata)
        if m.duration > 0:  # streaming STT reports 0: no request latency to speak of
            self.hist("voice_agent.stt.duration", m.duration, model.attrs)
        self.add("voice_agent.stt.audio.duration", m.audio_duration, model.attrs)
        self.tokens("stt", model, {"input": m.input_tokens, "output": m.output_tokens,
                                   "audio_input": m.input_audio_tokens})  # fmt: skip
        usd = self.prices.stt_cost(model.provider, model.model, m.audio_duration)
        self.cost("stt", usd, model, turns)
        span = self.find_near(sc.SPAN_USER_TURN)
        self.annotate(span, {
            sc.ATTR_STT_AUDIO_DURATION: m.audio_duration,
            sc.ATTR_STT_DURATION: m.duration if m.duration > 0 else None,
        })  # fmt: skip
        if span is not None and span.is_recording():
            span.set_attribute(sc.ATTR_STT_STREAMED, m.streamed)
        if self.stt_generations and (m.audio_duration > 0 or usd):
            self._stt_generation(m, model, usd, span)

    def _stt_generation(self, m: STTMetrics, model: ModelAttributes, usd: float | None,
                        user_turn: Span | None) -> None:  # fmt: skip
        """LiveKit makes no span for speech-to-text: one ``stt_request`` per STT usage
        report, under the user turn, carries its model, audio seconds and cost, so the
        generations of a call add up to the call's cost (Langfuse sums generations)."""
        ctx = trace.set_span_in_context(user_turn) if user_turn is not None else None
        end = time.time_ns()
        start = end - int(max(m.duration, 0.0) * 1e9)
        # the tracer of the provider installed now (one STT report per utterance: cheap)
        tracer = trace.get_tracer("otel_livekit")
        span = tracer.start_span(sc.SPAN_STT_REQUEST, context=ctx, start_time=start, attributes={
            sc.GEN_AI_OPERATION_NAME: "speech_to_text", **model.attrs,
            sc.ATTR_STT_AUDIO_DURATION: m.audio_duration, sc.ATTR_STT_STREAMED: m.streamed,
        })  # fmt: skip
        if usd is not None:
            span.set_attribute(sc.ATTR_COST, usd)
        span.end(end_time=end)

    def _vad(self, m: VADMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata).attrs
        if m.inference_count > 0:
            self.hist("voice_agent.vad.inference.duration",
                      m.inference_duration_total / m.inference_count, model)  # fmt: skip
        self.add("voice_agent.vad.inferences", m.inference_count, model)

    def _eou(self, m: EOUMetrics, turns: TurnTracker) -> None:
        # 0.0 means "end of speech not detected": not a delay
        if m.transcription_delay > 0:
            self.hist("voice_agent.turn.transcription_delay", m.transcription_delay)
        self.hist("voice_agent.turn.on_user_turn_completed_delay", m.on_user_turn_completed_delay)
        if m.speech_id and m.end_of_utterance_delay > 0 and valid(m.end_of_utterance_delay):
            turns.get(m.speech_id).eou_delay = m.end_of_utterance_delay
        user = turns.user
        if user is None or user.eou_delay is not None or user.text_at is not None:
            user = turns.user = UserInput()  # a new spoken turn (its message may come first)
        if valid(m.end_of_utterance_delay) and m.end_of_utterance_delay > 0:
            user.eou_delay = m.end_of_utterance_delay
        if valid(m.on_user_turn_completed_delay) and moment(m.timestamp):
            user.hook_end, user.hook_seconds = m.timestamp, m.on_user_turn_completed_delay

    @staticmethod
    def user_input(metrics: Mapping[str, Any], created_at: float, turns: TurnTracker) -> None:
        """The user's message: when they stopped speaking, or when the text came in."""
        stopped = metrics.get("stopped_speaking_at")
        if moment(stopped):
            user = turns.user
            if user is None or user.stopped_at is not None or user.text_at is not None:
                user = turns.user = UserInput()
            user.stopped_at = float(stopped)
        elif moment(created_at):
            turns.user = UserInput(text_at=created_at)

    @staticmethod
    def tool_group(starts: list[float], ends: list[float], turns: TurnTracker) -> None:
        """A batch of tools (parallel ones together): first start to last end."""
        starts, ends = [s for s in starts if moment(s)], [e for e in ends if moment(e)]
        if starts and ends and max(ends) >= min(starts):
            turns.tool_groups.append((min(starts), max(ends)))

    # --- models around the pipeline ---------------------------------------------------
    def _eot(self, m: EOTInferenceMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata).attrs
        self.hist("voice_agent.eot.inference.duration", m.total_duration, model)
        self.hist("voice_agent.eot.detection_delay", m.detection_delay, model)
        self.add("voice_agent.eot.requests", m.num_requests, model)

    def _interruption(self, m: InterruptionMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata).attrs
        self.hist("voice_agent.interruption.inference.duration", m.total_duration, model)
        self.hist("voice_agent.interruption.detection_delay", m.detection_delay, model)
        self.add("voice_agent.interruption.requests", m.num_requests, model)  # per-event deltas
        self.add("voice_agent.interruptions", m.num_interruptions,
                 {sc.INTERRUPTION_KIND: "detected"})  # fmt: skip
        self.add("voice_agent.interruptions", m.num_backchannels,
                 {sc.INTERRUPTION_KIND: "backchannel"})  # fmt: skip

    def _decision(self, m: DecisionMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata)
        self.hist("voice_agent.decision.duration", m.duration, model.attrs)
        self.tokens("decision", model, {"input": m.input_tokens or 0, "output": m.output_tokens or 0})

    def _avatar(self, m: AvatarMetrics, turns: TurnTracker) -> None:
        model = _model(m.metadata).attrs
        if m.playback_latency > 0:
            self.hist("voice_agent.avatar.playback_latency", m.playback_latency, model)
        if m.session_started_time is not None and m.avatar_joined_time is not None:
            self.hist("voice_agent.avatar.join_delay",
                      m.avatar_joined_time - m.session_started_time, model)  # fmt: skip
