"""Spans are encoded a few at a time (export/encoding.py), so the export thread leaves the
GIL to the agent's event loop between chunks; the backend still gets one request per batch
with every span once, in order, exactly as the SDK's encoder would have written it."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OtlpReceiver, attrs

from otel_livekit import setup_tracing
from otel_livekit.export.encoding import SPANS_PER_CHUNK, YieldingOTLPSpanExporter, encode_spans_yielding


def flat(request: ExportTraceServiceRequest) -> list[object]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def make_spans(n: int) -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(n):
        with tracer.start_as_current_span(f"s{i}", attributes={"i": i}) as span:
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
        exporter = YieldingOTLPSpanExporter(endpoint=f"{rx.url}/v1/traces", timeout=2)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        (request,) = [r.body for r in rx.requests]
        assert [sum(len(ss.spans) for ss in rs.scope_spans) for rs in request.resource_spans] == [16, 16, 8]
        assert [s.name for s in flat(request)] == [f"s{i}" for i in range(40)]
        exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert len(rx.requests) == 1
    with OtlpReceiver(status=400) as rx:
        exporter = YieldingOTLPSpanExporter(endpoint=f"{rx.url}/v1/traces", timeout=2)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert len(rx.requests) == 1
