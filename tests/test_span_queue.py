"""What the batch queue keeps of an ended span until its export: the same span on the wire,
in plain containers (no lock-guarded SDK lists), so a busy process's garbage collections,
which pause the agent's loop, walk fewer objects (export/delivery/health.py ``compact``)."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from otlp_receiver import OtlpReceiver, attrs

from otel_livekit import setup_tracing
from otel_livekit.export.delivery.health import CountingBatchSpanProcessor, ExportHealth
from otel_livekit.export.delivery.otlp_spans import WireSpan


class Capture(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _record(limits: SpanLimits | None = None) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """(what the SDK handed the processors, what our queue exported) for the same spans."""
    raw, queued = InMemorySpanExporter(), Capture()
    provider = TracerProvider(resource=Resource.create({"service.name": "queue"}), span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(raw))
    batch = CountingBatchSpanProcessor(queued, ExportHealth("traces", "test"))
    provider.add_span_processor(batch)
    tracer = provider.get_tracer("livekit-agents")
    with tracer.start_as_current_span("agent_session", attributes={"lk.room": "r"}) as session:
        with tracer.start_as_current_span("agent_turn", attributes={"lk.speech_id": "sp1", "n": 3}) as turn:
            turn.add_event("voice_agent.transcript", {"voice_agent.transcript.role": "user", "i": 1})
            turn.add_event("plain")
            with tracer.start_as_current_span("llm_request", links=[]) as llm:
                llm.set_attributes({"gen_ai.usage.input_tokens": 40, "gen_ai.request.model": "m",
                                    "tags": ("a", "b"), "ratio": 0.5, "ok": True})  # fmt: skip
        tracer.start_span("tool", links=[_link(session)]).end()
    batch.force_flush()
    provider.shutdown()
    return list(raw.get_finished_spans()), queued.spans


def _link(span: object) -> object:
    from opentelemetry.trace import Link

    return Link(span.get_span_context(), {"voice_agent.link": "call"})  # type: ignore[attr-defined]


def _wire(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(sorted(spans, key=lambda s: s.context.span_id)).SerializeToString()  # type: ignore[union-attr]


def _sdk_containers(span: ReadableSpan) -> list[str]:
    held = list(vars(span).values()) + [v for e in span.events for v in vars(e).values()]
    return [type(v).__name__ for v in held if isinstance(v, (BoundedList, BoundedAttributes))]


def test_the_queued_span_is_the_same_on_the_wire_without_the_sdks_locked_containers() -> None:
    raw, queued = _record()
    assert len(queued) == len(raw) == 4
    assert _wire(queued) == _wire(raw)  # every attribute, event, link, status and time kept
    assert [_sdk_containers(s) for s in raw] != [[]] * 4  # the SDK's snapshot holds them
    assert [_sdk_containers(s) for s in queued] == [[]] * 4
    # fewer objects for the collector: each queued span with its events, against the SDK's
    tracked = [sum(1 for o in gc.get_referents(*vars(s).values()) if gc.is_tracked(o)) for s in queued]
    tracked_raw = [sum(1 for o in gc.get_referents(*vars(s).values()) if gc.is_tracked(o)) for s in raw]
    assert sum(tracked) < sum(tracked_raw), (tracked, tracked_raw)


def test_a_span_the_sdk_dropped_from_keeps_its_counts() -> None:
    raw, queued = _record(SpanLimits(max_span_attributes=2, max_events=1))
    turn = next(s for s in queued if s.name == "agent_turn")
    llm = next(s for s in queued if s.name == "llm_request")
    assert (turn.dropped_events, llm.dropped_attributes) == (1, 3)
    assert _wire(queued) == _wire(raw)


@pytest.mark.parametrize("spool", ["true", "false"])
def test_an_otlp_backend_queues_its_view_of_each_span_as_wire_bytes(
    monkeypatch: pytest.MonkeyPatch, spool: str
) -> None:
    """Waiting for its batch, an ended span is its destination's view already written as
    bytes (one small object, nothing for the collector to walk or promote): no copy of the
    span stays alive, and what reaches the backend is that view — content withheld, the
    rest as recorded."""
    monkeypatch.setenv("OTEL_LIVEKIT_SPOOL", spool)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # they wait in the queue
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url)
        tracer = trace.get_tracer("livekit-agents")
        for i in range(3):
            content = {"gen_ai.input.messages": "secret words", "lk.speech_id": f"sp{i}"}
            with tracer.start_as_current_span(f"queued-{i}", attributes=content) as span:
                span.add_event("voice_agent.transcript", {"voice_agent.pii.transcript.text": "hi", "i": i})
        del span
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, ReadableSpan) and o.name.startswith("queued-")]
        assert alive == []
        assert sum(type(o) is WireSpan for o in gc.get_objects()) == 3
        assert t.force_flush() is True
        got = sorted((s for _, s in rx.spans()), key=lambda s: s.name)
        t.shutdown()
    assert [s.name for s in got] == ["queued-0", "queued-1", "queued-2"]
    assert [attrs(s.attributes) for s in got] == [{"lk.speech_id": f"sp{i}"} for i in range(3)]
    assert [[(e.name, attrs(e.attributes)) for e in s.events] for s in got] == [
        [("voice_agent.transcript", {"i": i})] for i in range(3)
    ]
