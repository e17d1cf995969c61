"""A real offline AgentSession (LiveKit's own code paths) with controlled latencies and
token counts: exact values for every catalogue instrument, and the span attributes."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import reset_otel_globals
from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.llm import LLMError
from livekit.agents.metrics.base import (
    AvatarMetrics,
    DecisionMetrics,
    EOTInferenceMetrics,
    EOUMetrics,
    InterruptionMetrics,
    LLMMetrics,
    Metadata,
    RealtimeModelMetrics,
    STTMetrics,
    TTSMetrics,
)
from livekit.agents.voice.events import (
    AgentFalseInterruptionEvent,
    ErrorEvent,
    MetricsCollectedEvent,
)
from metric_points import Points, assert_buckets, assert_in_bucket
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_livekit import setup_tracing
from otel_livekit.metrics.buckets import GENAI_DURATION_SECONDS, LATENCY_SECONDS
from otel_livekit.metrics.catalogue import CATALOGUE
from otel_livekit.offline import (
    OfflineLLM,
    OfflineRun,
    OfflineSTT,
    OfflineTTS,
    run_offline_session,
)
from otel_livekit.sessions.hooks import SessionSummary, instrumentation_of

LLM_TTFT = 0.2  # the fakes' waits; buckets are checked against the measured values
TTS_TTFB = 0.11
PROMPT, COMPLETION, CACHED = 40, 8, 5
PRICES = {
    "llm": {"openai/fake-gpt": {"input": 1.0, "cached_input": 0.5, "output": 2.0,
                                "audio_input": 10.0, "audio_output": 20.0}},
    "tts": {"fake-tts-co/fake-voice": {"per_million_characters": 100.0}},
    "stt": {"fake-stt-co/fake-nova": {"per_minute": 0.01}},
}  # fmt: skip
MODEL = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "fake-gpt"}
RT_META = Metadata(model_name="fake-realtime", model_provider="openai")


@dataclass
class Recorded:
    points: Points
    livekit_points: Points
    spans: list[ReadableSpan]
    events: list[Any]
    summary: SessionSummary
    usage: list[Any]
    run: OfflineRun


def inject_other_events(session: AgentSession[Any]) -> None:
    """Event types the offline plugins cannot produce (realtime model, end-of-turn and
    interruption models, decision, avatar), an error and a false interruption, sent
    through the real session's emitter as LiveKit sends them."""
    rt = RealtimeModelMetrics(
        request_id="rt", timestamp=time.time(), duration=0.9, ttft=0.3, input_tokens=300,
        output_tokens=120, total_tokens=420, tokens_per_second=130.0, session_duration=30.0,
        input_token_details=RealtimeModelMetrics.InputTokenDetails(audio_tokens=200,
                                                                   text_tokens=100),
        output_token_details=RealtimeModelMetrics.OutputTokenDetails(audio_tokens=100,
                                                                     text_tokens=20),
        metadata=RT_META,
    )  # fmt: skip
    for m in (
        rt,
        EOTInferenceMetrics(timestamp=0.0, total_duration=0.07, detection_delay=0.04,
                            prediction_duration=0.02, num_requests=1),
        InterruptionMetrics(timestamp=0.0, total_duration=0.09, prediction_duration=0.03,
                            detection_delay=0.18, num_interruptions=1, num_backchannels=1,
                            num_requests=2),
        DecisionMetrics(label="d", request_id="d", timestamp=0.0, duration=0.35, input_tokens=9,
                        output_tokens=1, metadata=RT_META),
        AvatarMetrics(timestamp=0.0, playback_latency=0.12, session_started_time=10.0,
                      avatar_joined_time=11.5),
    ):  # fmt: skip
        session.emit("metrics_collected", MetricsCollectedEvent(metrics=m))
    err = LLMError(timestamp=0.0, label="fake", error=TimeoutError("slow"), recoverable=True)
    session.emit("error", ErrorEvent(error=err, source=None))
    session.emit("agent_false_interruption", AgentFalseInterruptionEvent(resumed=True))


def run_recorded(**kw: Any) -> Recorded:
    reset_otel_globals()
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    setup_tracing(
        "none", metric_readers=[reader], span_processors=[SimpleSpanProcessor(exporter)],
        prices=PRICES, slow_turn_seconds=0.5,  # the audio turn (~0.65 s) is slow
    )  # fmt: skip
    events: list[Any] = []
    sessions: list[AgentSession[Any]] = []

    def before_start(session: AgentSession[Any]) -> None:
        sessions.append(session)
        rtc.EventEmitter.on(session, "metrics_collected", lambda ev: events.append(ev.metrics))  # type: ignore[arg-type]

    kw.setdefault(
        "llm_",
        OfflineLLM(ttft=LLM_TTFT, prompt_tokens=PROMPT, completion_tokens=COMPLETION, cached_tokens=CACHED),
    )
    kw.setdefault("tts_", OfflineTTS(ttfb=TTS_TTFB))
    run = asyncio.run(run_offline_session(before_start=before_start, **kw))  # fmt: skip
    data = reader.get_metrics_data()  # one collection: it carries the exemplars
    inst = instrumentation_of(sessions[0])
    assert inst is not None and inst.summary is not None
    recorded = Recorded(
        Points(data), Points(data, scope="livekit-agents"), list(exporter.get_finished_spans()),
        events, inst.summary, list(sessions[0].usage.model_usage), run,
    )  # fmt: skip
    reset_otel_globals()
    return recorded


@pytest.fixture(scope="module")
def rich() -> Recorded:
    """Text turns (one with a tool, one with a failing tool), an audio turn, an
    interrupted say(), and the injected event types — one real session."""
    return run_recorded(
        text_turns=("hello", "what's the weather?", "book a flight"),
        audio_turns=1,
        interrupted_say="This is a long announcement. " * 20,
        before_close=inject_other_events,
    )


@pytest.fixture(scope="module")
def batch_stt() -> Recorded:
    """An audio turn through a non-streaming STT (LiveKit segments it with the VAD)."""
    return run_recorded(text_turns=(), audio_turns=1,
                        stt_=OfflineSTT(streaming=False, latency=0.15))  # fmt: skip


def spans_named(rec: Recorded, name: str) -> list[ReadableSpan]:
    return sorted((s for s in rec.spans if s.name == name), key=lambda s: s.start_time or 0)


def emitted(rec: Recorded, kind: type) -> list[Any]:
    return [m for m in rec.events if isinstance(m, kind)]


def test_every_catalogue_row_is_recorded_from_a_real_session(rich: Recorded, batch_stt: Recorded) -> None:
    # the export self-metrics are read from the exporters, not recorded from a session; LiveKit
    # records its own (tool, agent turn) durations: test_prometheus compares them on both paths
    recorded = {spec.name for spec in CATALOGUE if spec.recorded}
    missing = recorded - rich.points.names() - batch_stt.points.names()
    # sessions.active goes +1 then -1: present, with value 0
    missing.discard("voice_agent.sessions.active")
    assert rich.points.one("voice_agent.sessions.active").value == 0
    assert not missing, f"never recorded: {sorted(missing)}"


def test_llm_instruments_exact(rich: Recorded) -> None:
    llm_events = emitted(rich, LLMMetrics)
    n = len(llm_events)
    assert n == 6  # hello, weather (tool + reply), flight (tool + reply), audio turn
    p = rich.points
    genai = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
             "gen_ai.request.model": "fake-gpt"}  # fmt: skip
    tin = p.one("gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": "input"})
    assert (tin.count, tin.sum) == (n, n * PROMPT)
    assert_in_bucket(tin, 16, 64)
    tout = p.one("gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": "output"})
    assert (tout.count, tout.sum) == (n, n * COMPLETION)
    assert_in_bucket(tout, 4, 16)
    ttft = p.one("gen_ai.client.operation.time_to_first_chunk", **genai)
    assert_buckets(ttft, [m.ttft for m in llm_events], GENAI_DURATION_SECONDS)
    dur = p.one("gen_ai.client.operation.duration", **genai)
    assert dur.count == n and dur.sum == pytest.approx(sum(m.duration for m in llm_events))
    assert p.one("voice_agent.llm.tokens_per_second", **MODEL).count == n
    usd = n * ((PROMPT - CACHED) * 1.0 + CACHED * 0.5 + COMPLETION * 2.0) / 1e6
    assert p.value("voice_agent.cost", **{"voice_agent.component": "llm"}) == pytest.approx(usd)


def test_token_totals_equal_tokens_emitted_and_session_usage(rich: Recorded) -> None:
    """No double counting: LiveKit's own GenAI/usage instruments are dropped, ours count
    exactly what the LLM reported, and agree with LiveKit's session.usage."""
    llm_events = emitted(rich, LLMMetrics)
    emitted_in = sum(m.prompt_tokens for m in llm_events)
    p = rich.points
    assert (
        p.value("voice_agent.tokens", **{"voice_agent.component": "llm", "gen_ai.token.type": "input"})
        == emitted_in
    )
    assert (
        p.value(
            "gen_ai.client.token.usage", **{"gen_ai.operation.name": "chat", "gen_ai.token.type": "input"}
        )
        == emitted_in
    )
    assert "gen_ai.client.token.usage" not in rich.livekit_points.names()
    assert not [n for n in rich.livekit_points.names() if n.startswith("lk.agents.usage")]
    (llm_usage,) = [u for u in rich.usage if u.type == "llm_usage" and u.model == "fake-gpt"]
    assert llm_usage.input_tokens == emitted_in
    assert llm_usage.output_tokens == sum(m.completion_tokens for m in llm_events)
    (tts_usage,) = [u for u in rich.usage if u.type == "tts_usage"]
    assert p.value("voice_agent.tts.characters") == tts_usage.characters_count
    assert p.value("voice_agent.tts.audio.duration") == pytest.approx(tts_usage.audio_duration)
    (stt_usage,) = [u for u in rich.usage if u.type == "stt_usage"]
    assert p.value("voice_agent.stt.audio.duration") == pytest.approx(stt_usage.audio_duration)


def test_session_summary_matches_usage_and_cost(rich: Recorded) -> None:
    s = rich.summary
    assert s.close_reason == "user_initiated"
    # the summary's usage is what the plugins reported, model by model
    llm_events, tts_events = emitted(rich, LLMMetrics), emitted(rich, TTSMetrics)
    (llm_u,) = [u for u in s.usage if u["type"] == "llm_usage" and u["model"] == "fake-gpt"]
    assert llm_u["input_tokens"] == sum(m.prompt_tokens for m in llm_events)
    assert llm_u["output_tokens"] == sum(m.completion_tokens for m in llm_events)
    (tts_u,) = [u for u in s.usage if u["type"] == "tts_usage"]
    assert tts_u["characters_count"] == sum(m.characters_count for m in tts_events)
    assert s.agent_turns == rich.run.assistant_messages
    assert s.interruptions == 2  # the interrupted say() + the false interruption
    # the summary's cost (from session.usage) equals what the cost counter added up
    assert s.cost_usd == pytest.approx(rich.points.value("voice_agent.cost"), rel=1e-9)
    (session_span,) = spans_named(rich, "agent_session")
    assert session_span.attributes["voice_agent.session.cost"] == pytest.approx(s.cost_usd)
    assert session_span.attributes["voice_agent.session.turns"] == s.agent_turns


def test_tts_and_stt_instruments(rich: Recorded) -> None:
    tts_events = emitted(rich, TTSMetrics)
    p = rich.points
    ttfb = p.one("voice_agent.tts.ttfb")
    done = [m for m in tts_events if not m.cancelled]
    assert_buckets(ttfb, [m.ttfb for m in done], LATENCY_SECONDS)
    assert p.value("voice_agent.tts.characters") == sum(m.characters_count for m in tts_events)
    usd = sum(m.characters_count for m in tts_events) * 100.0 / 1e6
    assert p.value("voice_agent.cost", **{"voice_agent.component": "tts"}) == pytest.approx(usd)
    stt_events = emitted(rich, STTMetrics)
    assert len(stt_events) == 1 and stt_events[0].streamed
    assert p.count("voice_agent.stt.duration") == 0  # streaming: duration 0 is no sample
    assert p.value("voice_agent.stt.audio.duration") == pytest.approx(stt_events[0].audio_duration)


def test_kpis(rich: Recorded) -> None:
    p = rich.points
    assert p.value("voice_agent.sessions.started") == 1
    assert p.value("voice_agent.sessions.ended",
                   **{"voice_agent.close_reason": "user_initiated"}) == 1  # fmt: skip
    assert p.one("voice_agent.session.turns").sum == rich.run.assistant_messages
    assert p.value("voice_agent.tool.calls", **{"gen_ai.tool.name": "lookup_weather"}) == 1
    assert p.value("voice_agent.tool.calls", **{"gen_ai.tool.name": "book_flight"}) == 1
    assert p.value("voice_agent.tool.errors", **{"gen_ai.tool.name": "book_flight"}) == 1
    assert p.value("voice_agent.tool.errors", **{"gen_ai.tool.name": "lookup_weather"}) == 0
    assert p.value("voice_agent.interruptions", **{"voice_agent.interruption.kind": "interrupted"}) == 1
    assert p.value("voice_agent.interruptions", **{"voice_agent.interruption.kind": "false"}) == 1
    assert p.value("voice_agent.errors", **{"voice_agent.component": "llm",
                                            "voice_agent.error.recoverable": "true",
                                            "error.type": "TimeoutError"}) == 1  # fmt: skip


def test_injected_types(rich: Recorded) -> None:
    p = rich.points
    rt = {"gen_ai.operation.name": "generate_content"}
    assert p.value("gen_ai.client.token.usage", **rt, **{"gen_ai.token.type": "input"}) == 300
    assert p.value("voice_agent.tokens", **{"gen_ai.token.type": "audio_output"}) == 100
    assert p.value("voice_agent.realtime.session.duration") == 30.0
    assert p.one("voice_agent.eot.inference.duration").sum == 0.07
    assert p.one("voice_agent.interruption.detection_delay").sum == 0.18
    assert p.one("voice_agent.decision.duration").sum == 0.35
    assert p.one("voice_agent.avatar.join_delay").sum == 1.5


def test_span_attributes(rich: Recorded) -> None:
    llm_events = {m.request_id: m for m in emitted(rich, LLMMetrics)}
    requests = spans_named(rich, "llm_request")
    assert len(requests) == len(llm_events)
    for span in requests:
        a = span.attributes or {}
        m = llm_events[a["gen_ai.response.id"]]
        assert a["voice_agent.llm.ttft"] == m.ttft
        assert a["voice_agent.llm.duration"] == m.duration
        assert a["voice_agent.llm.tokens_per_second"] == m.tokens_per_second
        assert a["gen_ai.usage.input_tokens"] == PROMPT  # LiveKit's, not repeated by us
        assert a["gen_ai.usage.cost"] == pytest.approx(
            ((PROMPT - CACHED) + CACHED * 0.5 + COMPLETION * 2.0) / 1e6
        )
    tts_requests = spans_named(rich, "tts_request")
    tts_events = sorted(emitted(rich, TTSMetrics), key=lambda m: m.timestamp)
    assert len(tts_requests) == len(tts_events)
    for span, m in zip(tts_requests, tts_events, strict=True):
        a = span.attributes or {}
        if m.ttfb >= 0:  # the interrupted say() never got its first byte: ttfb -1, no attr
            assert a["voice_agent.tts.ttfb"] == m.ttfb
        else:
            assert "voice_agent.tts.ttfb" not in a
        assert a["voice_agent.tts.characters"] == m.characters_count
        assert a["voice_agent.tts.audio_duration"] == m.audio_duration
    (user_turn,) = spans_named(rich, "user_turn")
    (stt,) = emitted(rich, STTMetrics)
    assert user_turn.attributes["voice_agent.stt.audio_duration"] == stt.audio_duration
    assert user_turn.attributes["voice_agent.stt.streamed"] is True


def expected_turn(rec: Recorded, speech_id: str) -> tuple[float | None, float, float]:
    """That speech id's own EOU delay, LLM TTFT and TTS TTFB, from the events LiveKit
    emitted: the LLM request is the last one before the turn's first audio (a tool call's
    request comes first), the TTS one is the turn's first."""
    eou = [m for m in emitted(rec, EOUMetrics) if m.speech_id == speech_id]
    first_tts = next(i for i, m in enumerate(rec.events)
                     if isinstance(m, TTSMetrics) and m.speech_id == speech_id)  # fmt: skip
    llm = [m for m in rec.events[:first_tts] if isinstance(m, LLMMetrics) and m.speech_id == speech_id]
    return (eou[0].end_of_utterance_delay if eou else None), llm[-1].ttft, rec.events[first_tts].ttfb


def check_turn_breakdown(rec: Recorded, expected_turns: int, audio_turns: int) -> list[float]:
    """Each turn's parts equal that turn's own events; the histograms hold exactly those."""
    turns = [s for s in spans_named(rec, "agent_turn")
             if "voice_agent.turn.latency" in (s.attributes or {})]  # fmt: skip
    assert len(turns) == expected_turns
    p = rec.points
    totals, eous, ttfts, ttfbs = [], [], [], []
    by_input: dict[str, tuple[list[float], list[float]]] = {"audio": ([], []), "text": ([], [])}
    for span in turns:
        a = span.attributes or {}
        eou, ttft, ttfb = expected_turn(rec, str(a["lk.speech_id"]))
        assert a.get("voice_agent.turn.end_of_utterance_delay") == eou
        assert a["voice_agent.turn.llm_ttft"] == ttft
        assert a["voice_agent.turn.tts_ttfb"] == ttfb
        total = (eou or 0.0) + ttft + ttfb
        assert a["voice_agent.turn.latency"] == pytest.approx(total, abs=1e-9)
        totals.append(total)
        ttfts.append(ttft)
        ttfbs.append(ttfb)
        by_input["text" if eou is None else "audio"][0].append(ttft)
        by_input["text" if eou is None else "audio"][1].append(ttfb)
        if eou is not None:  # an audio turn: LiveKit's e2e and the remainder
            eous.append(eou)
            assert a["voice_agent.turn.remainder"] == pytest.approx(a["lk.e2e_latency"] - total, abs=1e-9)
    latency = p.matching("voice_agent.turn.latency")
    assert sum(pt.count for pt in latency) == expected_turns
    assert sum(pt.sum for pt in latency) == pytest.approx(sum(totals), abs=1e-9)
    audio = p.one("voice_agent.turn.latency", **{"voice_agent.turn.input": "audio"})
    assert audio.count == audio_turns == len(eous)
    assert p.value("voice_agent.turn.end_of_utterance_delay") == pytest.approx(sum(eous), abs=1e-9)
    assert p.value("voice_agent.turn.llm_ttft") == pytest.approx(sum(ttfts), abs=1e-9)
    assert p.value("voice_agent.turn.tts_ttfb") == pytest.approx(sum(ttfbs), abs=1e-9)
    for turn_input, (input_ttfts, input_ttfbs) in by_input.items():  # each sample in its bucket
        kind = {"voice_agent.turn.input": turn_input}
        if input_ttfts:
            assert_buckets(p.one("voice_agent.turn.llm_ttft", **kind), input_ttfts, LATENCY_SECONDS)
            assert_buckets(p.one("voice_agent.turn.tts_ttfb", **kind), input_ttfbs, LATENCY_SECONDS)
    e2e = p.one("voice_agent.turn.e2e_latency")
    assert e2e.count == audio_turns
    remainder = p.one("voice_agent.turn.remainder")
    assert remainder.count == audio_turns
    assert e2e.sum == pytest.approx(
        remainder.sum + p.value("voice_agent.turn.latency", **{"voice_agent.turn.input": "audio"}),
        abs=1e-6,
    )
    return ttfts


def test_batch_stt_request_duration(batch_stt: Recorded) -> None:
    (stt,) = emitted(batch_stt, STTMetrics)
    assert not stt.streamed and stt.duration >= 0.15
    dur = batch_stt.points.one("voice_agent.stt.duration")
    assert (dur.count, dur.sum) == (1, stt.duration)
    assert_buckets(dur, [stt.duration], LATENCY_SECONDS)
    (user_turn,) = spans_named(batch_stt, "user_turn")
    assert user_turn.attributes["voice_agent.stt.duration"] == stt.duration


def test_turn_breakdown_in_the_rich_session(rich: Recorded) -> None:
    ttfts = check_turn_breakdown(rich, expected_turns=4, audio_turns=1)
    assert min(ttfts) >= LLM_TTFT  # the fake LLM's wait, and LiveKit's own overhead on top


class VaryingLLM(OfflineLLM):
    """Each request waits the next of ``ttfts`` before its first token."""

    def __init__(self, ttfts: list[float]) -> None:
        super().__init__(ttft=ttfts[0], prompt_tokens=PROMPT, completion_tokens=COMPLETION)
        self._ttfts = itertools.cycle(ttfts)

    def chat(self, **kw: Any) -> Any:
        self.ttft = next(self._ttfts)
        return super().chat(**kw)


class VaryingTTS(OfflineTTS):
    def __init__(self, ttfbs: list[float]) -> None:
        super().__init__(ttfb=ttfbs[0])
        self._ttfbs = itertools.cycle(ttfbs)

    def synthesize(self, text: str, **kw: Any) -> Any:
        self.ttfb = next(self._ttfbs)
        return super().synthesize(text, **kw)


def test_ten_turn_session_breakdown() -> None:
    """Turns of different latencies: each turn's parts are its own, not a neighbour's."""
    rec = run_recorded(text_turns=("hello",) * 8, audio_turns=2,
                       llm_=VaryingLLM([0.05, 0.31, 0.12, 0.22, 0.08, 0.4, 0.17]),
                       tts_=VaryingTTS([0.03, 0.19, 0.07, 0.26, 0.11]))  # fmt: skip
    ttfts = check_turn_breakdown(rec, expected_turns=10, audio_turns=2)
    assert max(ttfts) - min(ttfts) > 0.2  # the turns really differ
    # exemplars tie each sample to its agent_turn span and carry the turn id (not a label)
    speech_of = {s.context.span_id: (s.attributes or {})["lk.speech_id"]
                 for s in spans_named(rec, "agent_turn")}  # fmt: skip
    for name in ("voice_agent.turn.latency", "voice_agent.turn.llm_ttft", "voice_agent.turn.e2e_latency"):
        points = rec.points.matching(name)
        exemplars = [e for pt in points for e in pt.exemplars]
        assert exemplars, name
        for e in exemplars:
            assert e.filtered_attributes["voice_agent.turn.id"] == speech_of[e.span_id], name
        assert all("voice_agent.turn.id" not in pt.attributes for pt in points)
    # only the catalogue's exemplar instruments pay for the SDK's exemplar reservoir
    for name in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage", "voice_agent.tts.duration"):
        points = rec.points.matching(name)
        assert points and not [e for pt in points for e in pt.exemplars], name
    # exemplars tie turn histogram samples to their agent_turn spans
    turn_ids = {s.context.span_id for s in spans_named(rec, "agent_turn")}
    exemplars = [e for pt in rec.points.matching("voice_agent.turn.latency") for e in pt.exemplars]
    assert exemplars and all(e.span_id in turn_ids for e in exemplars)
