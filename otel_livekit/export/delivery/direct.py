"""The spool-off exporters: encode, post, retry within the transport's timeout.

With the spool off (``OTEL_LIVEKIT_SPOOL=false``) a batch is posted from the export worker
thread and retried on what the backend says is temporary (408, 429, 5xx, no answer), with
exponential backoff and ``Retry-After`` honoured, until the transport's timeout — what the
SDK's OTLP/HTTP exporters do, built here on the package's own transport and encoders so no
SDK exporter internals are read. Spans are encoded a few at a time (``encoding``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..destinations.transport import Transport
from .encoding import encode_metrics_yielding, encode_spans_yielding
from .http_client import HttpClient
from .outbox import Wire, post

logger = logging.getLogger("otel_livekit")

FIRST_BACKOFF = 1.0


class Sender:
    """Posts one encoded request until it is delivered, rejected or out of time."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self._closed = threading.Event()

    def send(self, data: bytes) -> bool:
        deadline = time.monotonic() + self.wire.timeout
        backoff = FIRST_BACKOFF
        while not self._closed.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            answer = post(replace(self.wire, timeout=left), data)
            if answer.ok:
                return True
            if not answer.retryable:
                return False
            wait = answer.retry_after if answer.retry_after is not None else backoff
            if time.monotonic() + wait >= deadline or self._closed.wait(wait):
                return False
            backoff *= 2
        return False

    def close(self) -> None:
        self._closed.set()


def wire(transport: Transport, client: HttpClient, timeout: float | None = None) -> Wire:
    return Wire(
        endpoint=transport.endpoint, headers=transport.request_headers(),
        timeout=transport.timeout if timeout is None else timeout, compress=transport.compressor(),
        client=client,
    )  # fmt: skip


class DirectSpanExporter(SpanExporter):
    def __init__(self, transport: Transport, client: HttpClient) -> None:
        self.sender = Sender(wire(transport, client))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            data = encode_spans_yielding(spans)
        except Exception as exc:  # never into the agent
            logger.debug("otel_livekit: cannot encode spans: %s", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self.sender.send(data) else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self.sender.close()


class DirectMetricExporter(MetricExporter):
    def __init__(self, transport: Transport, client: HttpClient,
                 temporality: dict[type, AggregationTemporality]) -> None:  # fmt: skip
        super().__init__(preferred_temporality=temporality)
        self.sender = Sender(wire(transport, client))

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:  # fmt: skip
        try:
            data = encode_metrics_yielding(metrics_data)
        except Exception as exc:
            logger.debug("otel_livekit: cannot encode metrics: %s", exc)
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS if self.sender.send(data) else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.sender.close()
