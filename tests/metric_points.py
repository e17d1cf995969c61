"""Reading recorded points back from an InMemoryMetricReader, for exact assertions."""

from __future__ import annotations

import bisect
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, MetricsData

from otel_livekit.metrics.catalogue import METER_NAME, views
from otel_livekit.metrics.instruments import Instruments
from otel_livekit.metrics.pricing import PriceTable
from otel_livekit.metrics.recorder import Recorder

TEST_PRICES = PriceTable(
    llm={"openai/fake-gpt": {"input": 1.0, "cached_input": 0.5, "output": 2.0,
                             "audio_input": 10.0, "audio_output": 20.0}},
    tts={"fake-tts-co/fake-voice": {"per_million_characters": 100.0}},
    stt={"fake-stt-co/fake-nova": {"per_minute": 0.01}},
)  # fmt: skip


def recorder_with_reader(prices: PriceTable = TEST_PRICES) -> tuple[Recorder, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=views())
    return Recorder(Instruments(provider.get_meter(METER_NAME)), prices), reader


class Points:
    """Every data point by metric name, from one collection."""

    def __init__(self, source: InMemoryMetricReader | MetricsData | None,
                 scope: str | None = METER_NAME) -> None:  # fmt: skip
        """``source``: a reader (collects now; exemplars go with the first collection
        after a measurement) or data already collected."""
        self.by_name: dict[str, list[Any]] = {}
        data = source.get_metrics_data() if isinstance(source, InMemoryMetricReader) else source
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                if scope is not None and sm.scope.name != scope:
                    continue
                for m in sm.metrics:
                    self.by_name.setdefault(m.name, []).extend(m.data.data_points)

    def names(self) -> set[str]:
        return {n for n, pts in self.by_name.items() if pts and any(_nonzero(p) for p in pts)}

    def matching(self, name: str, **attrs: Any) -> list[Any]:
        return [
            p for p in self.by_name.get(name, [])
            if all(p.attributes.get(k) == v for k, v in attrs.items())
        ]  # fmt: skip

    def one(self, name: str, **attrs: Any) -> Any:
        pts = self.matching(name, **attrs)
        assert len(pts) == 1, f"{name} {attrs}: {len(pts)} points: {self.by_name.get(name)}"
        return pts[0]

    def value(self, name: str, **attrs: Any) -> float:
        """Counter total, or histogram sum, over the matching points."""
        total = 0.0
        for p in self.matching(name, **attrs):
            total += p.sum if isinstance(p, HistogramDataPoint) else p.value
        return total

    def count(self, name: str, **attrs: Any) -> int:
        return sum(p.count for p in self.matching(name, **attrs))

    def series(self) -> int:
        return sum(len(pts) for pts in self.by_name.values())


def _nonzero(p: Any) -> bool:
    return bool(p.count) if isinstance(p, HistogramDataPoint) else p.value != 0


def bucket_of(point: HistogramDataPoint, value: float) -> int:
    """Index of the bucket ``value`` falls in (upper bounds inclusive, as OTel defines)."""
    return bisect.bisect_left(list(point.explicit_bounds), value)


def assert_buckets(point: HistogramDataPoint, values: list[float], bounds: tuple[float, ...]) -> None:
    """``point`` holds exactly ``values``: its boundaries are ``bounds`` and every bucket
    count is what those values give (bucket i holds bounds[i-1] < v <= bounds[i])."""
    assert tuple(point.explicit_bounds) == tuple(bounds)
    expected = [0] * (len(bounds) + 1)
    for v in values:
        expected[bisect.bisect_left(bounds, v)] += 1
    assert list(point.bucket_counts) == expected, (list(point.bucket_counts), expected)
    assert point.count == len(values)
    assert abs(point.sum - sum(values)) < 1e-9


def assert_in_bucket(point: HistogramDataPoint, low: float, high: float) -> None:
    """Every sample of ``point`` lies in the one bucket (low, high]."""
    bounds = list(point.explicit_bounds)
    i = bounds.index(high)
    assert (bounds[i - 1] if i else float("-inf")) == low, (low, high, bounds)
    assert point.bucket_counts[i] == point.count, (list(point.bucket_counts), i, point.count)
