"""A MeterProvider that hands LiveKit no-op instruments for what the catalogue records itself.

livekit-agents records token counts and LLM latencies on every metrics event
(``collect_usage``); the catalogue records the same quantities live, with normalized provider
names and cancelled requests kept apart. A drop View hides LiveKit's copies from every
reader, but the SDK still builds, cleans and hashes each measurement before dropping it:
about 25 µs per metrics event on the agent's event loop, for nothing. A no-op instrument
costs a method call. LiveKit's other instruments (turn histograms, tool and agent
durations, connection and event-loop health) are real SDK instruments as before.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.metrics import (
    CallbackT,
    Counter,
    Histogram,
    Meter,
    NoOpCounter,
    NoOpHistogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.util.types import Attributes

from .livekit_views import LIVEKIT_METER


class CatalogueMeterProvider(MeterProvider):
    """The SDK's MeterProvider; LiveKit's meter gets no-ops for the ``replaced`` names."""

    def __init__(self, *args: Any, replaced: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replaced = tuple(replaced)

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> Meter:
        meter = super().get_meter(name, version, schema_url, attributes)
        if name != LIVEKIT_METER or not self.replaced:
            return meter
        return _ReplacingMeter(meter, self.replaced)


class _ReplacingMeter(Meter):
    def __init__(self, meter: Meter, replaced: Sequence[str]) -> None:
        super().__init__(meter.name, meter.version, meter.schema_url)
        self._meter = meter
        self._replaced = replaced

    def _is_replaced(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._replaced)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        if self._is_replaced(name):
            return NoOpCounter(name, unit=unit, description=description)
        return self._meter.create_counter(name, unit, description)

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Histogram:
        if self._is_replaced(name):
            return NoOpHistogram(name, unit=unit, description=description)
        return self._meter.create_histogram(
            name, unit, description, explicit_bucket_boundaries_advisory=explicit_bucket_boundaries_advisory
        )

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter:
        return self._meter.create_up_down_counter(name, unit, description)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Gauge:
        return self._meter.create_gauge(name, unit, description)

    def create_observable_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "",
        description: str = "",
    ) -> ObservableCounter:  # fmt: skip
        return self._meter.create_observable_counter(name, callbacks, unit, description)

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "",
        description: str = "",
    ) -> ObservableGauge:  # fmt: skip
        return self._meter.create_observable_gauge(name, callbacks, unit, description)

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "",
        description: str = "",
    ) -> ObservableUpDownCounter:  # fmt: skip
        return self._meter.create_observable_up_down_counter(name, callbacks, unit, description)
