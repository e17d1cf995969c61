"""What instrumentation costs a whole offline session.

Offline AgentSessions with instrumentation on and off (alternating, same process): wall time
and the worst event-loop lag a 5 ms ticker saw. The cost per metrics event, against
LiveKit's own recording, is ``bench_event_cost.py``; event-loop lag under load and per
backend state is ``bench_faults.py``.

Run: .venv/bin/python bench/bench_recorder.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time


async def _session(instrumented: bool) -> tuple[float, float]:
    from otel_livekit.installation import installed
    from otel_livekit.offline import run_offline_session
    from otel_livekit.sessions.hooks import install_auto_instrumentation, uninstall_auto_instrumentation
    from otel_livekit.telemetry import current

    telemetry = current()
    assert telemetry is not None and telemetry.recorder is not None
    if instrumented:
        install_auto_instrumentation(installed(), telemetry.recorder)
    else:
        uninstall_auto_instrumentation(installed())
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
    print(f"python {sys.version.split()[0]}")
    print("| measure | instrumentation off | on | ratio |")
    print("|---|---|---|---|")
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
