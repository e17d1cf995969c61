"""The span export's own protobuf writer (export/delivery/otlp_spans.py) writes what the
SDK's OTLP encoder writes, byte for byte: every field, attribute type, grouping and the
attributes the SDK leaves out. The SDK's encoder is the reference."""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import Attributes

from otel_livekit.export.delivery.otlp_spans import WireSpan, any_value, encode_spans


class Tier(enum.IntEnum):
    GOLD = 3


class Voice(str, enum.Enum):
    ALLOY = "alloy"


def context(span_id: int, remote: bool = False, state: TraceState | None = None) -> SpanContext:
    return SpanContext(0x0AF7651916CD43DD8448EB211C80319C, span_id, remote, TraceFlags(1), state)


RESOURCE = Resource({"service.name": "agent", "deployment.environment": "prod"}, "https://schema/1")
SCOPE = InstrumentationScope("livekit-agents", "1.8.9", "https://schema/scope", {"lib": "lk"})


def span(name: str = "llm_request", *, attributes: Attributes = None, **kw: Any) -> ReadableSpan:
    kw.setdefault("context", context(0x1111))
    kw.setdefault("resource", RESOURCE)
    kw.setdefault("instrumentation_scope", SCOPE)
    return ReadableSpan(name=name, attributes=attributes, start_time=1_700_000_000_123_456_789,
                        end_time=1_700_000_001_987_654_321, **kw)  # fmt: skip


EVERY_VALUE: dict[str, Any] = {
    "text": "hello", "empty": "", "unicode": "héllo ✓ 你好", "long": "x" * 300, "huge": "y" * 20_000,
    "true": True, "false": False, "zero": 0, "int": 42, "negative": -7, "int64.max": 2**63 - 1,
    "int64.min": -(2**63), "float": 0.25, "float.zero": 0.0, "nan": math.nan, "inf": -math.inf,
    "none": None, "bytes": b"\x00\xff", "strings": ("a", "b"), "ints": [1, -2, 3], "bools": (True, False),
    "floats": (1.5,), "empty.list": (), "mixed": ("a", None, 2), "map": {"k": "v", "n": {"deep": 1}},
    "int.enum": Tier.GOLD, "str.enum": Voice.ALLOY,
    "too.big": 2**63, "too.small": -(2**63) - 1, "object": object(), "set": {1, 2},
}  # fmt: skip
"""Every type an attribute can hold once a span is compacted to plain containers; the last
four the SDK's encoder refuses (logged and left out), and so must this one."""


CASES: dict[str, list[ReadableSpan]] = {
    "every value type": [span(attributes=EVERY_VALUE)],
    "bare": [span("", resource=Resource({}), instrumentation_scope=None, status=Status(StatusCode.UNSET))],
    "every kind": [span(f"k{k.value}", kind=k) for k in SpanKind],
    "parents local and remote, trace state": [
        span(parent=context(0x2222), context=context(0x3333, state=TraceState([("lk", "1"), ("v", "x")]))),
        span(parent=context(0x4444, remote=True)),
    ],
    "status": [span(status=Status(StatusCode.ERROR, "tool failed")), span(status=Status(StatusCode.OK))],
    "events and links": [span(
        events=[Event("generation", {"lk.generation_id": "speech_1", "n": 3}, timestamp=1_700_000_000_5),
                Event("bare", None, timestamp=0)],
        links=[Link(context(0x5555, remote=True), {"why": "retry"}), Link(context(0x6666))],
    )],
    "resources and scopes grouped as the SDK groups them": [
        span("a"),
        span("b", resource=Resource({"service.name": "agent", "deployment.environment": "prod"},
                                    "https://schema/1")),  # equal, another object
        span("c", resource=Resource({"service.name": "other"})),
        span("d", instrumentation_scope=InstrumentationScope("otel_livekit")),
        span("e", instrumentation_scope=None),
        span("f", instrumentation_scope=InstrumentationScope("livekit-agents", "1.8.9",
                                                             "https://schema/scope", {"lib": "lk"})),
        span("g"),
    ],
}


@pytest.mark.parametrize("spans", list(CASES.values()), ids=list(CASES))
def test_bytes_equal_the_sdk_encoders(spans: list[ReadableSpan]) -> None:
    assert encode_spans(spans) == sdk_encode(spans).SerializeToString()


@pytest.mark.parametrize("spans", list(CASES.values()), ids=list(CASES))
def test_spans_written_at_their_end_make_the_same_request(spans: list[ReadableSpan]) -> None:
    """The queue's ``WireSpan`` (a span written when it ended), alone or beside spans still
    to encode, goes into the request as the span would."""
    expected = sdk_encode(spans).SerializeToString()
    assert encode_spans([WireSpan(s) for s in spans]) == expected
    assert encode_spans([WireSpan(s) if i % 2 else s for i, s in enumerate(spans)]) == expected


def test_dropped_counts_are_written() -> None:
    """Spans from a provider with tight limits: the SDK's bounded containers count drops."""
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=1, max_events=1, max_links=1, max_event_attributes=1,
                        max_link_attributes=1)  # fmt: skip
    provider = TracerProvider(resource=RESOURCE, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    links = [Link(context(0x8888)), Link(context(0x7777), {"x": 1, "y": 2})]
    with provider.get_tracer("t").start_as_current_span("s", attributes={"a": 1, "b": 2}, links=links) as s:
        s.add_event("e1")
        s.add_event("e2", {"c": 1, "d": 2})  # the events list keeps the newest
    (done,) = memory.get_finished_spans()
    assert (done.dropped_attributes, done.dropped_events, done.dropped_links) == (1, 1, 1)
    assert done.events[0].dropped_attributes == 1 and done.links[0].dropped_attributes == 1
    assert encode_spans([done]) == sdk_encode([done]).SerializeToString()


def test_refused_values_leave_the_attribute_out_and_the_rest_in() -> None:
    (out,) = ExportTraceServiceRequest.FromString(encode_spans([span(attributes=EVERY_VALUE)])).resource_spans
    keys = [kv.key for kv in out.scope_spans[0].spans[0].attributes]
    assert keys == list(EVERY_VALUE)[:-4]
    with pytest.raises(ValueError):
        any_value(2**63)
    with pytest.raises(TypeError):
        any_value(object())
