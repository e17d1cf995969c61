"""OTLP protobuf encoding that leaves the GIL to the agent's event loop between small chunks.

The SDK's span encoder is pure Python (about 50 µs per span): one batch of a few hundred
spans holds the GIL for 10 ms and more, and CPython lets a waiting thread take it only after
the switch interval (5 ms), so the agent's event loop wakes up to 5 ms late, once per
interval, while a batch is encoded (measured in bench/RESULTS.md, "Event-loop lag per
backend state"). Encoding a few spans at a time and releasing the GIL in between bounds the
wait to one chunk.

The chunks are joined as bytes: a protobuf message's encoding followed by another's parses
as one message whose repeated fields are concatenated, so the result is one
``ExportTraceServiceRequest`` with one ``ResourceSpans`` per chunk, every span once, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from ...gil import PER_GIL_HOLD, let_the_loop_in

SPANS_PER_CHUNK = PER_GIL_HOLD
"""About 1 ms of encoding: the longest the event loop waits for the GIL because of it."""


def encode_spans_yielding(spans: Sequence[ReadableSpan], chunk: int = SPANS_PER_CHUNK) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` for ``spans``, encoded ``chunk`` spans at
    a time with the GIL handed to the event loop between chunks (``gil.let_the_loop_in``)."""
    parts: list[bytes] = []
    for start in range(0, len(spans), chunk):
        if start:
            let_the_loop_in()  # a thread waiting for the GIL (the event loop) runs now
        parts.append(encode_spans(spans[start : start + chunk]).SerializePartialToString())
    return b"".join(parts)
