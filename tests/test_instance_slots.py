"""Metric series on the Collector path grow with concurrent calls, not with calls: job
processes take a slot of their service on the host as ``service.instance.id`` and continue the
slot's cumulative streams (issue #20, item 7)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import job_entry
from livekit_jobs import launch_job
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from otlp_receiver import OtlpReceiver, attrs

from otel_livekit.export.destinations.instances import InstanceSettings, SeriesContinuity, claim_slot


def _settings(directory: Path, expiration: float = 3600.0) -> InstanceSettings:
    return InstanceSettings(True, directory, expiration)


def test_a_process_takes_the_lowest_free_slot_and_a_killed_one_frees_it(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    first, second = claim_slot(s), claim_slot(s)
    assert first is not None and second is not None
    assert (first.number, second.number) == (0, 1)
    first.release()
    again = claim_slot(s)
    assert again is not None and again.number == 0
    assert again.instance_id.endswith("/0")

    # another process holds slot 2 until it is SIGKILLed: the kernel frees the lock
    code = ("import sys, time; from pathlib import Path; "
            "from otel_livekit.export.destinations.instances import InstanceSettings, claim_slot; "
            "slot = claim_slot(InstanceSettings(True, Path(sys.argv[1]), 3600.0)); "
            "print(slot.number, flush=True); time.sleep(60)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "2"
        taken = claim_slot(s)
        assert taken is not None and taken.number == 3
        taken.release()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        freed = claim_slot(s)
        assert freed is not None and freed.number == 2
    finally:
        holder.kill()
        holder.wait(10)


def _process(path: Path, expiration: float, calls: int, seconds: list[float], active: int) -> MetricsData:
    """One job process's export: what the SDK hands the exporter, continued by the slot."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("otel_livekit")
    meter.create_counter("voice_agent.sessions.started").add(calls, {"agent": "a"})
    latency = meter.create_histogram("voice_agent.turn.latency", unit="s")
    for value in seconds:
        latency.record(value)
    meter.create_up_down_counter("voice_agent.sessions.active").add(active)
    data = reader.get_metrics_data()
    assert data is not None
    return SeriesContinuity(path, expiration).carry(data)


def _points(data: MetricsData) -> dict[str, Any]:
    return {m.name: m.data.data_points[0] for rm in data.resource_metrics
            for sm in rm.scope_metrics for m in sm.metrics}  # fmt: skip


def test_the_next_process_in_a_slot_continues_its_counters_and_histograms(tmp_path: Path) -> None:
    path = tmp_path / "slot-0.json"
    one = _points(_process(path, 3600.0, 2, [0.4, 1.5], 1))
    two = _points(_process(path, 3600.0, 3, [0.7], 0))
    started, latency = two["voice_agent.sessions.started"], two["voice_agent.turn.latency"]
    assert started.value == 5  # 2 + 3: monotonic across the two processes
    assert started.start_time_unix_nano == one["voice_agent.sessions.started"].start_time_unix_nano
    assert (latency.count, latency.sum) == (3, 0.4 + 1.5 + 0.7)
    assert sum(latency.bucket_counts) == 3 and latency.min == 0.4 and latency.max == 1.5
    assert latency.start_time_unix_nano == one["voice_agent.turn.latency"].start_time_unix_nano
    # a gauge is the process's own: a dead holder's 1 is replaced, never added
    assert two["voice_agent.sessions.active"].value == 0

    # a stream the Collector has forgotten (older than the expiration) starts again at zero
    three = _points(_process(path, 0.0, 4, [0.2], 0))
    assert three["voice_agent.sessions.started"].value == 4
    assert three["voice_agent.turn.latency"].count == 1
    assert three["voice_agent.sessions.started"].start_time_unix_nano > started.start_time_unix_nano
    assert json.loads(path.read_text())["streams"]  # what the next holder continues from


def _job_settings(rx: OtlpReceiver, tmp_path: Path) -> dict[str, str]:
    return {
        "OTEL_LIVEKIT_BACKEND": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # one export per call, at job end
        "OTEL_LIVEKIT_SPOOL": "false",
        "OTEL_SERVICE_NAME": "slot-test-agent",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # this test's slots
    }


async def _waves(settings: dict[str, str], waves: int, width: int) -> None:
    for wave in range(waves):
        jobs = [await launch_job(job_entry.prewarm, job_entry.entrypoint, settings, f"job-{wave}-{i}")
                for i in range(width)]  # fmt: skip
        await asyncio.wait_for(asyncio.gather(*(j.join() for j in jobs)), 120)


def test_six_calls_in_job_processes_two_at_a_time_are_two_instances_with_exact_counts(tmp_path: Path) -> None:
    with OtlpReceiver() as rx:
        asyncio.run(_waves(_job_settings(rx, tmp_path), waves=3, width=2))
        exports = list(rx.metrics())

    instances = {res["service.instance.id"] for res, _ in exports}
    assert 1 <= len(instances) <= 2, instances  # per process it would be 6
    identities, streams = set(), set()
    started: dict[tuple[str, Any], list[tuple[int, int, int]]] = defaultdict(list)
    for res, metric in exports:
        kind = metric.WhichOneof("data")
        for p in getattr(metric, kind).data_points:
            stream = (metric.name, tuple(sorted(attrs(p.attributes).items())))
            streams.add(stream)
            identities.add((res["service.instance.id"], stream))
            if metric.name == "voice_agent.sessions.started":
                point = (p.time_unix_nano, p.start_time_unix_nano, p.as_int)
                started[(res["service.instance.id"], stream)].append(point)
    assert len(identities) <= len(instances) * len(streams)
    # each slot's counter only grows, from one start time; the last values add up to the calls
    last = 0
    for points in started.values():
        points.sort()
        assert len({start for _, start, _ in points}) == 1
        values = [v for _, _, v in points]
        assert values == sorted(values)
        last += values[-1]
    assert last == 6
