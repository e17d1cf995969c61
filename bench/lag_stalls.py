"""What made each late tick late: the diagnosis behind bench_faults.py's lag table.

Runs the lag bench's workload (10 concurrent offline calls, 1 ms ticker, backend in another
process) with telemetry ``off`` or ``on``, and for every tick late by more than 5 ms prints
what overlapped it:

- garbage collections (``gc.callbacks``: generation and pause);
- the CPU time each thread of the process used meanwhile, read from
  ``/proc/PID/task/TID/schedstat`` every ~1 ms by a *separate* process (it needs no GIL, so
  it sees the thread that holds it). With telemetry on, a background thread using ~5 ms
  of CPU while the event loop's thread uses none is the loop waiting for the GIL (CPython
  hands it over only after the 5 ms switch interval).

``--phases`` also times each span export's steps on the export thread (thread CPU time);
``--tasks`` the loop thread's CPU per task (by coroutine), to compare off and on.
The heap is frozen after the warm-up unless ``--no-freeze`` (as in the bench).

Run: .venv/bin/python bench/lag_stalls.py off|on|livekit|recording [--seconds 20] [--no-freeze]
     [--phases] [--tasks] [--calls 10] [--late-ms 5] [--summary]
``livekit`` and ``recording`` are bench_faults.py's baselines without this package.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import gc
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_faults import BASELINES, calls_until, child_telemetry  # noqa: E402
from loopback import GcPauses, backend_process  # noqa: E402

RECORD = struct.Struct("dqq")  # perf_counter, thread id, ns on CPU


def sample(pid: int, out: str) -> None:
    """The CPU sampler (its own process): every thread's schedstat every ~1 ms until SIGTERM."""
    buf = bytearray()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        now = time.perf_counter()  # CLOCK_MONOTONIC: the same clock as the measured process
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            break
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    buf += RECORD.pack(now, int(tid), int(f.read().split()[0]))
            except (FileNotFoundError, ProcessLookupError):
                continue
        time.sleep(0.0008)
    Path(out).write_bytes(bytes(buf))


def cpu_ms(rows: dict[int, list[tuple[float, int]]], a: float, b: float) -> dict[int, float]:
    """CPU ms each thread used in [a, b], give or take one ~1 ms sampling step."""
    out = {}
    for tid, series in rows.items():
        times = [t for t, _ in series]
        i = max(bisect.bisect_left(times, a) - 1, 0)
        j = min(bisect.bisect_right(times, b), len(series) - 1)
        out[tid] = (series[j][1] - series[i][1]) / 1e6
    return out


PHASES: list[dict[str, float]] = []


def time_phases() -> None:
    """Wraps the span export's steps to record thread CPU ms per batch (diagnosis only)."""
    from otel_livekit.export.delivery import spooling
    from otel_livekit.sessions import content

    encode = spooling.encode_spans_yielding

    def timed_encode(spans: Any, *args: Any, **kw: Any) -> bytes:
        c = time.thread_time()
        data = encode(spans, *args, **kw)
        PHASES.append({"spans": len(spans), "encode_ms": (time.thread_time() - c) * 1000, "bytes": len(data)})
        return data

    spooling.encode_spans_yielding = timed_encode  # type: ignore[assignment]
    export = content.DestinationExporter.export

    def timed_export(self: Any, spans: Any) -> Any:
        c = time.thread_time()
        result = export(self, spans)
        if PHASES:
            PHASES[-1]["whole_export_ms"] = (time.thread_time() - c) * 1000
        return result

    content.DestinationExporter.export = timed_export  # type: ignore[method-assign]


TASK_CPU: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0, 0.0, 0])
"""Per task: CPU seconds, steps, the longest step, steps over 3 ms."""
COUNTING = [False]


def time_tasks() -> None:
    """Wraps every loop callback to add its thread CPU time to its task's (diagnosis only)."""
    import asyncio.events

    run = asyncio.events.Handle._run

    def timed(self: asyncio.events.Handle) -> None:
        c = time.thread_time()
        run(self)
        if COUNTING[0]:
            owner = getattr(self._callback, "__self__", None)
            coro = owner.get_coro() if isinstance(owner, asyncio.Task) else self._callback
            row = TASK_CPU[getattr(coro, "__qualname__", type(coro).__name__)]
            took = time.thread_time() - c
            row[0] += took
            row[1] += 1
            row[2] = max(row[2], took)
            row[3] += took > 0.003

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["off", "on", *BASELINES])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--no-freeze", action="store_true")
    ap.add_argument("--phases", action="store_true")
    ap.add_argument("--tasks", action="store_true")
    ap.add_argument("--calls", type=int, default=10, help="concurrent calls in the process")
    ap.add_argument("--late-ms", type=float, default=5.0, help="a tick later than this is explained")
    ap.add_argument("--summary", action="store_true", help="causes only, not one line per late tick")
    args = ap.parse_args()
    server, url = backend_process()
    child_telemetry(args.mode == "on", url)
    if args.mode in BASELINES:  # LiveKit's recipe, or its spans recorded and never exported
        BASELINES[args.mode](url)
    if args.mode == "on" and args.phases:
        time_phases()
    gc_pauses = GcPauses()

    if args.tasks:
        time_tasks()
    cpu_file = tempfile.mktemp(prefix="lag-cpu-")
    sampler = subprocess.Popen([sys.executable, __file__, "--sample", str(os.getpid()), cpu_file])

    async def run() -> list[tuple[float, float]]:
        ticks: list[tuple[float, float]] = []  # woke at, lag ms
        stop = False

        async def ticker() -> None:
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                ticks.append((now, (now - t - 0.001) * 1000))

        await calls_until(time.monotonic() + 5, args.calls)
        if not args.no_freeze:  # without it, no collect either (a collect defers the next gen-2)
            gc.collect()
            gc.freeze()
        with gc_pauses:
            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)  # the step that froze the heap is not counted
            COUNTING[0] = True
            loop_cpu = time.thread_time()
            made = await calls_until(time.monotonic() + args.seconds, args.calls)
            loop_cpu = time.thread_time() - loop_cpu
            COUNTING[0] = False
            stop = True
            await task
        print(f"calls {made}, the loop thread's CPU during the run {loop_cpu * 1000:.0f} ms")
        return ticks

    ticks = asyncio.run(run())
    sampler.terminate()
    sampler.wait()
    server.terminate()
    names = {t.native_id: t.name for t in threading.enumerate()}
    rows: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for t, tid, ns in RECORD.iter_unpack(Path(cpu_file).read_bytes()):
        rows[tid].append((t, ns))
    os.unlink(cpu_file)
    late = [(at, lag) for at, lag in ticks if lag > args.late_ms]
    blame: collections.Counter[str] = collections.Counter()
    print(f"telemetry {args.mode}, heap {'not ' if args.no_freeze else ''}frozen: {len(ticks)} ticks, "
          f"{len(late)} late by > {args.late_ms:g} ms, "
          f"max {max(lag for _, lag in ticks):.1f} ms")  # fmt: skip
    for g in range(3):
        d = gc_pauses.ms(g)
        if d:
            print(f"  gen-{g} collections: {len(d)}, mean {sum(d) / len(d):.2f} ms, longest {max(d):.1f} ms")
    for at, lag in late:
        start = at - (lag + 1) / 1000
        gcs = gc_pauses.during(at, lag)
        used = sorted(
            ((ms, names.get(tid, str(tid))) for tid, ms in cpu_ms(rows, start, at).items()), reverse=True
        )
        who = ", ".join(f"{name} {ms:.1f}" for ms, name in used if ms >= 0.5) or "nobody"
        gc_text = ", ".join(f"gen-{g} {ms:.1f} ms" for g, ms in gcs) or "none"
        if not args.summary:
            print(f"  late {lag:6.1f} ms | GC: {gc_text} | CPU ms meanwhile: {who}")
        busiest = used[0][1] if used and used[0][0] >= 0.5 else "?"
        blame["GC" if any(ms > lag / 2 for _, ms in gcs) else busiest] += 1
    print("late ticks by cause (GC if a collection covers over half the lag, else the busiest thread):")
    for cause, n in blame.most_common():
        print(f"  {cause}: {n}")
    for name, (cpu, n, longest, over) in sorted(TASK_CPU.items(), key=lambda kv: -kv[1][0])[:15]:
        print(f"  loop CPU {cpu * 1000:7.1f} ms in {n:5d} steps ({cpu * 1e6 / n:6.1f} µs/step, longest "
              f"{longest * 1000:5.1f} ms, {over:3d} over 3 ms): {name}")
    print("  tasks with steps over 3 ms:")
    for name, (_, _, longest, over) in sorted(TASK_CPU.items(), key=lambda kv: -kv[1][3]):
        if over:
            print(f"    {over:3d} steps over 3 ms, longest {longest * 1000:5.1f} ms: {name}")
    for p in PHASES:
        print("  span export: " + ", ".join(f"{k} {v:.1f}" for k, v in p.items()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sample"]:
        sample(int(sys.argv[2]), sys.argv[3])
    else:
        main()
