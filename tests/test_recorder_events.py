"""One test per LiveKit metrics event type, built from LiveKit's own pydantic models,
including the edge values its docs describe."""

from __future__ import annotations

import math

import pytest
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
    VADMetrics,
)
from metric_points import Points, assert_in_bucket, recorder_with_reader

from otel_livekit.metrics.turns import TurnTracker

LLM_META = Metadata(model_name="fake-gpt", model_provider="api.openai.com")
MODEL = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "fake-gpt"}


def llm(**kw: object) -> LLMMetrics:
    base: dict[str, object] = dict(
        label="x", request_id="r1", timestamp=0.0, duration=0.5, ttft=0.12, cancelled=False,
        completion_tokens=20, prompt_tokens=100, prompt_cached_tokens=30, total_tokens=120,
        tokens_per_second=40.0, metadata=LLM_META,
    )  # fmt: skip
    base.update(kw)
    return LLMMetrics(**base)  # type: ignore[arg-type]


def test_llm_metrics() -> None:
    rec, reader = recorder_with_reader()
    rec.record(llm(cache_creation_tokens=4, reasoning_tokens=6), TurnTracker())
    p = Points(reader)
    genai = {"gen_ai.operation.name": "chat", **MODEL}
    tin = p.one("gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": "input"})
    assert (tin.count, tin.sum) == (1, 100)
    assert_in_bucket(tin, 64, 256)
    assert p.value("gen_ai.client.token.usage", **{"gen_ai.token.type": "output"}) == 20
    dur = p.one("gen_ai.client.operation.duration", **genai)
    assert (dur.count, dur.sum) == (1, 0.5)
    assert_in_bucket(dur, 0.32, 0.64)
    ttft = p.one("gen_ai.client.operation.time_to_first_chunk", **genai)
    assert ttft.sum == 0.12
    assert_in_bucket(ttft, 0.08, 0.16)
    assert p.one("voice_agent.llm.tokens_per_second", **MODEL).sum == 40.0
    for token_type, n in [("input", 100), ("output", 20), ("cached_input", 30),
                          ("cache_write", 4), ("reasoning", 6)]:  # fmt: skip
        assert p.value("voice_agent.tokens", **{"gen_ai.token.type": token_type}) == n
    # (100-30-0)*1 + 30*0.5 + 4*1 (no cache_write price: input) + 20*2, per 1M tokens
    assert p.value("voice_agent.cost", **{"voice_agent.component": "llm"}) == pytest.approx(
        (70 * 1 + 30 * 0.5 + 4 * 1 + 20 * 2) / 1e6
    )


def test_llm_no_token_and_cancelled() -> None:
    rec, reader = recorder_with_reader()
    turns = TurnTracker()
    rec.record(llm(ttft=-1.0, speech_id="s1"), turns)  # -1: no token came
    rec.record(llm(cancelled=True, request_id="r2"), turns)
    p = Points(reader)
    assert p.count("gen_ai.client.operation.time_to_first_chunk") == 0
    assert p.count("gen_ai.client.operation.duration") == 1  # the cancelled one is excluded
    assert p.value("voice_agent.requests.cancelled", **{"voice_agent.component": "llm"}) == 1
    assert p.value("voice_agent.tokens", **{"gen_ai.token.type": "input"}) == 200  # still billed
    assert turns.peek("s1") is None  # not a turn latency sample: no turn state at all


def test_realtime_metrics_with_token_details() -> None:
    rec, reader = recorder_with_reader()
    m = RealtimeModelMetrics(
        request_id="rt1", timestamp=0.0, duration=1.5, ttft=0.3, session_duration=12.0,
        input_tokens=500, output_tokens=300, total_tokens=800, tokens_per_second=200.0,
        input_token_details=RealtimeModelMetrics.InputTokenDetails(
            audio_tokens=400, text_tokens=100, cached_tokens=50,
            cached_tokens_details=RealtimeModelMetrics.CachedTokenDetails(
                audio_tokens=40, text_tokens=10),
        ),
        output_token_details=RealtimeModelMetrics.OutputTokenDetails(
            text_tokens=60, audio_tokens=240),
        metadata=LLM_META,
    )  # fmt: skip
    rec.record(m, TurnTracker())
    p = Points(reader)
    genai = {"gen_ai.operation.name": "generate_content", **MODEL}
    assert p.one("gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": "input"}).sum == 500
    assert p.one("gen_ai.client.operation.time_to_first_chunk", **genai).sum == 0.3
    expected = {"input": 500, "output": 300, "cached_input": 50, "audio_input": 400,
                "text_input": 100, "cached_audio_input": 40, "cached_text_input": 10,
                "audio_output": 240, "text_output": 60}  # fmt: skip
    for token_type, n in expected.items():
        got = p.value("voice_agent.tokens", **{"voice_agent.component": "realtime",
                                               "gen_ai.token.type": token_type})  # fmt: skip
        assert got == n, token_type
    assert p.value("voice_agent.realtime.session.duration", **MODEL) == 12.0
    # text in (500-50-400)=50*1 + cached 50*0.5 + audio in 400*10 + text out 60*2 + audio out 240*20
    usd = (50 * 1 + 50 * 0.5 + 400 * 10 + 60 * 2 + 240 * 20) / 1e6
    assert p.value("voice_agent.cost", **{"voice_agent.component": "realtime"}) == pytest.approx(usd)


def test_stt_streaming_and_batch() -> None:
    rec, reader = recorder_with_reader()
    meta = Metadata(model_name="fake-nova", model_provider="fake-stt-co")
    stt_model = {"gen_ai.provider.name": "fake-stt-co", "gen_ai.request.model": "fake-nova"}
    rec.record(
        STTMetrics(
            label="s",
            request_id="a",
            timestamp=0.0,
            duration=0.0,
            audio_duration=3.0,
            streamed=True,
            metadata=meta,
        ),
        TurnTracker(),
    )
    rec.record(STTMetrics(label="s", request_id="b", timestamp=0.0, duration=0.42,
                          audio_duration=3.0, streamed=False, input_tokens=7,
                          metadata=meta), TurnTracker())  # fmt: skip
    p = Points(reader)
    dur = p.one("voice_agent.stt.duration", **stt_model)
    assert (dur.count, dur.sum) == (1, 0.42)  # the streaming duration==0 is no sample
    assert_in_bucket(dur, 0.4, 0.5)
    assert p.value("voice_agent.stt.audio.duration", **stt_model) == 6.0
    assert p.value("voice_agent.tokens", **{"voice_agent.component": "stt"}) == 7
    assert p.value("voice_agent.cost", **{"voice_agent.component": "stt"}) == pytest.approx(0.001)


def tts(**kw: object) -> TTSMetrics:
    base: dict[str, object] = dict(
        label="t", request_id="t1", timestamp=0.0, ttfb=0.06, duration=0.2, audio_duration=2.0,
        cancelled=False, characters_count=120, streamed=False,
        metadata=Metadata(model_name="fake-voice", model_provider="fake-tts-co"),
    )  # fmt: skip
    base.update(kw)
    return TTSMetrics(**base)  # type: ignore[arg-type]


def test_tts_metrics_and_cancelled() -> None:
    rec, reader = recorder_with_reader()
    rec.record(tts(), TurnTracker())
    rec.record(tts(cancelled=True, ttfb=5.0), TurnTracker())
    p = Points(reader)
    ttfb = p.one("voice_agent.tts.ttfb")
    assert (ttfb.count, ttfb.sum) == (1, 0.06)
    assert_in_bucket(ttfb, 0.05, 0.075)
    assert p.one("voice_agent.tts.duration").sum == 0.2
    assert p.value("voice_agent.tts.characters") == 240
    assert p.value("voice_agent.tts.audio.duration") == 4.0
    assert p.value("voice_agent.requests.cancelled", **{"voice_agent.component": "tts"}) == 1
    assert p.value("voice_agent.cost", **{"voice_agent.component": "tts"}) == pytest.approx(0.024)


def test_vad_metrics() -> None:
    rec, reader = recorder_with_reader()
    rec.record(VADMetrics(label="v", timestamp=0.0, idle_time=0.1, inference_duration_total=0.05,
                          inference_count=100), TurnTracker())  # fmt: skip
    rec.record(VADMetrics(label="v", timestamp=0.0, idle_time=0.1, inference_duration_total=0.0,
                          inference_count=0), TurnTracker())  # fmt: skip
    p = Points(reader)
    mean = p.one("voice_agent.vad.inference.duration")
    assert mean.count == 1 and mean.sum == pytest.approx(0.0005)
    assert_in_bucket(mean, 0.00025, 0.0005)
    assert p.value("voice_agent.vad.inferences") == 100


def test_eou_then_llm_then_tts_records_the_turn() -> None:
    rec, reader = recorder_with_reader()
    turns = TurnTracker()
    rec.record(EOUMetrics(timestamp=0.0, end_of_utterance_delay=0.3, transcription_delay=0.2,
                          on_user_turn_completed_delay=0.001, speech_id="s1"), turns)  # fmt: skip
    rec.record(llm(speech_id="s1"), turns)
    rec.record(tts(speech_id="s1"), turns)
    rec.record(tts(speech_id="s1", request_id="t2", ttfb=0.9), turns)  # later sentence: no turn
    p = Points(reader)
    total = p.one("voice_agent.turn.latency", **{"voice_agent.turn.input": "audio"})
    assert total.count == 1 and total.sum == pytest.approx(0.3 + 0.12 + 0.06, abs=1e-9)
    assert_in_bucket(total, 0.4, 0.5)
    assert p.one("voice_agent.turn.end_of_utterance_delay").sum == 0.3
    assert p.one("voice_agent.turn.llm_ttft", **MODEL).sum == 0.12
    assert p.one("voice_agent.turn.tts_ttfb").sum == 0.06
    assert p.one("voice_agent.turn.transcription_delay").sum == 0.2
    assert p.one("voice_agent.turn.on_user_turn_completed_delay").sum == 0.001
    rec.finish_turn("s1", {"e2e_latency": 0.5}, turns, None)
    p = Points(reader)
    assert p.one("voice_agent.turn.e2e_latency").sum == 0.5
    assert p.one("voice_agent.turn.remainder").sum == pytest.approx(0.5 - 0.48)
    assert len(turns) == 0  # freed


def test_eou_not_detected_is_not_a_delay() -> None:
    rec, reader = recorder_with_reader()
    turns = TurnTracker()
    rec.record(EOUMetrics(timestamp=0.0, end_of_utterance_delay=0.0, transcription_delay=0.0,
                          on_user_turn_completed_delay=0.0, speech_id="s1"), turns)  # fmt: skip
    rec.record(llm(speech_id="s1"), turns)
    rec.record(tts(speech_id="s1"), turns)
    p = Points(reader)
    assert p.count("voice_agent.turn.transcription_delay") == 0
    assert p.count("voice_agent.turn.end_of_utterance_delay") == 0
    assert p.one("voice_agent.turn.latency", **{"voice_agent.turn.input": "text"}).sum == (
        pytest.approx(0.18)
    )


def test_eot_inference_metrics() -> None:
    rec, reader = recorder_with_reader()
    rec.record(
        EOTInferenceMetrics(
            timestamp=0.0, total_duration=0.08, detection_delay=0.03, prediction_duration=0.02, num_requests=2
        ),
        TurnTracker(),
    )
    p = Points(reader)
    assert p.one("voice_agent.eot.inference.duration").sum == 0.08
    assert p.one("voice_agent.eot.detection_delay").sum == 0.03
    assert p.value("voice_agent.eot.requests") == 2


def test_interruption_metrics_are_deltas() -> None:
    rec, reader = recorder_with_reader()
    for _ in range(2):
        rec.record(
            InterruptionMetrics(
                timestamp=0.0,
                total_duration=0.1,
                prediction_duration=0.05,
                detection_delay=0.2,
                num_interruptions=1,
                num_backchannels=2,
                num_requests=3,
            ),
            TurnTracker(),
        )
    p = Points(reader)
    assert p.count("voice_agent.interruption.inference.duration") == 2
    assert p.value("voice_agent.interruption.detection_delay") == pytest.approx(0.4)
    assert p.value("voice_agent.interruption.requests") == 6
    assert p.value("voice_agent.interruptions", **{"voice_agent.interruption.kind": "detected"}) == 2
    assert p.value("voice_agent.interruptions",
                   **{"voice_agent.interruption.kind": "backchannel"}) == 4  # fmt: skip


def test_decision_metrics() -> None:
    rec, reader = recorder_with_reader()
    rec.record(DecisionMetrics(label="d", request_id="d1", timestamp=0.0, duration=0.25,
                               input_tokens=11, output_tokens=None, metadata=LLM_META),
               TurnTracker())  # fmt: skip
    p = Points(reader)
    assert p.one("voice_agent.decision.duration", **MODEL).sum == 0.25
    assert p.value("voice_agent.tokens", **{"voice_agent.component": "decision"}) == 11


def test_avatar_metrics() -> None:
    rec, reader = recorder_with_reader()
    rec.record(AvatarMetrics(timestamp=0.0, playback_latency=0.15, session_started_time=100.0,
                             avatar_joined_time=102.5), TurnTracker())  # fmt: skip
    rec.record(AvatarMetrics(timestamp=0.0), TurnTracker())  # nothing known yet
    p = Points(reader)
    assert p.one("voice_agent.avatar.playback_latency").sum == 0.15
    assert p.one("voice_agent.avatar.join_delay").sum == 2.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_bad_values_are_never_recorded(bad: float) -> None:
    rec, reader = recorder_with_reader()
    turns = TurnTracker()
    rec.record(llm(duration=bad, ttft=bad, tokens_per_second=bad, speech_id="s"), turns)
    rec.record(tts(ttfb=bad, duration=bad, audio_duration=bad, speech_id="s"), turns)
    rec.record(EOUMetrics(timestamp=0.0, end_of_utterance_delay=bad, transcription_delay=bad,
                          on_user_turn_completed_delay=bad, speech_id="s"), turns)  # fmt: skip
    p = Points(reader)
    for name, pts in p.by_name.items():
        for pt in pts:
            v = pt.sum if hasattr(pt, "sum") and not hasattr(pt, "value") else pt.value
            assert math.isfinite(v) and v >= 0, name
    # dropped, not clamped: a clamped value would still be a sample (count 1, sum 0)
    for name in ("gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk",
                 "voice_agent.llm.tokens_per_second", "voice_agent.tts.ttfb",
                 "voice_agent.tts.duration", "voice_agent.turn.transcription_delay",
                 "voice_agent.turn.on_user_turn_completed_delay", "voice_agent.turn.latency",
                 "voice_agent.turn.end_of_utterance_delay"):  # fmt: skip
        assert p.count(name) == 0, name
    assert "voice_agent.tts.audio.duration" not in p.names()
    # the event's valid values still count
    assert p.value("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}) == 100


def test_unknown_event_is_ignored_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    rec, _ = recorder_with_reader()
    for _ in range(3):
        rec.record(object(), TurnTracker())
    assert len([r for r in caplog.records if "unknown metrics event" in r.getMessage()]) == 1


def test_turn_state_is_bounded() -> None:
    rec, _ = recorder_with_reader()
    turns = TurnTracker(max_turns=8)
    for i in range(100):  # turns that never reach TTS
        rec.record(llm(speech_id=f"s{i}"), turns)
    assert len(turns) <= 8 and turns.evicted == 92
    aged = TurnTracker(max_age=0.0)
    aged.get("a")
    aged.get("b")
    assert len(aged) == 1
