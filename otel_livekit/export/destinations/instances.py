"""A bounded identity for LiveKit's short-lived job processes.

LiveKit runs every call in its own process. With the SDK's default (a random
``service.instance.id`` per process) every call starts a fresh set of metric streams, which
the Collector and Prometheus keep until they expire: series grow with calls, not with load.

Here a process instead claims the lowest free *slot* of its service on this host — a file
lock held for the process's life, released by the kernel however the process ends (SIGKILL
included) — and is ``<host>/<slot>``. Two live processes never share a slot, so their
cumulative streams cannot clash, and the number of identities is the peak number of
concurrent processes. A slot's next holder *continues* its cumulative counters and
histograms from the values the previous holder last exported (saved beside the lock), with
the same start time: the stream stays monotonic, so ``rate()``/``increase()`` stay exact
across processes. A stream not exported for longer than the expiration (the Collector's
``metric_expiration``) starts again from zero, because the Collector and Prometheus have
forgotten it by then. Gauges and up-down counters are never continued: a new holder's value
replaces a dead one's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    Sum,
)

logger = logging.getLogger("otel_livekit")

MAX_SLOTS = 1024
DEFAULT_EXPIRATION = 3600.0  # the shipped Collector's metric_expiration (60m)


@dataclass(frozen=True)
class InstanceSettings:
    enabled: bool
    directory: Path
    expiration: float  # seconds a stream may go unexported and still be continued


def default_directory(service: str, env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "otel_livekit" / "instances" / _slug(service)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "_"


class Slot:
    """One claimed slot: the lock held open for the process's life and the saved streams."""

    def __init__(self, number: int, lock: IO[str], directory: Path, expiration: float) -> None:
        self.number = number
        self._lock = lock
        self.instance_id = f"{socket.gethostname()}/{number}"
        self.series = SeriesContinuity(directory / f"slot-{number}.json", expiration)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self._lock.close()  # closing the descriptor drops the flock


def claim_slot(settings: InstanceSettings) -> Slot | None:
    """The lowest free slot, or None where locks are unavailable (then the SDK's id stays)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    try:
        settings.directory.mkdir(parents=True, exist_ok=True)
        for number in range(MAX_SLOTS):
            lock = open(settings.directory / f"slot-{number}.lock", "a")  # noqa: SIM115 (held for life)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            return Slot(number, lock, settings.directory, settings.expiration)
    except OSError as exc:
        logger.warning("otel_livekit: no instance slot in %s (%s); this process uses a random "
                       "service.instance.id", settings.directory, exc.strerror or exc)  # fmt: skip
        return None
    logger.warning("otel_livekit: all %d instance slots in %s are held; this process uses a random "
                   "service.instance.id", MAX_SLOTS, settings.directory)  # fmt: skip
    return None


_Key = str


def _key(scope: str, metric: Metric, attributes: Mapping[str, Any] | None) -> _Key:
    attrs = sorted((k, list(v) if isinstance(v, (list, tuple)) else v) for k, v in (attributes or {}).items())
    return json.dumps([scope, metric.name, attrs], separators=(",", ":"))


class SeriesContinuity:
    """The slot's cumulative streams, carried from one holder to the next."""

    def __init__(self, path: Path, expiration: float) -> None:
        self._path = path
        self._expiration_ns = int(expiration * 1e9)
        self._lock = threading.Lock()
        self._saved: dict[_Key, dict[str, Any]] = self._load()
        self._base: dict[_Key, dict[str, Any] | None] = {}  # fixed when this process first exports a stream

    def _load(self) -> dict[_Key, dict[str, Any]]:
        try:
            saved = json.loads(self._path.read_text())
            streams = saved.get("streams", {}) if isinstance(saved, dict) else {}
        except (OSError, ValueError):
            return {}
        now = time.time_ns()
        return {k: v for k, v in streams.items()
                if isinstance(v, dict) and now - int(v.get("t", 0)) < self._expiration_ns}  # fmt: skip

    def _base_for(self, key: _Key, kind: str, bounds: Sequence[float] | None = None) -> dict[str, Any] | None:
        if key not in self._base:
            saved = self._saved.get(key)
            fresh = (saved is not None and saved.get("k") == kind
                     and (bounds is None or saved.get("e") == list(bounds)))  # fmt: skip
            self._base[key] = saved if fresh else None
        return self._base[key]

    def carry(self, data: MetricsData) -> MetricsData:
        """``data`` with every cumulative monotonic stream continued from the slot's history."""
        with self._lock:
            now = time.time_ns()
            out = replace(data, resource_metrics=[
                replace(rm, scope_metrics=[
                    replace(sm, metrics=[self._metric(sm.scope.name, m, now) for m in sm.metrics])
                    for sm in rm.scope_metrics
                ])
                for rm in data.resource_metrics
            ])  # fmt: skip
            self._save()
            return out

    def _metric(self, scope: str, metric: Metric, now: int) -> Metric:
        data = metric.data
        cumulative = getattr(data, "aggregation_temporality", None) is AggregationTemporality.CUMULATIVE
        if isinstance(data, Sum) and cumulative and data.is_monotonic:
            return replace(metric, data=replace(data, data_points=[self._sum(scope, metric, p, now)
                                                                   for p in data.data_points]))  # fmt: skip
        if isinstance(data, Histogram) and cumulative:
            return replace(metric, data=replace(data, data_points=[self._histogram(scope, metric, p, now)
                                                                   for p in data.data_points]))  # fmt: skip
        return metric

    def _sum(self, scope: str, metric: Metric, p: NumberDataPoint, now: int) -> NumberDataPoint:
        key = _key(scope, metric, p.attributes)
        if (base := self._base_for(key, "sum")) is not None:
            p = replace(p, start_time_unix_nano=int(base["s"]), value=p.value + base["v"])
        self._saved[key] = {"k": "sum", "s": p.start_time_unix_nano, "t": now, "v": p.value}
        return p

    def _histogram(self, scope: str, metric: Metric, p: HistogramDataPoint, now: int) -> HistogramDataPoint:
        key = _key(scope, metric, p.attributes)
        if (base := self._base_for(key, "histogram", p.explicit_bounds)) is not None:
            p = replace(
                p, start_time_unix_nano=int(base["s"]), count=p.count + base["c"], sum=p.sum + base["v"],
                bucket_counts=[a + b for a, b in zip(p.bucket_counts, base["b"], strict=True)],
                min=min(p.min, base["min"]), max=max(p.max, base["max"]),
            )  # fmt: skip
        self._saved[key] = {"k": "histogram", "s": p.start_time_unix_nano, "t": now, "c": p.count,
                            "v": p.sum, "b": list(p.bucket_counts), "e": list(p.explicit_bounds),
                            "min": p.min, "max": p.max}  # fmt: skip
        return p

    def _save(self) -> None:
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps({"streams": self._saved}, separators=(",", ":")))
            os.replace(tmp, self._path)
        except OSError as exc:
            logger.debug("otel_livekit: cannot save the slot's streams: %s", exc)


class SlotMetricExporter(MetricExporter):
    """Hands the inner exporter the slot-continued streams (before encoding or spooling)."""

    def __init__(
        self,
        inner: MetricExporter,
        series: SeriesContinuity,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality)
        self._inner = inner
        self._series = series

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:  # fmt: skip
        try:
            metrics_data = self._series.carry(metrics_data)
        except Exception as exc:  # never lose the export over the continuation
            logger.debug("otel_livekit: slot continuation skipped: %s", exc)
        return self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
