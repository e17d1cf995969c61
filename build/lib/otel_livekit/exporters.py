"""Exporter wrappers that count failures and report them once instead of per batch.

An agent with a wrong Langfuse secret would otherwise log one error per span batch for
the whole call. The wrappers never raise: a failing backend must not hurt the agent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("otel_livekit")

_OTLP_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
)


class ExportHealth:
    """Failure counts for one destination; the first failure and each recovery are logged."""

    def __init__(self, signal: str, target: str) -> None:
        self.signal = signal
        self.target = target
        self.failures = 0
        self.successes = 0
        self._failing = False
        self._lock = threading.Lock()

    def record(self, ok: bool, error: BaseException | None = None) -> None:
        with self._lock:
            if ok:
                self.successes += 1
                recovered, self._failing = self._failing, False
                if recovered:
                    logger.info("%s export to %s recovered", self.signal, self.target)
                return
            self.failures += 1
            first, self._failing = not self._failing, True
            count = self.failures
        if first:
            reason = f": {type(error).__name__}" if error else ""
            logger.warning(
                "%s export to %s failed%s (failure #%d; further failures are counted, "
                "not logged, until it recovers)",
                self.signal,
                self.target,
                reason,
                count,
            )

    def __repr__(self) -> str:
        return f"ExportHealth({self.signal} -> {self.target}: {self.failures} failed)"


class ReportingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self._inner = inner
        self.health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # never into the agent
            self.health.record(False, exc)
            return SpanExportResult.FAILURE
        self.health.record(result is SpanExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()


class ReportingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, health: ExportHealth) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self.health = health

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self.health.record(False, exc)
            return MetricExportResult.FAILURE
        self.health.record(result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class _RepeatFilter(logging.Filter):
    """Lets each distinct message template of the OTLP exporters through once."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, object]] = set()
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        if key in self._seen:
            self.suppressed += 1
            return False
        if len(self._seen) < 256:
            self._seen.add(key)
        return True


_repeat_filter = _RepeatFilter()


def quiet_repeated_exporter_logs() -> None:
    """Install the once-per-message filter on the OTel exporter loggers (idempotent)."""
    for name in _OTLP_LOGGERS:
        lg = logging.getLogger(name)
        if _repeat_filter not in lg.filters:
            lg.addFilter(_repeat_filter)
