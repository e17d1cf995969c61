"""Metric points are encoded a few at a time (export/delivery/encoding.py), the GIL handed
to the agent's event loop before each chunk: the SDK's collection has just held it on the
export thread. The backend still gets one request per export, every data point once, in
order, exactly as the SDK's encoder writes it."""

from __future__ import annotations

from typing import Any

import pytest
from gil_turns import turns_typically
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from otlp_receiver import OtlpReceiver

from otel_livekit import setup_tracing
from otel_livekit.export.delivery.encoding import POINTS_PER_CHUNK, encode_metrics_yielding


def collected(series: int, scopes: int = 1) -> MetricsData:
    """What a reader hands the exporter: a counter, a histogram and a gauge per scope, each
    with ``series`` attribute sets."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "enc"}))
    for s in range(scopes):
        meter = provider.get_meter(f"scope-{s}")
        counter = meter.create_counter("calls")
        histogram = meter.create_histogram("latency", unit="s")
        gauge = meter.create_gauge("queue")
        for i in range(series):
            counter.add(i + 1, {"model": f"m{i}"})
            histogram.record(0.01 * (i + 1), {"model": f"m{i}"})
            gauge.set(i, {"model": f"m{i}"})
    data = reader.get_metrics_data()
    assert data is not None
    return data


def data_points(metric: Any) -> Any:
    return getattr(metric, str(metric.WhichOneof("data"))).data_points


def points(request: ExportMetricsServiceRequest) -> list[tuple[str, str, Any]]:
    """(scope, metric, point) for every data point, in order."""
    return [
        (sm.scope.name, m.name, p)
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in data_points(m)
    ]


def chunk_sizes(request: ExportMetricsServiceRequest) -> list[int]:
    """Data points per ResourceMetrics: one per chunk."""
    return [sum(len(data_points(m)) for s in rm.scope_metrics for m in s.metrics)
            for rm in request.resource_metrics]  # fmt: skip


def test_chunks_decode_to_what_the_sdk_encoder_writes() -> None:
    data = collected(series=7, scopes=2)  # 2 scopes × 3 metrics × 7 points
    whole = encode_metrics(data)
    joined = ExportMetricsServiceRequest.FromString(encode_metrics_yielding(data, chunk=10))
    assert points(joined) == points(whole)  # every field of every point, in order
    assert len(points(joined)) == 42
    assert chunk_sizes(joined) == [7, 7, 7, 7, 7, 7]  # whole metrics while they fit
    assert all(rm.resource == whole.resource_metrics[0].resource for rm in joined.resource_metrics)
    # a metric with more points than a chunk is cut into runs, in order
    cut = ExportMetricsServiceRequest.FromString(encode_metrics_yielding(data, chunk=3))
    assert points(cut) == points(whole)
    assert chunk_sizes(cut) == [3, 3, 1] * 6


SERIES = 170  # 510 points: 3-4 ms for the SDK's encoder in one go


def test_encoding_an_export_leaves_the_gil_to_the_event_loop_before_each_chunk() -> None:
    """Counted in the waiting thread's turns (the median of five), which holds on a loaded
    2-core machine: in one go it gets none, 16 points at a time 50-130 (measured)."""
    data = collected(series=SERIES)
    hand_overs = -(-3 * SERIES // POINTS_PER_CHUNK)  # 32: one before each chunk
    whole = turns_typically(lambda: encode_metrics(data).SerializePartialToString())
    turns = turns_typically(lambda: encode_metrics_yielding(data))
    assert whole < hand_overs // 2 <= turns, (whole, turns, hand_overs)


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "spool-off"])
def test_an_export_reaches_the_backend_as_one_request_in_chunks(spool: bool) -> None:
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, service_name="enc", spool=spool)
        assert (t.spooler is not None and bool(t.spooler.outboxes)) is spool
        assert t.recorder is not None
        t.recorder.add("voice_agent.sessions.started", 1)
        for i in range(40):  # 40 series of one counter: cut into runs of 16
            t.recorder.add("voice_agent.tool.calls", 1, {"gen_ai.tool.name": f"tool-{i}"})
        assert t.force_flush()
        (request,) = [r.body for r in rx.requests if r.path == "/v1/metrics"]
        tools = [p for _, name, p in points(request) if name == "voice_agent.tool.calls"]
        assert sorted(int(p.as_int or p.as_double) for p in tools) == [1] * 40
        assert all(size <= POINTS_PER_CHUNK for size in chunk_sizes(request))
        assert len(request.resource_metrics) >= 3
