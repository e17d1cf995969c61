"""What a misbehaving backend costs the agent, and what an outage loses.

1. Event-loop lag: a 1 ms asyncio ticker (p50/p99/max lag, ticks late by > 5 ms) while 10
   concurrent offline calls (real AgentSessions, back to back) run in one process, for a
   healthy, refusing (closed port), hung (accepts, never answers) and slow (answers after
   2 s) backend, each against telemetry off run right before it. Fresh process per run; the
   backend runs in the parent process (a remote backend's CPU is not the agent's).
2. Outage: calls run for ``--outage`` seconds against a backend that is down (everything
   goes to the spool), sampling RSS and the spool's size; then the backend comes up on the
   same port and the spool drains. Reports RSS over time, the spool's peak against its cap,
   spans made / dropped by the cap / arrived (by span id, once each).

Run: .venv/bin/python bench/bench_faults.py [--lag-seconds 20] [--outage 600] [--cap-mb 64]
Prints Markdown tables and writes bench/results/faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from loopback import Backend, backend, free_port, rss_mb  # noqa: E402

CALLS = 10
TURNS = ("hello", "what's the weather?", "bye")
PACE = 3.0
"""Seconds per turn per call: the offline calls answer in a few hundred ms, so each caller
waits to keep a conversational pace (a turn every 3 s per call, a fresh call every 3 turns)."""


async def calls_until(deadline: float, n: int = CALLS) -> int:
    """``n`` concurrent offline calls, back to back, until ``deadline``; returns calls made."""
    from otel_livekit.offline import run_offline_session

    done = 0

    async def caller(i: int) -> None:
        nonlocal done
        await asyncio.sleep(i * PACE * len(TURNS) / n)  # calls staggered, as in real life
        while time.monotonic() < deadline:
            started = time.monotonic()
            await run_offline_session(text_turns=TURNS, audio_turns=0, in_job=False)
            done += 1
            await asyncio.sleep(max(0.0, started + PACE * len(TURNS) - time.monotonic()))

    await asyncio.gather(*(caller(i) for i in range(n)))
    return done


def lag_child(mode: str, seconds: float, url: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    os.environ.pop("OTEL_EXPORTER_OTLP_TIMEOUT", None)  # the SDK's default 10 s
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "5000"  # metrics exported during the run too
    os.environ["OTEL_LIVEKIT_SPOOL_DIR"] = tempfile.mkdtemp(prefix="bench-spool-")
    if mode != "off":
        from otel_livekit import setup_tracing

        setup_tracing("otlp", endpoint=url)

    async def run() -> dict[str, Any]:
        lags: list[float] = []
        stop = False

        async def ticker() -> None:
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append((time.perf_counter() - t - 0.001) * 1000)

        await calls_until(time.monotonic() + 5)  # warm-up: imports, first exports
        lags.clear()
        tick = asyncio.create_task(ticker())
        made = await calls_until(time.monotonic() + seconds)
        stop = True
        await tick
        q = statistics.quantiles(lags, n=100)
        return {"p50": q[49], "p99": q[98], "max": max(lags), "over_5ms": sum(x > 5 for x in lags),
                "ticks": len(lags), "calls": made}  # fmt: skip

    print(json.dumps(asyncio.run(run())))


def lag(seconds: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for mode in ("healthy", "refusing", "hung", "slow"):
        for run in ("off", mode):
            with backend(run) as url:
                cmd = [
                    sys.executable,
                    __file__,
                    "--lag-child",
                    run,
                    "--lag-seconds",
                    str(seconds),
                    "--url",
                    url,
                ]
                env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            out[f"{mode}:{run}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def outage_child(seconds: float, cap: int, calls: int, off: bool = False) -> None:
    """``off``: the same calls and sampling with telemetry off (the memory baseline)."""
    import logging

    logging.disable(logging.WARNING)
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    from otel_livekit import setup_tracing

    made = bytearray()  # 8 bytes per span id: the bench's own bookkeeping, kept small

    class Made(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.context is not None:
                made.extend(span.context.span_id.to_bytes(8, "big"))

    port = free_port()
    spool = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "5000"
    if not off:
        t = setup_tracing("otlp", endpoint=f"http://127.0.0.1:{port}", spool_dir=spool, spool_max_bytes=cap,
                          span_processors=[Made()])  # fmt: skip

    def spool_bytes() -> int:
        """The largest destination's directory (the cap applies per destination)."""
        dirs = [d for d in spool.iterdir() if d.is_dir()]
        return max((sum(p.stat().st_size for p in d.iterdir() if p.is_file()) for d in dirs), default=0)

    async def run() -> list[tuple[float, float, int]]:
        samples: list[tuple[float, float, int]] = []
        start = time.monotonic()
        stop = False

        async def sampler() -> None:
            while not stop:
                gc.collect()
                samples.append((round(time.monotonic() - start, 1), round(rss_mb(), 1), spool_bytes()))
                await asyncio.sleep(max(seconds / 60, 2))

        task = asyncio.create_task(sampler())
        await calls_until(start + seconds, calls)
        stop = True
        await task
        return samples

    samples = asyncio.run(run())
    warm = [rss for at, rss, _ in samples if at >= min(60.0, seconds / 4)]
    if off:
        print(json.dumps({"outage_s": seconds, "calls": calls, "telemetry": "off", "rss_samples": samples,
                          "rss_after_warmup_min": min(warm), "rss_after_warmup_max": max(warm)}))  # fmt: skip
        return
    t.force_flush()  # the job ends while the backend is still down
    outage_done = time.monotonic()
    server = Backend("ok", port)  # the backend comes back
    health = {h.signal: h for h in t.health}
    while any(spool.rglob("*.otlp*")) and time.monotonic() - outage_done < 300:
        time.sleep(0.2)
    drained = time.monotonic() - outage_done
    t.shutdown()
    server.close()
    arrived = server.span_ids
    traces = health["traces"]
    made_ids = {bytes(made[i : i + 8]) for i in range(0, len(made), 8)}
    print(json.dumps({
        "outage_s": seconds, "cap_bytes": cap, "calls": calls, "spans_made": len(made_ids),
        "spans_dropped_by_cap": traces.dropped, "spans_arrived": len(arrived),
        "spans_arrived_unique": len(set(arrived)), "arrived_of_made": len(set(arrived) & made_ids),
        "drain_s": round(drained, 1), "rss_samples": samples,
        "rss_after_warmup_min": min(warm), "rss_after_warmup_max": max(warm),
        "spool_peak_bytes": max(b for _, _, b in samples),
    }))  # fmt: skip


def outage(seconds: float, cap: int, calls: int, off: bool) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--outage-child", "--outage", str(seconds), "--cap", str(cap),
         "--calls", str(calls), *(["--off"] if off else [])],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lag-seconds", type=float, default=20)
    ap.add_argument("--outage", type=float, default=600)
    ap.add_argument("--cap", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--calls", type=int, default=CALLS)
    ap.add_argument("--skip-lag", action="store_true")
    ap.add_argument("--skip-outage", action="store_true")
    ap.add_argument("--lag-child")
    ap.add_argument("--outage-child", action="store_true")
    ap.add_argument("--off", action="store_true", help="outage part with telemetry off (memory baseline)")
    ap.add_argument("--url")
    args = ap.parse_args()
    if args.lag_child:
        return lag_child(args.lag_child, args.lag_seconds, args.url)
    if args.outage_child:
        return outage_child(args.outage, args.cap, args.calls, args.off)

    out = HERE / "results" / "faults.json"
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    results["python"] = sys.version.split()[0]
    if not args.skip_lag:
        lags = results["lag"] = lag(args.lag_seconds)
        results["lag_command"] = " ".join(["bench/bench_faults.py", *sys.argv[1:]])
        per_run = f"{args.lag_seconds:.0f} s per run"
        print(f"\nEvent-loop lag (ms), 1 ms ticker, {CALLS} concurrent calls, {per_run}\n")
        print("| backend | p50 off | p50 on | p99 off | p99 on | Δp99 | max off | max on | Δmax "
              "| ticks > 5 ms off | on |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for mode in ("healthy", "refusing", "hung", "slow"):
            off, on = lags[f"{mode}:off"], lags[f"{mode}:{mode}"]
            print(f"| {mode} | {off['p50']:.3f} | {on['p50']:.3f} | {off['p99']:.3f} | {on['p99']:.3f} | "
                  f"{on['p99'] - off['p99']:+.3f} | {off['max']:.1f} | {on['max']:.1f} | "
                  f"{on['max'] - off['max']:+.1f} | {off['over_5ms']} | {on['over_5ms']} |")  # fmt: skip
    if args.skip_outage:
        out.write_text(json.dumps(results, indent=2) + "\n")
        return
    key = f"outage_{args.outage:.0f}s_" + ("telemetry_off" if args.off else f"cap_{args.cap}")
    o = outage(args.outage, args.cap, args.calls, args.off)
    o["command"] = " ".join(["bench/bench_faults.py", *sys.argv[1:]])
    results = json.loads(out.read_text()) if out.exists() else results  # another run may have written
    results[key] = o
    if args.off:
        out.write_text(json.dumps(results, indent=2) + "\n")
        rss = f"{o['rss_after_warmup_min']:.1f}–{o['rss_after_warmup_max']:.1f}"
        print(f"telemetry off, {o['outage_s']:.0f} s of calls: RSS after warm-up {rss} MB")
        return
    kept = o["spans_made"] - o["spans_dropped_by_cap"]
    print(f"\nOutage of {o['outage_s']:.0f} s, {o['calls']} concurrent calls, cap {o['cap_bytes']} bytes\n")
    print("| measure | value |\n|---|---|")
    rss = f"{o['rss_after_warmup_min']:.1f}–{o['rss_after_warmup_max']:.1f}"
    print(f"| RSS after warm-up, min–max (MB) | {rss} |")
    print(f"| spool peak, largest destination (bytes) / cap | {o['spool_peak_bytes']} / {o['cap_bytes']} |")
    print(f"| spans made / dropped by the cap (counted) | {o['spans_made']} / {o['spans_dropped_by_cap']} |")
    arrived = f"{o['spans_arrived_unique']} / {o['spans_arrived']}"
    print(f"| spans arrived after recovery (unique / total) | {arrived} |")
    share = 100 * o["arrived_of_made"] / max(kept, 1)
    print(f"| share of spans within the cap that arrived | {share:.1f} % |")
    print(f"| spool drained in (s) | {o['drain_s']} |")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
