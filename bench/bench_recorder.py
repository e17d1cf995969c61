"""How much the recorder costs the agent's event loop.

1. Per event: LiveKit metrics events through ``Recorder.record`` (real MeterProvider with
   the catalogue's Views, span index on) against a baseline handler that only reads the
   event's type, in the same process.
2. Per session: offline AgentSessions with instrumentation on and off (alternating, same
   process): wall time and the worst event-loop lag a 5 ms ticker saw.

Run: .venv/bin/python bench/bench_recorder.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from livekit.agents.metrics.base import LLMMetrics, Metadata, TTSMetrics, VADMetrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_livekit.metrics.catalogue import METER_NAME, Instruments, views
from otel_livekit.metrics.pricing import load_prices
from otel_livekit.metrics.recorder import Recorder
from otel_livekit.metrics.spans import SpanIndex
from otel_livekit.metrics.turns import TurnTracker

META = Metadata(model_name="gpt-4o-mini", model_provider="api.openai.com")


def events(n: int) -> list[Any]:
    out: list[Any] = []
    for i in range(n):
        sid = f"speech_{i // 3}"
        out.append(
            LLMMetrics(
                label="l",
                request_id=f"r{i}",
                timestamp=0.0,
                duration=0.4,
                ttft=0.2,
                cancelled=False,
                completion_tokens=20,
                prompt_tokens=400,
                prompt_cached_tokens=100,
                total_tokens=420,
                tokens_per_second=50.0,
                speech_id=sid,
                metadata=META,
            )
        )
        out.append(
            TTSMetrics(
                label="t",
                request_id=f"t{i}",
                timestamp=0.0,
                ttfb=0.1,
                duration=0.3,
                audio_duration=2.0,
                cancelled=False,
                characters_count=80,
                streamed=False,
                speech_id=sid,
                metadata=META,
            )
        )
        out.append(
            VADMetrics(
                label="v", timestamp=0.0, idle_time=0.0, inference_duration_total=0.05, inference_count=100
            )
        )
    return out  # fmt: skip


def per_event(n: int = 20_000) -> tuple[float, float]:
    batch = events(n // 3)
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=views())
    rec = Recorder(Instruments(provider.get_meter(METER_NAME)), load_prices(), SpanIndex())
    turns = TurnTracker()
    seen: set[type] = set()

    def baseline(ev: Any, _turns: TurnTracker) -> None:
        seen.add(type(ev))

    results = {}
    for name, fn in (("baseline", baseline), ("recorder", rec.record)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for ev in batch:
                fn(ev, turns)
            best = min(best, time.perf_counter() - t0)
        results[name] = best / len(batch) * 1e6
    return results["baseline"], results["recorder"]


async def _session(instrumented: bool) -> tuple[float, float]:
    from otel_livekit.offline import run_offline_session
    from otel_livekit.sessions.hooks import install_auto_instrumentation, uninstall_auto_instrumentation
    from otel_livekit.telemetry import current

    telemetry = current()
    assert telemetry is not None and telemetry.recorder is not None
    if instrumented:
        install_auto_instrumentation(telemetry.recorder)
    else:
        uninstall_auto_instrumentation()
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await run_offline_session(text_turns=("hello", "what's the weather?"), audio_turns=1)
    wall = time.perf_counter() - t0
    stop.set()
    await tick
    return wall, max(lags)


def per_session(rounds: int = 4) -> dict[bool, list[tuple[float, float]]]:
    from otel_livekit import setup_tracing

    setup_tracing("none")
    out: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(rounds):
        for flag in (False, True):
            out[flag].append(asyncio.run(_session(flag)))
    return out


def main() -> None:
    base_us, rec_us = per_event()
    print(f"python {sys.version.split()[0]}")
    print("| measure | baseline | otel_livekit | ratio |")
    print("|---|---|---|---|")
    label = "µs per metrics event (LLM/TTS/VAD mix; baseline: a no-op handler)"
    print(f"| {label} | {base_us:.2f} | {rec_us:.2f} | {rec_us / base_us:.0f}x |")
    sessions = per_session()
    off, on = sessions[False], sessions[True]
    wall_off = statistics.median(w for w, _ in off)
    wall_on = statistics.median(w for w, _ in on)
    lag_off = max(lag for _, lag in off) * 1000
    lag_on = max(lag for _, lag in on) * 1000
    print(f"| offline session wall time, median of {len(on)} (s) | {wall_off:.3f} | "
          f"{wall_on:.3f} | {wall_on / wall_off:.3f} |")  # fmt: skip
    print(f"| worst event-loop lag seen by a 5 ms ticker (ms) | {lag_off:.2f} | {lag_on:.2f} | "
          f"{lag_on / lag_off:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
