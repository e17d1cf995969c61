"""What telemetry costs the agent's process in garbage collections and loop CPU, per call.

The lag bench (bench_faults.py) counts late ticks: a handful per run, so its on/off ratios
are noisy on a shared machine. This one counts what makes them — the collections (each a
pause of the event loop) and the loop thread's CPU — over the same workload: ``--calls``
concurrent offline calls at a conversational pace for ``--seconds``, OTLP export to a
loopback backend, heap frozen after a warm-up as LiveKit's forkserver does. Each arm runs
in its own process, ``--repeat`` times, alternated.

Run: .venv/bin/python bench/bench_gc.py [--calls 32] [--seconds 15] [--repeat 3] [--livekit]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_faults import calls_until, child_telemetry, livekit_only  # noqa: E402
from loopback import GcPauses, backend  # noqa: E402


def child(mode: str, calls: int, seconds: float, url: str) -> None:
    child_telemetry(mode == "on", url)
    if mode == "livekit":
        livekit_only(url)

    async def run() -> dict[str, Any]:
        await calls_until(time.monotonic() + 5, calls)
        gc.collect()
        gc.freeze()
        with GcPauses() as gc_pauses:
            loop0, process0 = time.thread_time(), time.process_time()
            made = await calls_until(time.monotonic() + seconds, calls)
            loop = time.thread_time() - loop0
            others = time.process_time() - process0 - loop
        return {
            "calls": made,
            "loop_cpu_ms_per_call": loop * 1000 / made,
            "other_threads_cpu_ms_per_call": others * 1000 / made,
            **{f"gen{g}_collections": len(gc_pauses.ms(g)) for g in range(3)},
            **{f"gen{g}_pause_ms": sum(gc_pauses.ms(g)) for g in range(3)},
            "gen1_longest_ms": max(gc_pauses.ms(1), default=0.0),
        }

    print(json.dumps(asyncio.run(run())))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child")
    ap.add_argument("--url")
    ap.add_argument(
        "--livekit", action="store_true", help="also LiveKit's own tracing recipe, without this package"
    )
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.calls, args.seconds, args.url)
    modes = ("off", "livekit", "on") if args.livekit else ("off", "on")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with backend("healthy") as url:
        for _ in range(args.repeat):
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--calls", str(args.calls),
                     "--seconds", str(args.seconds), "--url", url],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.calls} concurrent calls, {args.seconds:.0f} s per run, {args.repeat} runs per arm "
          f"(medians; collections and pauses per run)\n")  # fmt: skip
    keys = list(runs["off"][0])
    heads = {"off": "telemetry off", "livekit": "LiveKit's recipe", "on": "telemetry on"}
    print("| measure | " + " | ".join(heads[m] for m in modes) + " | on / off |")
    print("|---" * (len(modes) + 2) + "|")
    for k in keys:
        med = {m: statistics.median(r[k] for r in runs[m]) for m in modes}
        ratio = f"{med['on'] / med['off']:.2f}" if med["off"] >= 0.5 else "–"  # nothing to compare with
        print(f"| {k} | " + " | ".join(f"{med[m]:.1f}" for m in modes) + f" | {ratio} |")


if __name__ == "__main__":
    main()
