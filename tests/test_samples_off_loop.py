"""The recorder never aggregates a histogram sample on the agent's event loop: in a real
offline session every catalogue histogram sample reaches the SDK from the aggregating thread
(or a reader's collection), while the loop only queues it (``PendingSamples``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics._internal import instrument as sdk_instrument
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_livekit import setup_tracing
from otel_livekit.metrics.catalogue import CATALOGUE, METER_NAME
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
