"""OTel points → Prometheus families, and this process's multiprocess files.

What both modes of the sink write: :func:`convert` keeps the catalogue's metrics and
names them by :mod:`.prometheus_names`; :func:`to_prometheus` makes prometheus-client
families of them (single process); :class:`MultiprocessFiles` writes them to
prometheus-client's per-process files (multiprocess).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from ..catalogue import BY_NAME, METER_NAME
from .prometheus_names import (
    PromType,
    bound_label,
    family_name,
    label_name,
    label_value,
    unit_suffix,
)

logger = logging.getLogger("otel_livekit")

OVERFLOW_ATTRIBUTE = "otel.metric.overflow"
"""The SDK's cardinality-limit marker: kept, or the overflow series would collide."""

LIVE_GAUGE_MODE = "livesum"

HistValue = tuple[tuple[float, ...], tuple[int, ...], float]
"""Explicit bounds, per-bucket (non-cumulative) counts, sum."""


@dataclass(frozen=True)
class Family:
    """One catalogue metric, converted: what both modes write."""

    name: str
    type: PromType
    unit: str
    documentation: str
    label_names: tuple[str, ...]
    rows: tuple[tuple[tuple[str, ...], float | HistValue], ...]


def convert(data: MetricsData | None) -> list[Family]:
    """The catalogue's metrics (meter ``otel_livekit``) in ``data``, as Prometheus families.

    Label keys of a family are the union over its points, missing ones as ``""`` (as the
    SDK's reader does); only the catalogue's allowed keys pass."""
    families: list[Family] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            if sm.scope.name != METER_NAME:
                continue
            for metric in sm.metrics:
                spec = BY_NAME.get(metric.name)
                if spec is None:
                    continue
                allowed = {*spec.attributes, OVERFLOW_ATTRIBUTE}
                ptype: PromType
                if isinstance(metric.data, Histogram):
                    ptype = "histogram"
                elif isinstance(metric.data, Sum) and metric.data.is_monotonic:
                    ptype = "counter"
                else:
                    ptype = "gauge"
                rows: list[dict[str, str]] = []
                points: list[float | HistValue] = []
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    rows.append({label_name(k): label_value(v) for k, v in attributes.items()
                                 if k in allowed})  # fmt: skip
                    if isinstance(point, HistogramDataPoint):
                        points.append((tuple(point.explicit_bounds), tuple(point.bucket_counts), point.sum))
                    elif isinstance(point, NumberDataPoint):
                        points.append(point.value)
                    else:  # exponential histograms: not in the catalogue
                        rows.pop()
                keys = tuple(sorted({k for row in rows for k in row}))
                cells = tuple(tuple(row.get(k, "") for k in keys) for row in rows)
                families.append(Family(
                    name=family_name(metric.name, metric.unit or "", ptype),
                    type=ptype,
                    unit=unit_suffix(metric.unit or ""),
                    documentation=metric.description or "",
                    label_names=keys,
                    rows=tuple(zip(cells, points, strict=True)),
                ))  # fmt: skip
    return families


def to_prometheus(families: Iterable[Family]) -> Iterator[Metric]:
    """Families as prometheus-client metric families (the single-process exposition)."""
    for fam in families:
        labels = list(fam.label_names)
        if fam.type == "histogram":
            hist = HistogramMetricFamily(fam.name, fam.documentation, labels=labels, unit=fam.unit)
            for row, value in fam.rows:
                bounds, counts, total = value  # type: ignore[misc]
                cumulative, acc = [], 0
                for bound, count in zip((*map(bound_label, bounds), "+Inf"), counts, strict=True):
                    acc += count
                    cumulative.append((bound, float(acc)))
                hist.add_metric(list(row), cumulative, sum_value=total)
            yield hist
        elif fam.type == "counter":
            counter = CounterMetricFamily(fam.name, fam.documentation, labels=labels, unit=fam.unit)
            for row, value in fam.rows:
                counter.add_metric(list(row), value)  # type: ignore[arg-type]
            yield counter
        else:
            gauge = GaugeMetricFamily(fam.name, fam.documentation, labels=labels, unit=fam.unit)
            for row, value in fam.rows:
                gauge.add_metric(list(row), value)  # type: ignore[arg-type]
            yield gauge


class MultiprocessFiles:
    """This process's prometheus-client multiprocess files for our metrics.

    Files are named ``<type>_<pid>-otel-livekit.db``, apart from prometheus-client's own
    files of the same process (two writers on one mmap would corrupt it). Counters and
    histogram buckets are written as the file's earlier value plus our cumulative total, so a
    reused pid keeps counting, as prometheus-client's own values do. Not thread-safe: the
    sink writes under its lock."""

    def __init__(self, directory: str, file_id: str | None = None) -> None:
        self.directory = directory
        self.file_id = file_id or f"{os.getpid()}-otel-livekit"
        self._pid = os.getpid()
        self._files: dict[str, MmapedDict] = {}
        self._series: dict[tuple[str, str, tuple[str, ...]], list[Any]] = {}

    def write(self, families: Iterable[Family]) -> None:
        if os.getpid() != self._pid:  # a fork: the child's totals include the parent's
            return
        for fam in families:
            for row, value in fam.rows:
                if fam.type == "histogram":
                    bounds, counts, total = value  # type: ignore[misc]
                    names = (*fam.label_names, "le")
                    for bound, count in zip((*map(bound_label, bounds), "+Inf"), counts, strict=True):
                        self._set("histogram", fam, f"{fam.name}_bucket", names, (*row, bound), count)
                    self._set("histogram", fam, f"{fam.name}_sum", fam.label_names, row, total)
                elif fam.type == "counter":
                    self._set("counter", fam, f"{fam.name}_total", fam.label_names, row, value)  # type: ignore[arg-type]
                else:
                    self._set(f"gauge_{LIVE_GAUGE_MODE}", fam, fam.name, fam.label_names, row, value)  # type: ignore[arg-type]

    def _file(self, prefix: str) -> MmapedDict:
        found = self._files.get(prefix)
        if found is None:
            path = os.path.join(self.directory, f"{prefix}_{self.file_id}.db")
            found = self._files[prefix] = MmapedDict(path)  # type: ignore[no-untyped-call]
        return found

    def _set(self, prefix: str, fam: Family, sample: str, names: Sequence[str], row: Sequence[str],
             value: float) -> None:  # fmt: skip
        series_key = (prefix, sample, tuple(row))
        series = self._series.get(series_key)
        if series is None:
            file = self._file(prefix)
            key = mmap_key(fam.name, sample, list(names), list(row), fam.documentation)
            # a gauge is this process's value now; counters continue a reused pid's file
            baseline = 0.0 if prefix.startswith("gauge") else file.read_value(key)[0]  # type: ignore[no-untyped-call]
            series = self._series[series_key] = [file, key, baseline, None]
        file, key, baseline, last = series
        if value != last:
            file.write_value(key, baseline + value, 0.0)
            series[3] = value

    def close(self) -> None:
        """Close the files; remove the live gauge's so an ended process no longer counts."""
        for file in self._files.values():
            file.close()  # type: ignore[no-untyped-call]
        self._files.clear()
        self._series.clear()
        path = os.path.join(self.directory, f"gauge_{LIVE_GAUGE_MODE}_{self.file_id}.db")
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError:
            logger.warning("otel_livekit: could not remove %s", path, exc_info=True)
