"""Where telemetry's time goes, per call: the agent's loop by hook, and the other threads.

Late ticks (``bench_faults.py``) are the goal's measure but drift by 2-10x between minutes
on a shared machine; CPU time per call with the collector off does not, so this is the
figure to attribute and to compare a change by. Each arm is a fresh process running waves
of concurrent offline calls (the lag bench's three text turns, unpaced; its child set-up), garbage collector
off during the measured waves:

- ``off``: no telemetry; ``recording``: LiveKit's spans recorded and dropped (the floor of
  any tracing of LiveKit, ``bench_faults.py``'s baseline); ``on``: ``setup_tracing("otlp")``
  to a loopback receiver, every default (spool on, no content anywhere).
- ``on:hooks``: the same with a timer around each hook the loop runs for telemetry (ours and
  LiveKit's that only run because of our set-up), for the breakdown; the timers add their
  own ~1 µs per hook, so the arms' totals come from the unwrapped runs.

With the collector off during the waves its young count only grows: each arm's containers
left per call (allocated less freed: what makes young collections, and their survivors full
ones) and, per hook, what it left allocated when it returned. Unlike CPU, exact run to run.

Also the CPU of each other thread (export, spool, aggregation) per call, from
``/proc/self/task``. Arms alternate; each arm's figure is the best of its rounds.

    .venv/bin/python bench/loop_cost.py [--calls 32] [--waves 4] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

HOOK_TIMES: collections.Counter[str] = collections.Counter()
HOOK_COUNTS: collections.Counter[str] = collections.Counter()
HOOK_OBJECTS: collections.Counter[str] = collections.Counter()


def _timed(owner: Any, name: str, label: str, per: Any = None) -> None:
    """Wraps ``owner.name`` to add its wall time on the main thread to ``label``, and the
    containers it left allocated (the collector's young count: allocations less frees)."""
    original = getattr(owner, name)
    main = threading.main_thread()

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not main:
            return original(*args, **kwargs)
        objects = gc.get_count()[0]
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            key = label if per is None else f"{label} ({per(*args)})"
            HOOK_TIMES[key] += elapsed
            HOOK_COUNTS[key] += 1
            HOOK_OBJECTS[key] += gc.get_count()[0] - objects

    setattr(owner, name, timed)


def time_hooks() -> None:
    """Every entry point from the loop into telemetry code (diagnosis only)."""
    from livekit.agents.telemetry import otel_metrics, pii

    from otel_livekit.export.delivery import health
    from otel_livekit.metrics.spans import SpanIndex
    from otel_livekit.sessions import hooks
    from otel_livekit.sessions.langfuse import CallAttributesProcessor
    from otel_livekit.sessions.listeners import Listener
    from otel_livekit.sessions.sampling import WholeCallSampler

    _timed(WholeCallSampler, "should_sample", "span start: whole-call sampler")
    _timed(SpanIndex, "on_start", "span start: span index")
    _timed(CallAttributesProcessor, "on_start", "span start: call attributes stamped")
    _timed(SpanIndex, "on_end", "span end: span index")
    # the destination's view, written to wire bytes (or a compact copy), then the SDK's queue
    _timed(health.CountingBatchSpanProcessor, "on_end", "span end: view, wire bytes, batch queue")
    _timed(pii._PIIFilteringSpanProcessor, "on_end", "span end: LiveKit's PII filter (allow_pii off)")
    _timed(Listener, "__call__", "session event", per=lambda self, ev: self.__name__)
    _timed(hooks.SessionInstrumentation, "__init__", "call start: session instrumented")
    for fn in ("collect_usage", "record_invoke_agent_duration", "record_execute_tool_duration"):
        _timed(otel_metrics, fn, f"LiveKit's own metrics: {fn}")


def thread_cpu_ms() -> dict[str, float]:
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    out: dict[str, float] = collections.defaultdict(float)
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[names.get(tid, "other")] += (int(fields[11]) + int(fields[12])) * 1000 / tick
    return out


def child(arm: str, calls: int, waves: int) -> None:
    from bench_faults import BASELINES, TURNS, child_telemetry
    from loopback import backend_process

    server, url = backend_process()
    if arm == "on:hooks":
        time_hooks()
    child_telemetry(arm.startswith("on"), url)
    if arm in BASELINES:
        BASELINES[arm](url)
    from otel_livekit.offline import run_offline_session

    async def wave() -> None:
        await asyncio.gather(*(run_offline_session(text_turns=TURNS, audio_turns=0, in_job=False)
                               for _ in range(calls)))  # fmt: skip

    async def run() -> dict[str, Any]:
        await wave()  # warm-up: imports, first spans and exports
        gc.collect()
        HOOK_TIMES.clear()
        HOOK_COUNTS.clear()
        HOOK_OBJECTS.clear()
        threads = thread_cpu_ms()
        gc.disable()
        objects = gc.get_count()[0]
        loop = time.thread_time()
        for _ in range(waves):
            await wave()
        loop = time.thread_time() - loop
        objects = gc.get_count()[0] - objects
        gc.enable()
        n = calls * waves
        after = thread_cpu_ms()
        others = {k: (after[k] - threads.get(k, 0.0)) / n for k in after if k != "MainThread"}
        return {
            "arm": arm,
            "loop_ms_per_call": loop * 1000 / n,
            "objects_per_call": objects / n,
            "threads_ms_per_call": {k: round(v, 3) for k, v in others.items() if v > 0},
            "hooks": {k: [HOOK_TIMES[k] * 1000 / n, HOOK_COUNTS[k] / n, HOOK_OBJECTS[k] / n]
                      for k in HOOK_TIMES},
        }

    try:
        print(json.dumps(asyncio.run(run())))
    finally:
        server.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--calls", type=int, default=32, help="concurrent calls per wave")
    ap.add_argument("--waves", type=int, default=4, help="measured waves per run")
    ap.add_argument("--rounds", type=int, default=4, help="runs per arm, alternated")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.calls, args.waves)
        return
    arms = ("off", "recording", "on", "on:hooks")
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for r in range(args.rounds):
        for arm in arms if r % 2 == 0 else reversed(arms):
            cmd = [sys.executable, __file__, "--child", arm,
                   "--calls", str(args.calls), "--waves", str(args.waves)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
            runs[arm].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {a: min(runs[a], key=lambda x: x["loop_ms_per_call"]) for a in arms}
    per_round = {a: [round(x["loop_ms_per_call"], 2) for x in runs[a]] for a in arms}
    print(f"{args.calls} concurrent calls x {args.waves} waves, {args.rounds} rounds per arm, GC off, "
          f"python {sys.version.split()[0]}")  # fmt: skip
    print("\n| arm | loop CPU per call, best (ms) | per round | containers left per call |")
    print("|---|---|---|---|")
    for a in ("off", "recording", "on"):
        left = sorted(round(x["objects_per_call"]) for x in runs[a])
        print(f"| {a} | {best[a]['loop_ms_per_call']:.2f} | {per_round[a]} | {left[0]}–{left[-1]} |")
    hooks = best["on:hooks"]["hooks"]
    print(f"\n`on` with a timer on each hook (best round, {best['on:hooks']['loop_ms_per_call']:.2f} ms "
          "loop CPU per call with the timers):\n")  # fmt: skip
    print("| hook on the loop | ms per call | runs per call | containers left per call |")
    print("|---|---|---|---|")
    for name, (ms, count, left) in sorted(hooks.items(), key=lambda kv: -kv[1][0]):
        print(f"| {name} | {ms:.3f} | {count:.1f} | {left:.1f} |")
    total_ms, total_left = sum(h[0] for h in hooks.values()), sum(h[2] for h in hooks.values())
    print(f"| **all hooks** | {total_ms:.3f} | | {total_left:.1f} |")
    print("\n| other threads, `on` (best round) | CPU ms per call |")
    print("|---|---|")
    for name, ms in sorted(best["on"]["threads_ms_per_call"].items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()
