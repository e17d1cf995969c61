"""OTLP protobuf encoding that leaves the GIL to the agent's event loop between small chunks.

An OTLP backend's spans arrive already written (``otlp_spans.WireSpan``, made when each span
ended): joining them costs next to nothing. Other spans — a lean profile, a span that could
not be written at its end — are encoded here. Encoding spans is pure Python (``otlp_spans``:
about 12 µs a span, the SDK's encoder 40): one batch of a few hundred spans holds the GIL
for milliseconds, and CPython lets a waiting thread take it only after the switch interval
(5 ms), so the agent's event loop wakes up to 5 ms late, once per interval, while a batch is
encoded (measured in bench/RESULTS.md, "Event-loop lag per backend state"). Encoding a few
spans at a time and releasing the GIL in between bounds the wait to one chunk.

The chunks are joined as bytes: a protobuf message's encoding followed by another's parses
as one message whose repeated fields are concatenated, so the result is one
``ExportTraceServiceRequest`` with one ``ResourceSpans`` per chunk, every span once, in order.

Metrics the same way, a few data points at a time, and the GIL handed over before the first
chunk too: the SDK's collection has just held it on the same thread (1.5–2 ms for a busy
process's 40 points), and encoding them whole would hold it 2.5–4 ms more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import Metric, MetricsData, ResourceMetrics, ScopeMetrics
from opentelemetry.sdk.trace import ReadableSpan

from ...gil import PER_GIL_HOLD, let_the_loop_in
from .otlp_spans import WireSpan, encode_spans

SPANS_PER_CHUNK = PER_GIL_HOLD
"""About 1 ms of encoding: the longest the event loop waits for the GIL because of it."""


def encode_spans_yielding(spans: Sequence[ReadableSpan | WireSpan], chunk: int = SPANS_PER_CHUNK) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` for ``spans``, encoded ``chunk`` spans at
    a time with the GIL handed to the event loop between chunks (``gil.let_the_loop_in``)."""
    parts: list[bytes] = []
    for start in range(0, len(spans), chunk):
        if start:
            let_the_loop_in()  # a thread waiting for the GIL (the event loop) runs now
        parts.append(encode_spans(spans[start : start + chunk]))
    return b"".join(parts)


POINTS_PER_CHUNK = PER_GIL_HOLD
"""About 1 ms of encoding (histogram points with buckets cost ~60 µs each)."""


def _pieces(data: MetricsData, chunk: int) -> Iterator[tuple[ResourceMetrics, ScopeMetrics, Metric, int]]:
    """Every metric in order, one with more than ``chunk`` points cut into runs of them."""
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                values: Any = metric.data  # Sum, Gauge, Histogram…: each has data_points
                points = list(values.data_points)
                if len(points) <= chunk:
                    yield rm, sm, metric, len(points)
                    continue
                for start in range(0, len(points), chunk):
                    part = points[start : start + chunk]
                    yield rm, sm, replace(metric, data=replace(values, data_points=part)), len(part)


def _as_data(pieces: list[tuple[ResourceMetrics, ScopeMetrics, Metric]]) -> MetricsData:
    """The pieces regrouped under their resource and scope, order kept."""
    grouped: list[tuple[ResourceMetrics, list[tuple[ScopeMetrics, list[Metric]]]]] = []
    for rm, sm, metric in pieces:
        if not grouped or grouped[-1][0] is not rm:
            grouped.append((rm, []))
        scopes = grouped[-1][1]
        if not scopes or scopes[-1][0] is not sm:
            scopes.append((sm, []))
        scopes[-1][1].append(metric)
    return MetricsData([
        ResourceMetrics(rm.resource, [ScopeMetrics(s.scope, ms, s.schema_url) for s, ms in scopes],
                        rm.schema_url)
        for rm, scopes in grouped
    ])  # fmt: skip


def encode_metrics_yielding(data: MetricsData, chunk: int = POINTS_PER_CHUNK) -> bytes:
    """The serialized ``ExportMetricsServiceRequest`` for ``data``, about ``chunk`` data
    points at a time, the GIL handed to the event loop before each chunk."""
    parts: list[bytes] = []
    batch: list[tuple[ResourceMetrics, ScopeMetrics, Metric]] = []
    points = 0

    def encode() -> None:
        let_the_loop_in()
        parts.append(encode_metrics(_as_data(batch)).SerializePartialToString())

    for rm, sm, metric, n in _pieces(data, chunk):
        if batch and points + n > chunk:
            encode()
            batch, points = [], 0
        batch.append((rm, sm, metric))
        points += n
    if batch:
        encode()
    return b"".join(parts)
