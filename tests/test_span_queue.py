"""What the batch queue keeps of an ended span until its export: the same span on the wire,
in plain containers (no lock-guarded SDK lists), so a busy process's garbage collections,
which pause the agent's loop, walk fewer objects (export/delivery/health.py ``compact``)."""

from __future__ import annotations

import gc
from collections.abc import Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList

from otel_livekit.export.delivery.health import CountingBatchSpanProcessor, ExportHealth


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
