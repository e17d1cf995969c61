"""Exporter wrappers that count failures and report them once instead of per batch.

An agent with a wrong Langfuse secret would otherwise log one error per span batch for
the whole call. The wrappers never raise: a failing backend must not hurt the agent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ...installation import Installation
from .http_client import failure_reason
from .otlp_spans import WireSpan

logger = logging.getLogger("otel_livekit")

_OTLP_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
)


class _FailureLine:
    """Whether a failure line is out (and no recovery since) for one place data is written
    to; exporters writing to the same place share it, so a broken file is one line."""

    def __init__(self, signals: str) -> None:
        self.signals = signals
        self.out = False
        self.lock = threading.Lock()


class ExportHealth:
    """What happened to one destination's exports, counted as it happens.

    ``failures`` counts failed HTTP attempts, retries included, so an outage shows while
    the exporter is still retrying; ``not_delivered`` counts items (spans, metric points)
    whose export failed or was cut off by the job-end deadline. The first failure and each
    recovery are logged, once per state change, never per batch.
    """

    def __init__(self, signal: str, target: str) -> None:
        self.signal = signal
        self.target = target
        self.attempts = 0
        self.failures = 0
        self.delivered = 0
        self.not_delivered = 0
        self.queued = 0
        """Items handed to the export pipeline (spans ended); ``None`` where unknown."""
        self.in_flight = 0
        self.spooled = 0
        """Items left in the on-disk spool because the backend did not take them in time."""
        self.replayed = 0
        """Spooled items (this process's or an earlier one's) delivered later from the spool."""
        self.dropped = 0
        """Spooled items dropped for good: evicted by the size cap or rejected on replay."""
        self.left_out = 0
        """Spans a lean destination leaves out of its tree on purpose (settled, not lost)."""
        self.failure_note: Callable[[str], str] | None = None
        """Words appended to the one failure line, e.g. where the spool keeps the batches."""
        self.last_error: str | None = None
        self.reason: Callable[[], str | None] | None = None
        """Where an exporter without HTTP keeps why its last export failed (the file's)."""
        self._written_off = 0
        self._precounted = 0
        self._line = _FailureLine(signal)
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        """A failure was logged and no success since (the line was said already)."""
        return self._line.out

    def share_line(self, other: ExportHealth) -> None:
        """``other`` writes to the same place (the file backend's traces and metrics): one
        failure line and one recovery line for both, naming both signals."""
        self._line.signals = f"{self._line.signals} and {other.signal}"
        other._line = self._line

    def why_failed(self) -> str:
        return (self.reason() if self.reason else None) or "export failed"

    def attempt(self, error: str | None) -> None:
        """One HTTP request (or one export call for exporters without one) ended."""
        with self._lock:
            precounted = self._precounted > 0
            if precounted:  # counted by cut() at the deadline: settle it, never twice
                self._precounted -= 1
            else:
                self.attempts += 1
            if error is None:
                if precounted:
                    self.failures -= 1  # it did answer, late
            else:
                if not precounted:
                    self.failures += 1
                self.last_error = error
        line, failed = self._line, error is not None
        with line.lock:
            changed, line.out = line.out != failed, failed
        if not changed:  # said already (by this signal or one sharing the line)
            return
        if error is None:
            logger.info("%s export to %s recovered", line.signals, self.target)
            return
        logger.warning(
            "%s export to %s failed: %s (further failures are counted, not logged, until it recovers)%s",
            line.signals,
            self.target,
            error,
            self.failure_note(error) if self.failure_note else "",
        )

    def leave_out(self, items: int) -> None:
        with self._lock:
            self.left_out += items

    def cut(self, reason: str) -> None:
        """An attempt still waiting for the backend at the job-end deadline counts as failed
        now: a LiveKit job ends before it times out. Its own end later settles it (a late
        answer takes the failure back) instead of counting again."""
        with self._lock:
            self.attempts += 1
            self.failures += 1
            self.last_error = reason
            self._precounted += 1

    def sending(self, items: int) -> None:
        with self._lock:
            self.in_flight += items

    def sent(self, items: int, ok: bool, *, spooled: bool = False) -> None:
        with self._lock:
            self.in_flight -= items
            counted = min(items, self._written_off)  # already counted by write_off()
            self._written_off -= counted
            if spooled:  # not delivered yet, but not lost either
                self.spooled += items
                self.not_delivered -= counted
            elif ok:
                self.delivered += items
                self.not_delivered -= counted
            else:
                self.not_delivered += items - counted

    def write_off(self) -> int:
        """The deadline passed: count what is queued or in flight as not delivered (an
        export that still ends later corrects it) and return how many items that is."""
        with self._lock:
            settled = self.delivered + self.not_delivered + self.spooled + self.left_out
            lost = max(self.queued - settled, self.in_flight, 0)
            self.not_delivered += lost
            self._written_off = self.in_flight
            return lost

    def add(self, *, replayed: int = 0, dropped: int = 0) -> None:
        """Count what the spool's sender settled after the exporter stopped waiting."""
        with self._lock:
            self.replayed += replayed
            self.dropped += dropped

    def __repr__(self) -> str:
        return f"ExportHealth({self.signal} -> {self.target}: {self.failures} failed attempts)"


SPAN_BATCH_SIZE = 64
"""Spans per export request, unless ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` says (the SDK's 512).

Queued spans are made one at a time on the agent's loop and freed together when their batch
is exported. CPython counts every container it allocates toward the next young collection,
and a collection in between resets that count, so a batch freed at once gives back at most
the ~700 a collection waits for: 512 spans (2–3 objects each once compacted) can count as
if they were garbage, and every tenth collection is a full one, tens of ms on the loop
(``bench/gc_bulk_free.py``; at 32 calls the saving is within the machine's drift,
bench/RESULTS.md). A busy process sends every 64 spans (twice a second at 32 calls), so
less waits in it; a quiet one still waits the batch delay (5 s)."""


Prepare = Callable[[ReadableSpan], "ReadableSpan | WireSpan | None"]
"""What the queue keeps of an ended span (``None``: nothing, the span is not exported)."""


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """Counts the spans it queues, so a cut-short flush can say how many never left; queues
    what ``prepare`` makes of each span (:func:`compact` unless the destination says)."""

    def __init__(self, exporter: SpanExporter, health: ExportHealth, batch_size: int | None = None,
                 prepare: Prepare | None = None) -> None:  # fmt: skip
        super().__init__(exporter, max_export_batch_size=batch_size)
        self._health = health
        self._prepare = prepare or compact

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return  # the SDK's processor queues only sampled spans too
        item = self._prepare(span)
        if item is None:
            return
        self._health.queued += 1
        super().on_end(item)  # type: ignore[arg-type]  # a WireSpan has what the queue reads


def wire_view(view: Callable[[ReadableSpan], ReadableSpan | None]) -> Prepare:
    """``prepare`` for an OTLP destination: its view of the span, written to wire bytes at
    the span's end (``otlp_spans.WireSpan``); a span that cannot be written there is queued
    as a compact copy, for the export thread to encode, count and log."""

    def prepare(span: ReadableSpan) -> ReadableSpan | WireSpan | None:
        shown = view(span)
        if shown is None:
            return None
        try:
            return WireSpan(shown)
        except Exception:
            return compact(shown)

    return prepare


def compact(span: ReadableSpan) -> ReadableSpan:
    """The ended span as the queue keeps it until its export (up to the batch delay, 5 s):
    plain containers in place of the SDK's lock-guarded ones (an empty events or links list
    is a lock, a deque and the list; attributes a lock, a dict and the mapping). A queued
    span is then about 7 objects for the garbage collector to walk instead of about 15, and
    a busy process's collections — pauses on the agent's loop — are that much shorter.
    Unchanged when the SDK dropped anything (its counts live in those containers)."""
    if span.dropped_attributes or span.dropped_events or span.dropped_links:
        return span
    events = span.events
    if any(e.dropped_attributes for e in events):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=dict(span.attributes or {}),
        events=tuple(Event(e.name, dict(e.attributes or {}), e.timestamp) for e in events),
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ReportingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, health: ExportHealth, *, http: bool = False) -> None:
        self._inner = inner
        self.health = health
        self._http = http  # attempts are then counted by the HttpClient

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.health.sending(len(spans))
        ok = False
        try:
            result = self._inner.export(spans)
            ok = result is SpanExportResult.SUCCESS
        except Exception as exc:  # never into the agent
            self.health.attempt(failure_reason(exc))
            return SpanExportResult.FAILURE
        finally:
            self.health.sent(len(spans), ok)
        if not self._http:
            self.health.attempt(None if ok else self.health.why_failed())
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()


def metric_points(metrics_data: MetricsData) -> int:
    return sum(
        len(m.data.data_points)
        for rm in metrics_data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )


class ReportingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, health: ExportHealth, *, http: bool = False,
                 temporality: dict[type, AggregationTemporality] | None = None) -> None:  # fmt: skip
        super().__init__(preferred_temporality=temporality)
        self._inner = inner
        self.health = health
        self._http = http

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = metric_points(metrics_data)
        self.health.sending(points)
        ok = False
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            ok = result is MetricExportResult.SUCCESS
        except Exception as exc:
            self.health.attempt(failure_reason(exc))
            return MetricExportResult.FAILURE
        finally:
            self.health.sent(points, ok)
        if not self._http:
            self.health.attempt(None if ok else self.health.why_failed())
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


def quiet_repeated_exporter_logs(installation: Installation) -> None:
    """Install a once-per-message filter on the OTel exporter loggers, taken off again by
    ``installation.uninstall()``."""
    repeat = _RepeatFilter()
    loggers = [logging.getLogger(name) for name in _OTLP_LOGGERS]
    for lg in loggers:
        lg.addFilter(repeat)

    def remove() -> None:
        for lg in loggers:
            lg.removeFilter(repeat)

    installation.add("exporter log filter", remove)
