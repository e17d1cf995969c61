"""The recorder never aggregates a histogram sample on the agent's event loop: in a real
offline session every catalogue histogram sample reaches the SDK from the aggregating thread
(or a reader's collection), while the loop only queues it (``PendingSamples``)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from typing import Any

import pytest
from opentelemetry.context import get_current
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal import instrument as sdk_instrument
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from otel_livekit import setup_tracing
from otel_livekit.metrics.catalogue import CATALOGUE, METER_NAME
from otel_livekit.metrics.instruments import PendingSamples
from otel_livekit.offline import run_offline_session


def test_histogram_samples_are_aggregated_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = {spec.name for spec in CATALOGUE if spec.kind == "histogram"}
    recorded: list[tuple[str, int]] = []
    sdk_record = sdk_instrument._Histogram.record

    def watching(self: Any, amount: float, attributes: Any = None, context: Any = None) -> None:
        # the SDK's own instrument, observed (never our code); LiveKit's are not ours
        if self.name in ours and self.instrumentation_scope.name == METER_NAME:
            recorded.append((self.name, threading.get_ident()))
        sdk_record(self, amount, attributes, context)

    monkeypatch.setattr(sdk_instrument._Histogram, "record", watching)
    reader = InMemoryMetricReader()
    t = setup_tracing("none", metric_readers=[reader])
    loop_thread: list[int] = []

    async def call() -> None:
        loop_thread.append(threading.get_ident())
        await run_offline_session(text_turns=("hello", "and then?"), audio_turns=1)

    # the loop runs in its own thread, so the collection below (which drains what is still
    # queued) is not mistaken for the loop
    agent = threading.Thread(target=asyncio.run, args=(call(),))
    agent.start()
    agent.join(60)
    reader.get_metrics_data()
    t.shutdown()
    names = {name for name, _ in recorded}
    assert len(recorded) >= 10 and {"voice_agent.turn.latency", "voice_agent.llm.ttft"} & names, names
    on_loop = sorted({name for name, thread in recorded if thread == loop_thread[0]})
    assert on_loop == [], on_loop


def _histogram_point(reader: InMemoryMetricReader) -> tuple[int, float]:
    data = reader.get_metrics_data()
    assert data is not None
    points = [m.data.data_points[0] for rm in data.resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == "h"]  # fmt: skip
    assert len(points) == 1
    point = points[0]
    assert isinstance(point, HistogramDataPoint)
    return point.count, point.sum


def test_every_reader_gets_the_same_samples_while_the_aggregator_drains() -> None:
    """The aggregating thread and a reader's collection drain at once: the collection waits
    for the sample in the aggregator's hand (it is in the first collection), and both readers
    get the samples in one order (sums equal to the last bit, as Prometheus and OTLP show)."""
    n = 20_000
    for trial in range(8):
        first, second = InMemoryMetricReader(), InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[first, second])
        meter = provider.get_meter("samples")
        histogram = meter.create_histogram("h")
        pending = PendingSamples(interval=0.001)
        meter.create_observable_counter("drain", callbacks=[pending.drain])
        values = random.Random(trial)
        for _ in range(n):
            pending.put(histogram, values.random(), None, get_current())
        time.sleep(0.002)  # the aggregating thread is draining
        count, _ = _histogram_point(first)
        pending.close()
        assert count == n, trial
        assert _histogram_point(first) == _histogram_point(second), trial
        provider.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_child_forked_mid_drain_still_drains() -> None:
    """A fork while the aggregating thread drains copies the held lock; the child's
    collections must not wait for a thread it does not have."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("samples")
    histogram = meter.create_histogram("h")
    pending = PendingSamples()
    meter.create_observable_counter("drain", callbacks=[pending.drain])
    pending.put(histogram, 1.5, None, get_current())
    with pending._draining:  # as the aggregating thread holds it mid-drain
        pid = os.fork()
        if pid == 0:
            try:
                ok = _histogram_point(reader) == (1, 1.5)
            finally:
                os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0, "the child's collection hung"
    pending.close()
    provider.shutdown()
