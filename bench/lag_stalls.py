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
``--tasks`` the loop thread's CPU per task (by coroutine), to compare off and on;
``--windows`` lists, for each late tick, the loop steps that ran inside it (wall and CPU ms,
by task) and how much of each step this package's hooks took (span processors and event
listeners): whether a late tick is ours on the loop or LiveKit's steps made longer.
The heap is frozen after the warm-up unless ``--no-freeze`` (as in the bench).

Run: .venv/bin/python bench/lag_stalls.py off|on|livekit|recording [--seconds 20] [--no-freeze]
     [--phases] [--tasks] [--windows] [--ablate noqueue|nosend|noencode|nosubmit]
     [--calls 10] [--late-ms 5] [--summary] [--no-sampler]
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


def task_name(handle: Any) -> str:
    """The coroutine a loop callback steps (its qualified name), or the callback's own."""
    owner = getattr(handle._callback, "__self__", None)
    coro = owner.get_coro() if isinstance(owner, asyncio.Task) else handle._callback
    return getattr(coro, "__qualname__", type(coro).__name__)


def time_tasks() -> None:
    """Wraps every loop callback to add its thread CPU time to its task's (diagnosis only)."""
    import asyncio.events

    run = asyncio.events.Handle._run

    def timed(self: asyncio.events.Handle) -> None:
        c = time.thread_time()
        run(self)
        if COUNTING[0]:
            row = TASK_CPU[task_name(self)]
            took = time.thread_time() - c
            row[0] += took
            row[1] += 1
            row[2] = max(row[2], took)
            row[3] += took > 0.003

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


HOOKS = [0.0]
"""Thread CPU seconds in this package's loop hooks so far (``--windows``)."""
WAITED = [0.0, 0]
"""Wall minus CPU seconds inside loop steps (the loop thread waiting for the GIL, or
descheduled), and how many steps waited over 0.5 ms (``--windows``)."""
STEPS: list[tuple[float, float, float, str, float]] = []
"""Loop steps over 0.5 ms: start, end (perf_counter), CPU s, task, CPU s in our hooks."""


def _timed_hook(fn: Any) -> Any:
    def hook(*args: Any, **kwargs: Any) -> Any:
        c = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            HOOKS[0] += time.thread_time() - c

    return hook


def time_windows() -> None:
    """Wraps this package's span processors and event listeners (its whole footprint on the
    loop besides LiveKit's own span making) and every loop step (diagnosis only)."""
    import asyncio.events

    from otel_livekit.export.delivery.health import CountingBatchSpanProcessor
    from otel_livekit.metrics.spans import SpanIndex
    from otel_livekit.sessions import langfuse, listeners, logs, profile
    from otel_livekit.sessions.content import DestinationProcessor

    for cls in (CountingBatchSpanProcessor, SpanIndex, DestinationProcessor, langfuse.CallAttributesProcessor,
                profile.SpanLineage, logs._FlushLogsWithTraces):  # fmt: skip
        for name in ("on_start", "on_end"):
            if name in vars(cls):
                setattr(cls, name, _timed_hook(vars(cls)[name]))
    listeners.Listener.__call__ = _timed_hook(listeners.Listener.__call__)  # type: ignore[method-assign]
    run = asyncio.events.Handle._run

    def timed(self: asyncio.events.Handle) -> None:
        ours, c, w = HOOKS[0], time.thread_time(), time.perf_counter()
        run(self)
        end, cpu = time.perf_counter(), time.thread_time() - c
        if COUNTING[0]:
            WAITED[0] += max(end - w - cpu, 0.0)
            WAITED[1] += end - w - cpu > 0.0005
        if COUNTING[0] and end - w > 0.0005:
            STEPS.append((w, end, cpu, task_name(self).split(".")[-1], HOOKS[0] - ours))

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def print_windows(late: list[tuple[float, float]], gc_pauses: GcPauses) -> None:
    print(f"  the loop waited {WAITED[0] * 1000:.0f} ms inside its steps ({WAITED[1]} steps over 0.5 ms)")
    starts = [s[0] for s in STEPS]
    ours_total = lag_total = 0.0
    for at, lag in late:
        begin = at - (lag + 1) / 1000
        # steps run one after another: only the one before ``begin`` can reach into the tick
        i = max(bisect.bisect_left(starts, begin) - 1, 0)
        inside = [s for s in STEPS[i : bisect.bisect_left(starts, at)] if s[1] > begin]
        ours = sum(s[4] for s in inside) * 1000
        ours_total += ours
        lag_total += lag
        gcs = ", ".join(f"gen-{g} {ms:.1f}" for g, ms in gc_pauses.during(at, lag)) or "no GC"
        steps = "; ".join(f"{n[:24]} {(e - s) * 1000:.1f}/{c * 1000:.1f} ours {o * 1000:.1f}"
                          for s, e, c, n, o in inside)  # fmt: skip
        steps = steps or "none over 0.5 ms"
        print(f"  late {lag:5.1f} ms, ours {ours:4.1f} ms, {gcs} | steps wall/CPU ms: {steps}")
    if late:
        print(f"  in all late ticks: {lag_total:.0f} ms late, {ours_total:.1f} ms of it in our hooks")


ABLATIONS = ("noqueue", "nosend", "noencode", "nosubmit")


def ablate(what: str) -> None:
    """Telemetry on with one part of the span export taken out (diagnosis only):
    ``noqueue`` spans dropped at the batch processor (no compact copy, no queue, no export);
    ``nosend`` queued as usual but dropped at export time (no view, encoding, spool, send);
    ``noencode`` the destination's view made, then dropped (no encoding, spool or send);
    ``nosubmit`` viewed and encoded, then dropped (no spool write, no send) — the metric
    exports' encoded batches too, as both go through the one spool hand-off."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    from otel_livekit.export.delivery import health, spooling
    from otel_livekit.sessions import content

    if what == "noqueue":
        health.CountingBatchSpanProcessor.on_end = lambda self, span: None  # type: ignore[method-assign]
    elif what == "nosend":
        content.DestinationExporter.export = lambda self, spans: SpanExportResult.SUCCESS  # type: ignore[method-assign]
    elif what == "noencode":
        spooling.SpoolingSpanExporter.export = lambda self, spans: SpanExportResult.SUCCESS  # type: ignore[method-assign]
    elif what == "nosubmit":
        spooling._export = lambda outbox, health, data, items: True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["off", "on", *BASELINES])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--no-freeze", action="store_true")
    ap.add_argument("--phases", action="store_true")
    ap.add_argument("--tasks", action="store_true")
    ap.add_argument("--ablate", choices=ABLATIONS, help="with 'on': one part of the span export out")
    ap.add_argument("--no-sampler", action="store_true", help="no CPU sampler process beside (no blame)")
    ap.add_argument("--windows", action="store_true", help="per late tick: its loop steps, ours in each")
    ap.add_argument("--calls", type=int, default=10, help="concurrent calls in the process")
    ap.add_argument("--late-ms", type=float, default=5.0, help="a tick later than this is explained")
    ap.add_argument("--summary", action="store_true", help="causes only, not one line per late tick")
    args = ap.parse_args()
    server, url = backend_process()
    child_telemetry(args.mode == "on", url)
    if args.mode in BASELINES:  # LiveKit's recipe, or its spans recorded and never exported
        BASELINES[args.mode](url)
    if args.mode == "on" and args.ablate:
        ablate(args.ablate)
    if args.mode == "on" and args.phases:
        time_phases()
    gc_pauses = GcPauses()

    if args.tasks:
        time_tasks()
    if args.windows:
        time_windows()
    cpu_file = tempfile.mktemp(prefix="lag-cpu-")
    sampler = None if args.no_sampler else subprocess.Popen(
        [sys.executable, __file__, "--sample", str(os.getpid()), cpu_file]
    )

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
    if sampler is not None:
        sampler.terminate()
        sampler.wait()
    server.terminate()
    names = {t.native_id: t.name for t in threading.enumerate()}
    rows: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for t, tid, ns in RECORD.iter_unpack(Path(cpu_file).read_bytes() if sampler else b""):
        rows[tid].append((t, ns))
    Path(cpu_file).unlink(missing_ok=True)
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
    if args.windows:
        print("late ticks, the loop steps in each (over 0.5 ms):")
        print_windows(late, gc_pauses)
    for p in PHASES:
        print("  span export: " + ", ".join(f"{k} {v:.1f}" for k, v in p.items()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sample"]:
        sample(int(sys.argv[2]), sys.argv[3])
    else:
        main()
