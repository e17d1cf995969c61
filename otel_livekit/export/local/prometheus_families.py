"""OTel points → Prometheus families: what both modes of the sink write.

:func:`convert` keeps the catalogue's metrics and names them by :mod:`.prometheus_names`;
:func:`to_prometheus` makes prometheus-client families of them (single process);
:mod:`.prometheus_files` writes them to the multiprocess files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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

from ...metrics.catalogue import BY_NAME, CATALOGUE, METER_NAME
from .prometheus_names import (
    PromType,
    bound_label,
    family_name,
    label_name,
    label_value,
    unit_suffix,
)

OVERFLOW_ATTRIBUTE = "otel.metric.overflow"
"""The SDK's cardinality-limit marker: kept, or the overflow series would collide."""

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


SCOPES = frozenset(spec.meter for spec in CATALOGUE)
"""Our meter, and LiveKit's for the LiveKit instruments the catalogue exposes."""


def convert(data: MetricsData | None) -> list[Family]:
    """The catalogue's metrics (meter ``otel_livekit``) in ``data``, as Prometheus families.

    Label keys of a family are the union over its points, missing ones as ``""`` (as the
    SDK's reader does); only the catalogue's allowed keys pass."""
    families: list[Family] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            if sm.scope.name not in SCOPES:
                continue
            for metric in sm.metrics:
                spec = BY_NAME.get(metric.name)
                if spec is None or spec.meter != sm.scope.name:
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
                present = {k for row in rows for k in row}
                if spec.meter != METER_NAME:  # LiveKit adds error.type only to failures: fixed
                    present |= {label_name(k) for k in spec.attributes}  # keys keep a series one
                keys = tuple(sorted(present))
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
