"""Property-based: random metrics events (any LiveKit type, any numbers, including NaN,
infinities and negatives) never raise, never put a non-finite value in an instrument, and
never add an attribute the catalogue does not list (only the turn histograms' Views filter:
the others rely on the recorder)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
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
from metric_points import Points, recorder_with_reader
from opentelemetry.sdk.metrics.export import HistogramDataPoint

from otel_livekit.metrics.catalogue import BY_NAME
from otel_livekit.metrics.turns import TurnTracker

floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-1.0, 0.0, 0.05])
ints = st.integers(min_value=-(2**31), max_value=2**40)
speech = st.sampled_from([None, "s1", "s2"])
meta = st.builds(Metadata, model_name=st.sampled_from([None, "m", ""]),
                 model_provider=st.sampled_from([None, "api.openai.com", "x"]))  # fmt: skip
common: dict[str, Any] = dict(label=st.just("l"), request_id=st.just("r"), timestamp=floats)

events = st.one_of(
    st.builds(LLMMetrics, **common, duration=floats, ttft=floats, cancelled=st.booleans(),
              completion_tokens=ints, prompt_tokens=ints, prompt_cached_tokens=ints,
              cache_creation_tokens=ints, reasoning_tokens=ints, total_tokens=ints,
              tokens_per_second=floats, speech_id=speech, metadata=meta),
    st.builds(TTSMetrics, **common, ttfb=floats, duration=floats, audio_duration=floats,
              cancelled=st.booleans(), characters_count=ints, input_tokens=ints,
              output_tokens=ints, streamed=st.booleans(), speech_id=speech, metadata=meta),
    st.builds(STTMetrics, **common, duration=floats, audio_duration=floats,
              streamed=st.booleans(), input_tokens=ints, metadata=meta),
    st.builds(VADMetrics, label=st.just("v"), timestamp=floats, idle_time=floats,
              inference_duration_total=floats, inference_count=ints),
    st.builds(EOUMetrics, timestamp=floats, end_of_utterance_delay=floats,
              transcription_delay=floats, on_user_turn_completed_delay=floats, speech_id=speech),
    st.builds(EOTInferenceMetrics, timestamp=floats, total_duration=floats,
              detection_delay=floats, prediction_duration=floats, num_requests=ints),
    st.builds(InterruptionMetrics, timestamp=floats, total_duration=floats,
              prediction_duration=floats, detection_delay=floats, num_interruptions=ints,
              num_backchannels=ints, num_requests=ints),
    st.builds(DecisionMetrics, **common, duration=floats,
              input_tokens=st.none() | ints, output_tokens=st.none() | ints),
    st.builds(AvatarMetrics, timestamp=floats, playback_latency=floats,
              session_started_time=st.none() | floats, avatar_joined_time=st.none() | floats),
    st.builds(RealtimeModelMetrics, request_id=st.just("r"), timestamp=floats, duration=floats,
              ttft=floats, cancelled=st.booleans(), input_tokens=ints, output_tokens=ints,
              session_duration=floats, tokens_per_second=floats,
              input_token_details=st.builds(RealtimeModelMetrics.InputTokenDetails,
                                            audio_tokens=ints, cached_tokens=ints),
              output_token_details=st.builds(RealtimeModelMetrics.OutputTokenDetails,
                                             audio_tokens=ints)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=12))
def test_random_events_never_raise_and_record_only_finite_values(batch: list[Any]) -> None:
    rec, reader = recorder_with_reader()
    turns = TurnTracker()
    for ev in batch:
        rec.record(ev, turns)  # must not raise
        e2e = getattr(ev, "duration", None)
        rec.finish_turn(getattr(ev, "speech_id", None), {"e2e_latency": e2e}, turns, None)
    for name, points in Points(reader).by_name.items():
        for p in points:
            assert set(p.attributes) <= set(BY_NAME[name].attributes), (name, dict(p.attributes))
            if isinstance(p, HistogramDataPoint):
                values = [p.sum, p.min, p.max] if p.count else [p.sum]
            else:
                values = [p.value]
            for v in values:
                assert math.isfinite(v), (name, v)
                assert v >= 0, (name, v)
