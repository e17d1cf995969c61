"""Spans are encoded a few at a time (export/delivery/encoding.py), so the export thread leaves the
GIL to the agent's event loop between chunks; the backend still gets one request per batch
with every span once, in order, exactly as the SDK's encoder would have written it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from gil_turns import turns_typically, worst_wait_at_best
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OtlpReceiver, attrs

from otel_livekit import setup_tracing
from otel_livekit.export.delivery.direct import DirectSpanExporter
from otel_livekit.export.delivery.encoding import SPANS_PER_CHUNK, encode_spans_yielding
from otel_livekit.export.delivery.http_client import HttpClient
from otel_livekit.export.destinations.transport import Transport
from otel_livekit.sessions.content import NO_CONTENT, DestinationExporter, destination_view
from otel_livekit.sessions.profile import LeanExporter, SpanLineage


def flat(request: ExportTraceServiceRequest) -> list[object]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def make_spans(n: int, content: bool = False) -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(n):
        attributes: dict[str, Any] = {"i": i}
        if content:  # an LLM request as LiveKit makes it, prompt and reply included
            attributes.update({"gen_ai.input.messages": f"[prompt {i}]", "lk.pii.reply": f"reply {i}",
                               "langfuse.observation.type": "generation", "gen_ai.usage.input_tokens": 40,
                               "gen_ai.usage.output_tokens": 8, "gen_ai.usage.cost": 0.001})  # fmt: skip
        with tracer.start_as_current_span(f"s{i}", attributes=attributes) as span:
            span.add_event("e", {"n": i})
    return memory.get_finished_spans()


def test_chunks_decode_to_what_the_sdk_encoder_writes() -> None:
    spans = make_spans(10)
    joined = ExportTraceServiceRequest.FromString(encode_spans_yielding(spans, chunk=3))
    whole = encode_spans(spans)
    assert [len(rs.scope_spans[0].spans) for rs in joined.resource_spans] == [3, 3, 3, 1]
    assert flat(joined) == flat(whole)  # every field of every span, in order
    assert all(rs.resource == whole.resource_spans[0].resource for rs in joined.resource_spans)
    assert [s.name for s in flat(joined)] == [f"s{i}" for i in range(10)]


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "spool-off"])
def test_a_batch_reaches_the_backend_as_one_request_in_chunks(spool: bool) -> None:
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, service_name="enc", spool=spool)
        assert (t.spooler is not None and bool(t.spooler.outboxes)) is spool
        tracer = trace.get_tracer("test")
        for i in range(40):
            with tracer.start_as_current_span(f"span-{i}"):
                pass
        assert t.force_flush()
        (request,) = [r.body for r in rx.requests if r.path == "/v1/traces"]
        assert SPANS_PER_CHUNK == 16
        assert [sum(len(ss.spans) for ss in rs.scope_spans) for rs in request.resource_spans] == [16, 16, 8]
        assert {attrs(rs.resource.attributes)["service.name"] for rs in request.resource_spans} == {"enc"}
        assert [s.name for s in flat(request)] == [f"span-{i}" for i in range(40)]
        assert len({s.span_id for s in flat(request)}) == 40


def test_the_spool_off_exporter_posts_one_request_in_chunks() -> None:
    spans = make_spans(40)
    with OtlpReceiver() as rx:
        transport = Transport("traces", f"{rx.url}/v1/traces", timeout=2)
        exporter = DirectSpanExporter(transport, HttpClient(transport))
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        (request,) = [r.body for r in rx.requests]
        assert [sum(len(ss.spans) for ss in rs.scope_spans) for rs in request.resource_spans] == [16, 16, 8]
        assert [s.name for s in flat(request)] == [f"s{i}" for i in range(40)]
        exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert len(rx.requests) == 1
    with OtlpReceiver(status=400) as rx:
        transport = Transport("traces", f"{rx.url}/v1/traces", timeout=2)
        exporter = DirectSpanExporter(transport, HttpClient(transport))
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert len(rx.requests) == 1


HAND_OVERS = -(-500 // SPANS_PER_CHUNK) - 1  # 31 for 500 spans
ENOUGH_TURNS = HAND_OVERS // 2
"""Measured (median of five, 2-core machine): 40-60 turns with the hand-over, idle or loaded;
0-7 without it (only CPython's 5 ms switch interval lets the ticker in)."""


def test_encoding_a_batch_leaves_the_gil_to_the_event_loop_between_chunks() -> None:
    """Whole-batch encoding holds the GIL until CPython's switch interval (5 ms) takes it
    away; encoding 16 spans at a time lets the waiting thread in after each chunk."""
    spans = make_spans(500)
    assert worst_wait_at_best(lambda: encode_spans(spans).SerializePartialToString()) >= 0.003
    turns = turns_typically(lambda: encode_spans_yielding(spans))
    assert turns >= ENOUGH_TURNS, (turns, HAND_OVERS)


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def test_a_destinations_view_of_a_batch_leaves_the_gil_between_chunks() -> None:
    """The content rules and the Langfuse mapping make a view of every span on the export
    thread: 500 of them in one go would hold the GIL past the switch interval."""
    spans = make_spans(500, content=True)
    assert worst_wait_at_best(lambda: [destination_view(s, NO_CONTENT, True) for s in spans]) >= 0.003
    exporter = DestinationExporter(_Discard(), NO_CONTENT, langfuse=True)
    turns = turns_typically(lambda: exporter.export(spans))
    assert turns >= ENOUGH_TURNS, (turns, HAND_OVERS)


def test_the_lean_view_of_a_batch_leaves_the_gil_between_chunks() -> None:
    spans = make_spans(500, content=True)
    exporter = LeanExporter(_Discard(), SpanLineage())
    turns = turns_typically(lambda: exporter.export(spans))
    assert turns >= ENOUGH_TURNS, (turns, HAND_OVERS)
