"""Pipeline-health instruments: what happened to our own exports, per signal.

Observable counters that read each destination's ``ExportHealth`` at collection time, so
counting costs nothing on the export path. Specs in the catalogue's ``InstrumentSpec`` shape
so the catalogue (README table, Views, dashboards) can list them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.view import View

from ..catalogue import InstrumentSpec
from ..exporters import ExportHealth

ATTR_SIGNAL = "otel_livekit.signal"
"""``traces`` or ``metrics``."""
ATTR_OUTCOME = "otel_livekit.export.outcome"
"""``delivered``, ``dropped``, ``spooled`` or ``replayed``."""

SOURCE = "the exporters' ExportHealth"
SELF_METRICS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec("otel_livekit.export.attempts", "counter", "{attempt}",
                   "Export HTTP attempts (retries and spool replays included)", (ATTR_SIGNAL,), None, SOURCE),
    InstrumentSpec("otel_livekit.export.failures", "counter", "{attempt}",
                   "Failed export attempts (refused, timeout, HTTP error)", (ATTR_SIGNAL,), None, SOURCE),
    InstrumentSpec("otel_livekit.export.items", "counter", "{item}",
                   "Spans / metric points by outcome: delivered, spooled for later, replayed "
                   "from the spool, dropped for good", (ATTR_SIGNAL, ATTR_OUTCOME), None, SOURCE),
)  # fmt: skip


def self_metric_views() -> list[View]:
    return [spec.view() for spec in SELF_METRICS]


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
