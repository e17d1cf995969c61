"""OTel instrument → Prometheus names, by the OpenTelemetry↔Prometheus compatibility rules.

The same rules the SDK's Prometheus reader, the Collector's ``prometheus`` exporter and
Prometheus's OTLP receiver apply, so one set of dashboards and alert rules works whichever
path the metrics took: dots (any run of characters outside ``[a-zA-Z0-9:]``) become one
underscore, the unit becomes a suffix (``s`` → ``_seconds``, ``{token}`` annotations dropped,
``a/b`` → ``a_per_b``), counters end in ``_total``, histograms expose ``_bucket``/``_sum``/
``_count``, and an UpDownCounter is a gauge. Written from the specification; a test checks
it against ``opentelemetry-exporter-prometheus`` on a real session.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from ...metrics.catalogue import CATALOGUE, InstrumentSpec, Kind

PromType = Literal["counter", "gauge", "histogram"]

_NOT_NAME = re.compile(r"[^a-zA-Z0-9:]+")
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9]+")
_ANNOTATION = re.compile(r"{.*}")

_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tibibytes", "KBy": "kilobytes",
    "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes", "m": "meters", "V": "volts",
    "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz",
    "1": "", "%": "percent",
}  # fmt: skip
"""UCUM units with a conventional Prometheus word (the specification's table)."""

_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month",
              "y": "year"}  # fmt: skip
"""Denominators of ``a/b`` units, singular."""


def _clean(text: str, pattern: re.Pattern[str]) -> str:
    if text and text[0].isdigit():  # a name must not start with a digit
        text = "_" + text[1:]
    return pattern.sub("_", text)


def unit_suffix(unit: str) -> str:
    """``s`` → ``seconds``, ``{token}`` → ``""``, ``{token}/s`` → ``per_second``."""
    unit = _ANNOTATION.sub("", unit)
    if unit in _UNITS:
        return _UNITS[unit]
    top, slash, bottom = unit.partition("/")
    if slash and (bottom := _NOT_NAME.sub("_", bottom)):
        top = _NOT_NAME.sub("_", top)
        top = _UNITS.get(top, top)
        per = _PER_UNITS.get(bottom, bottom)
        return f"{top}_per_{per}" if top else f"per_{per}"
    return _NOT_NAME.sub("_", unit).strip("_")


def prometheus_type(kind: Kind) -> PromType:
    """Monotonic sums are counters, non-monotonic ones gauges."""
    return {"counter": "counter", "histogram": "histogram", "updowncounter": "gauge"}[kind]  # type: ignore[return-value]


def family_name(name: str, unit: str, prom_type: PromType) -> str:
    """The family's name with its unit suffix; a counter's without ``_total`` (its samples
    add it)."""
    base = _clean(name, _NOT_NAME)
    if prom_type == "counter" and base.endswith("_total"):
        base = base[: -len("_total")]
    suffix = unit_suffix(unit)
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def label_name(key: str) -> str:
    """``gen_ai.provider.name`` → ``gen_ai_provider_name``."""
    return _clean(key, _NOT_LABEL)


def label_value(value: object) -> str:
    """Strings as they are; anything else as JSON (``True`` → ``true``), like the SDK reader."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def bound_label(bound: float) -> str:
    """A bucket's ``le`` label as the SDK's reader writes it (``str()`` of the boundary)."""
    return f"{bound}"


def sample_names(spec: InstrumentSpec) -> tuple[str, ...]:
    """The names a scrape shows for ``spec``: ``X_total``; ``X_bucket``, ``X_count``,
    ``X_sum``; or ``X``."""
    base = family_name(spec.name, spec.unit, prometheus_type(spec.kind))
    if spec.kind == "counter":
        return (f"{base}_total",)
    if spec.kind == "histogram":
        return (f"{base}_bucket", f"{base}_count", f"{base}_sum")
    return (base,)


def catalogue_names() -> dict[str, tuple[PromType, str]]:
    """Catalogue instrument → (Prometheus type, family name as queried: counters with
    ``_total``)."""
    out: dict[str, tuple[PromType, str]] = {}
    for spec in CATALOGUE:
        base = family_name(spec.name, spec.unit, prometheus_type(spec.kind))
        queried = f"{base}_total" if spec.kind == "counter" else base
        out[spec.name] = (prometheus_type(spec.kind), queried)
    return out


def markdown_table() -> str:
    """The README's OTel → Prometheus name table."""
    rows = ["| instrument | Prometheus type | Prometheus name |", "|---|---|---|"]
    for instrument, (prom_type, name) in catalogue_names().items():
        rows.append(f"| `{instrument}` | {prom_type} | `{name}` |")
    return "\n".join(rows) + "\n"
