"""A realtime generation as Langfuse reads it: LiveKit's own ``record_realtime_metrics``
writes the span, our processor and one destination's copy add the Langfuse fields."""

from __future__ import annotations

import json

from livekit.agents.metrics.base import Metadata, RealtimeModelMetrics
from livekit.agents.telemetry.utils import record_realtime_metrics
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_livekit.sessions.content import NO_CONTENT, DestinationExporter
from otel_livekit.sessions.langfuse import CallAttributesProcessor, CallDefaults


def test_realtime_inference_is_a_generation_with_audio_usage() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CallAttributesProcessor(CallDefaults(session_id="room-rt", langfuse=True)))
    provider.add_span_processor(SimpleSpanProcessor(DestinationExporter(memory, NO_CONTENT, langfuse=True)))
    span = provider.get_tracer("livekit-agents").start_span("realtime_inference")
    record_realtime_metrics(span, RealtimeModelMetrics(
        request_id="resp_1", timestamp=1_800_000_000.0, ttft=0.25, duration=1.0,
        input_tokens=100, output_tokens=50,
        input_token_details=RealtimeModelMetrics.InputTokenDetails(
            audio_tokens=80, text_tokens=20, cached_tokens=10),
        output_token_details=RealtimeModelMetrics.OutputTokenDetails(audio_tokens=40, text_tokens=10),
        metadata=Metadata(model_name="gpt-realtime", model_provider="api.openai.com"),
    ))  # fmt: skip
    span.end()
    (out,) = memory.get_finished_spans()
    a = out.attributes or {}
    assert a["langfuse.observation.type"] == "generation"
    assert a["langfuse.session.id"] == "room-rt"
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["langfuse.observation.model.name"] == "gpt-realtime"
    assert json.loads(str(a["langfuse.observation.usage_details"])) == {
        "input": 90, "input_cached_tokens": 10, "output": 50, "total": 150,
    }  # fmt: skip
    # the audio/text breakdown is part of input and output: on the span, not counted twice
    assert (a["gen_ai.usage.audio.input_tokens"], a["gen_ai.usage.text.output_tokens"]) == (80, 10)
    # LiveKit's own completion start (request timestamp + ttft) is kept as it set it
    assert a["langfuse.observation.completion_start_time"] == "2027-01-15T08:00:00.250000+00:00"
