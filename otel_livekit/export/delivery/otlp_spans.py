"""OTLP trace requests written straight to protobuf bytes, no message objects in between.

The SDK's encoder builds a protobuf message object per span, attribute and value from
Python, then serializes them: about 40 µs a span on an idle core, 70 under load — most of
the span export thread's time, and time the agent's event loop waits for the GIL
(bench/RESULTS.md, "32 calls: what is inside a late tick"). Writing the wire format
directly takes about a third of that. The output is the SDK encoder's byte for byte — same
fields, same order, same grouping by resource and scope, the same attributes skipped — and
``tests/test_otlp_spans.py`` holds it to that against the SDK's own encoder, so the SDK
stays the reference and a change in it fails a test rather than a backend.

Only what ``opentelemetry-proto``'s ``trace.proto`` and ``common.proto`` define is written;
the field numbers are named in the constants below.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_ONE_BYTE = [bytes((i,)) for i in range(128)]
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
# ExportTraceServiceRequest / ResourceSpans / ScopeSpans
_RESOURCE_SPANS, _RESOURCE, _SCOPE_SPANS, _SCHEMA_URL = b"\x0a", b"\x0a", b"\x12", b"\x1a"
_SCOPE, _SPAN = b"\x0a", b"\x12"
# Resource / InstrumentationScope
_RESOURCE_ATTRIBUTE = b"\x0a"
_SCOPE_NAME, _SCOPE_VERSION, _SCOPE_ATTRIBUTE = b"\x0a", b"\x12", b"\x1a"
# Span
_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT_ID = b"\x0a\x10", b"\x12\x08", b"\x1a", b"\x22\x08"
_NAME, _KIND, _START, _END = b"\x2a", b"\x30", b"\x39", b"\x41"
_ATTRIBUTE, _DROPPED_ATTRIBUTES, _EVENT, _DROPPED_EVENTS = b"\x4a", b"\x50", b"\x5a", b"\x60"
_LINK, _DROPPED_LINKS, _STATUS, _FLAGS = b"\x6a", b"\x70", b"\x7a", b"\x85\x01"
# Span.Event / Span.Link / Status
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE, _EVENT_DROPPED = b"\x09", b"\x12", b"\x1a", b"\x20"
_LINK_TRACE_ID, _LINK_SPAN_ID, _LINK_ATTRIBUTE, _LINK_DROPPED, _LINK_FLAGS = (
    b"\x0a\x10", b"\x12\x08", b"\x22", b"\x28", b"\x35")  # fmt: skip
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"
# KeyValue / AnyValue / ArrayValue / KeyValueList
_KEY, _VALUE = b"\x0a", b"\x12"
_STRING, _BOOL, _INT, _DOUBLE_VALUE, _ARRAY, _KVLIST, _BYTES = (
    b"\x0a", b"\x10", b"\x18", b"\x21", b"\x2a", b"\x32", b"\x3a")  # fmt: skip
_ARRAY_ITEM, _KVLIST_ITEM = b"\x0a", b"\x0a"

_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags


def _varint(n: int) -> bytes:
    if n < 128:
        return _ONE_BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_ONE_BYTE[n] if n < 128 else _varint(n)) + payload


def _text(tag: bytes, value: str | None) -> bytes:
    """A string field, left out when empty (proto3's default)."""
    return _field(tag, value.encode()) if value else b""


def any_value(value: Any) -> bytes:
    """An ``AnyValue``'s bytes, with the SDK's rules: ``None`` an empty value, ``bool``
    before ``int``, other sequences an array, mappings a key-value list. Raises
    ``TypeError``/``ValueError`` for what the SDK's encoder also refuses (the attribute is
    then left out, as there)."""
    if isinstance(value, str):
        return _field(_STRING, value.encode())
    if isinstance(value, bool):
        return _BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError("integer out of the int64 range")
        return _INT + _varint(int(value) & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _DOUBLE_VALUE + _DOUBLE(value)
    if value is None:
        return b""
    if isinstance(value, bytes):
        return _field(_BYTES, value)
    if isinstance(value, Sequence):
        return _field(_ARRAY, b"".join([_field(_ARRAY_ITEM, any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        items = [_field(_KVLIST_ITEM, _key_value(str(k), v)) for k, v in value.items()]
        return _field(_KVLIST, b"".join(items))
    raise TypeError(f"cannot encode an attribute of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _text(_KEY, key) + _field(_VALUE, any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None, out: list[bytes]) -> None:
    """Each attribute as a ``KeyValue`` field; one the SDK could not encode is left out."""
    if not attributes:
        return
    for key, value in attributes.items():
        try:
            out.append(_field(tag, _key_value(key, value)))
        except (TypeError, ValueError):  # the SDK logs and skips it
            continue


def _flags(context: SpanContext | None) -> bytes:
    remote = context is not None and context.is_remote
    return _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE if remote else _HAS_IS_REMOTE)


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    assert context is not None  # an ended SDK span always has one
    out = [_TRACE_ID, context.trace_id.to_bytes(16, "big"), _SPAN_ID, context.span_id.to_bytes(8, "big")]
    if state := context.trace_state:
        out.append(_field(_TRACE_STATE, ",".join([f"{k}={v}" for k, v in state.items()]).encode()))
    parent = span.parent
    if parent is not None:
        out += (_PARENT_ID, parent.span_id.to_bytes(8, "big"))
    out.append(_text(_NAME, span.name))
    out += (_KIND, _varint(span.kind.value + 1))  # the proto's kinds start at UNSPECIFIED
    if span.start_time:
        out += (_START, _FIXED64(span.start_time))
    if span.end_time:
        out += (_END, _FIXED64(span.end_time))
    _attributes(_ATTRIBUTE, span.attributes, out)
    if span.dropped_attributes:
        out += (_DROPPED_ATTRIBUTES, _varint(span.dropped_attributes))
    for event in span.events:
        parts = [_EVENT_TIME, _FIXED64(event.timestamp)] if event.timestamp else []
        parts.append(_text(_EVENT_NAME, event.name))
        _attributes(_EVENT_ATTRIBUTE, event.attributes, parts)
        if event.dropped_attributes:
            parts += (_EVENT_DROPPED, _varint(event.dropped_attributes))
        out.append(_field(_EVENT, b"".join(parts)))
    if span.dropped_events:
        out += (_DROPPED_EVENTS, _varint(span.dropped_events))
    for link in span.links:
        linked = link.context
        parts = [_LINK_TRACE_ID, linked.trace_id.to_bytes(16, "big"),
                 _LINK_SPAN_ID, linked.span_id.to_bytes(8, "big")]  # fmt: skip
        _attributes(_LINK_ATTRIBUTE, link.attributes, parts)
        if link.dropped_attributes:
            parts += (_LINK_DROPPED, _varint(link.dropped_attributes))
        parts += (_LINK_FLAGS, _flags(linked))
        out.append(_field(_LINK, b"".join(parts)))
    if span.dropped_links:
        out += (_DROPPED_LINKS, _varint(span.dropped_links))
    if (status := span.status) is not None:
        code = status.status_code.value
        out.append(_field(_STATUS, _text(_STATUS_MESSAGE, status.description)
                          + (_STATUS_CODE + _varint(code) if code else b"")))  # fmt: skip
    out += (_FLAGS, _flags(parent))
    return b"".join(out)


class WireSpan:
    """An ended span already written as its ``Span`` message, with what the batch queue and
    the request's grouping read. Made at the span's end on the agent's loop (about as long
    as the plain-container copy it replaces, ``health.compact``), so the queue holds one
    small object and bytes per span — nothing for the garbage collector to walk or promote
    while it waits for its batch — and the export thread only joins bytes."""

    __slots__ = ("instrumentation_scope", "resource", "wire")

    context = SpanContext(0, 0, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    """All the SDK's batch processor reads of a queued span: that it is sampled (only sampled
    spans are queued). One shared object, so the span's own context is freed with it."""

    def __init__(self, span: ReadableSpan) -> None:
        self.wire = _span(span)
        self.resource = span.resource
        self.instrumentation_scope = span.instrumentation_scope


class _Groups:
    """Values grouped by key equality in first-seen order, as the SDK's dict does, but
    keyed by identity first: a ``Resource``'s hash serializes its attributes to JSON, and
    a process's spans share one or two resource objects."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, list[Any]]] = {}
        self.groups: list[tuple[Any, list[Any]]] = []

    def add(self, key: Any, item: Any) -> None:
        group = self._by_id.get(id(key))
        if group is None:  # a new object: equal to one already seen?
            group = next((g for g in self.groups if g[0] == key), None)
            if group is None:
                group = (key, [])
                self.groups.append(group)
            self._by_id[id(key)] = group
        group[1].append(item)


def encode_spans(spans: Sequence[ReadableSpan | WireSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` for ``spans`` (a ``WireSpan``'s bytes as
    they are)."""
    resources = _Groups()
    for span in spans:
        resources.add(span.resource, span)
    out = []
    for resource, resource_spans in resources.groups:
        scopes = _Groups()
        for span in resource_spans:
            scopes.add(span.instrumentation_scope, span)
        resource_attributes: list[bytes] = []
        _attributes(_RESOURCE_ATTRIBUTE, resource.attributes, resource_attributes)
        parts = [_field(_RESOURCE, b"".join(resource_attributes))]
        for scope, scope_spans in scopes.groups:
            scope_parts: list[bytes] = []
            if scope is not None:
                scope_parts += (_text(_SCOPE_NAME, scope.name), _text(_SCOPE_VERSION, scope.version))
                _attributes(_SCOPE_ATTRIBUTE, scope.attributes, scope_parts)
            body = [_field(_SCOPE, b"".join(scope_parts))]
            body += [_field(_SPAN, s.wire if type(s) is WireSpan else _span(s)) for s in scope_spans]
            if scope is not None:
                body.append(_text(_SCHEMA_URL, scope.schema_url))
            parts.append(_field(_SCOPE_SPANS, b"".join(body)))
        parts.append(_text(_SCHEMA_URL, resource.schema_url))
        out.append(_field(_RESOURCE_SPANS, b"".join(parts)))
    return b"".join(out)
