"""Pipeline-health instruments: what happened to our own exports, per signal.

Observable counters that read each destination's ``ExportHealth`` at collection time, so
counting costs nothing on the export path. Their specs are catalogue rows (README table,
Views, Prometheus, dashboards) like every other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ... import semconv as sc
from ...metrics.catalogue import CATALOGUE, InstrumentSpec
from .health import ExportHealth

ATTR_SIGNAL = sc.EXPORT_SIGNAL
ATTR_OUTCOME = sc.EXPORT_OUTCOME
SELF_METRICS: tuple[InstrumentSpec, ...] = tuple(spec for spec in CATALOGUE if spec.observed)
"""The catalogue's export self-metrics (attempts, failures, items), in that order."""


class _Monotonic:
    """An observable counter must never go down; ``not_delivered`` is corrected downwards
    when a late export succeeds, so report the highest value seen."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}

    def __call__(self, key: tuple[str, str], value: int) -> int:
        value = max(value, self._seen.get(key, 0))
        self._seen[key] = value
        return value


def _per_signal(health: Sequence[ExportHealth], figure: Callable[[ExportHealth], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for h in health:
        out[h.signal] = out.get(h.signal, 0) + figure(h)
    return out


def register_self_metrics(meter: Meter, health: Sequence[ExportHealth]) -> None:
    """Create the three observable counters over ``health`` (one ExportHealth per destination)."""
    attempts, failures, items = SELF_METRICS
    clamp = _Monotonic()

    def counted(figure: Callable[[ExportHealth], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(v, {ATTR_SIGNAL: s}) for s, v in _per_signal(health, figure).items()]

        return observe

    outcomes: dict[str, Callable[[ExportHealth], int]] = {
        "delivered": lambda h: h.delivered,
        "spooled": lambda h: h.spooled,
        "replayed": lambda h: h.replayed,
        "dropped": lambda h: h.dropped + h.not_delivered,
    }

    def observe_items(options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for outcome, figure in outcomes.items():
            for signal, value in _per_signal(health, figure).items():
                out.append(Observation(clamp((signal, outcome), value),
                                       {ATTR_SIGNAL: signal, ATTR_OUTCOME: outcome}))  # fmt: skip
        return out

    meter.create_observable_counter(attempts.name, [counted(lambda h: h.attempts)], attempts.unit,
                                    attempts.description)  # fmt: skip
    meter.create_observable_counter(failures.name, [counted(lambda h: h.failures)], failures.unit,
                                    failures.description)  # fmt: skip
    meter.create_observable_counter(items.name, [observe_items], items.unit, items.description)
