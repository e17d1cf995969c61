"""What a misbehaving backend costs the agent, and what an outage loses.

1. Event-loop lag: a 1 ms asyncio ticker (p50/p99/max lag, ticks late by > 5 ms) while 10
   concurrent offline calls (real AgentSessions, back to back) run in one process, for a
   healthy, refusing (closed port), hung (accepts, never answers) and slow (answers after
   2 s) backend, each against telemetry off. Fresh process per run; every arm (off among
   them) runs once per round, the order reversed every other of ``--repeat`` rounds, and
   each arm's ticks are pooled; every state is compared with the same off runs;
   the backend runs in the parent process (a remote backend's CPU is not the agent's).

   Both arms freeze the heap after the warm-up (``gc.collect(); gc.freeze()``), as
   LiveKit's own forkserver does for its job processes (``livekit.agents.ipc._preload_freeze``).
   Without it, every run, telemetry off included, has one or two 80-110 ms stalls: a
   gen-2 collection walking the whole imported heap (livekit, numpy, pydantic, OTel), which
   hides anything telemetry does to the max. The GC columns report each arm's gen-2
   collections and longest pause during the run, and ``full_gc_unfrozen_ms`` in the JSON
   the pause of a full collection of the whole (unfrozen) heap at the end of the run: the
   stall a process that does not freeze gets. ``--no-freeze`` measures as before, without
   the collect and the freeze (a collect alone resets CPython's gen-2 trigger, which then
   fires only once the survivors reach a quarter of the heap, later than a 20 s run).
2. Outage: calls run for ``--outage`` seconds against a backend that is down (everything
   goes to the spool), sampling RSS and the spool's size; then the backend comes up on the
   same port and the spool drains. Reports RSS over time, the spool's peak against its cap,
   spans made / dropped by the cap / arrived (by span id, once each).

Run: .venv/bin/python bench/bench_faults.py [--lag-seconds 20] [--repeat 1] [--no-freeze]
     [--outage 600] [--cap 67108864]
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
from loopback import Backend, GcPauses, backend, free_port, rss_mb  # noqa: E402

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


def child_telemetry(on: bool, url: str) -> None:
    """A measured child's set-up, the same in every lag and GC bench: warnings off; with
    telemetry on, OTLP export to ``url`` (spool on, metrics every 5 s during the run too)."""
    import logging

    logging.disable(logging.WARNING)
    os.environ.pop("OTEL_EXPORTER_OTLP_TIMEOUT", None)  # the SDK's default 10 s
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "5000"  # metrics exported during the run too
    os.environ["OTEL_LIVEKIT_SPOOL_DIR"] = tempfile.mkdtemp(prefix="bench-spool-")
    if on:
        from otel_livekit import setup_tracing

        setup_tracing("otlp", endpoint=url)


def livekit_only(url: str) -> None:
    """LiveKit's own recipe, without this package: an SDK tracer provider with a batch
    processor and the OTLP exporter, handed to ``livekit.agents.telemetry``. What any OTel
    set-up pays for LiveKit's spans, so telemetry's cost splits into theirs and ours."""
    from livekit.agents.telemetry import set_tracer_provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    set_tracer_provider(provider)


def livekit_recording(url: str) -> None:
    """LiveKit's spans recorded and dropped at their end: no processor, no export, no
    otel_livekit. The floor of any tracing of LiveKit: its live spans (attributes, events,
    contexts) in the heap for the collector to walk, and their making on the loop."""
    from livekit.agents.telemetry import set_tracer_provider
    from opentelemetry.sdk.trace import TracerProvider

    set_tracer_provider(TracerProvider())


BASELINES = {"livekit": livekit_only, "recording": livekit_recording}
"""Arms without this package, each against telemetry off."""


def lag_child(mode: str, seconds: float, url: str, freeze: bool = True, calls: int = CALLS) -> None:
    """``mode``: off, a backend state (this package on), or a baseline: ``livekit``
    (LiveKit's recipe), ``recording`` (LiveKit's spans recorded, nothing exported)."""
    child_telemetry(mode != "off" and mode not in BASELINES, url)
    if mode in BASELINES:
        BASELINES[mode](url)
    gc_pauses = GcPauses()  # every collection during the run

    async def run() -> dict[str, Any]:
        lags: list[float] = []
        woke: list[float] = []  # when each tick woke, on the collections' clock
        stop = False

        async def ticker() -> None:
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                lags.append((now - t - 0.001) * 1000)
                woke.append(now)

        await calls_until(time.monotonic() + 5, calls)  # warm-up: imports, first exports
        heap = None
        if freeze:  # without it, as production processes that don't freeze: no collect either
            gc.collect()
            heap = len(gc.get_objects())
            gc.freeze()
        with gc_pauses:
            tick = asyncio.create_task(ticker())
            made = await calls_until(time.monotonic() + seconds, calls)
            stop = True
            await tick
        gc.unfreeze()
        started = time.perf_counter()
        gc.collect()  # what a full collection of the whole heap costs this process
        full = (time.perf_counter() - started) * 1000
        q = statistics.quantiles(lags, n=100)
        beside_gen2 = sum(  # late ticks no full collection overlapped: what else made them
            1 for at, x in zip(woke, lags, strict=True)
            if x > 5 and all(g != 2 for g, _ in gc_pauses.during(at, x))
        )  # fmt: skip
        return {"p50": q[49], "p99": q[98], "max": max(lags), "over_5ms": sum(x > 5 for x in lags),
                "over_5ms_beside_gen2": beside_gen2,
                "ticks": len(lags), "calls": made, "frozen": freeze, "heap_objects_after_warmup": heap,
                "gen2_collections": len(gc_pauses.ms(2)),
                "longest_gc_ms": max(gc_pauses.ms(), default=0.0),
                "full_gc_unfrozen_ms": full, "lags": lags}  # fmt: skip

    print(json.dumps(asyncio.run(run())))


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm's runs as one: percentiles over every tick, the worst max, the sums."""
    lags = [x for r in runs for x in r.pop("lags")]
    q = statistics.quantiles(lags, n=100)
    return {
        "p50": q[49], "p99": q[98], "max": max(lags), "over_5ms": sum(x > 5 for x in lags),
        "ticks": len(lags), "calls": sum(r["calls"] for r in runs),
        "gen2_collections": sum(r["gen2_collections"] for r in runs),
        "longest_gc_ms": max(r["longest_gc_ms"] for r in runs),
        "max_per_run": [round(r["max"], 2) for r in runs],
        "over_5ms_per_run": [r["over_5ms"] for r in runs],
        "over_5ms_beside_gen2": sum(r["over_5ms_beside_gen2"] for r in runs),
        "over_5ms_beside_gen2_per_run": [r["over_5ms_beside_gen2"] for r in runs],
        "full_gc_unfrozen_ms": [round(r["full_gc_unfrozen_ms"], 1) for r in runs],
        "heap_objects_after_warmup": [r["heap_objects_after_warmup"] for r in runs],
        "frozen": runs[0]["frozen"],
    }  # fmt: skip


STATES = ("healthy", "refusing", "hung", "slow")


def lag(
    seconds: float, repeat: int = 1, freeze: bool = True, states: tuple[str, ...] = STATES, calls: int = CALLS
) -> dict[str, Any]:
    """Every arm once per round, telemetry off among them, in an order reversed every other
    round: a machine's drift over a long sweep falls on all arms alike, and each state is
    compared with the same off runs."""
    arms = ("off", *states)
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for i in range(repeat):
        for run in arms if i % 2 == 0 else arms[::-1]:  # alternated order
            with backend("healthy" if run in BASELINES else run) as url:
                cmd = [sys.executable, __file__, "--lag-child", run, "--lag-seconds", str(seconds),
                       "--url", url, "--calls", str(calls),
                       *([] if freeze else ["--no-freeze"])]  # fmt: skip
                env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            runs[run].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    off = pooled(runs["off"])
    out: dict[str, dict[str, Any]] = {}
    for mode in states:
        out[f"{mode}:off"] = off
        out[f"{mode}:{mode}"] = pooled(runs[mode])
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
    ap.add_argument("--repeat", type=int, default=1, help="off/on pairs per backend state (alternated)")
    ap.add_argument("--no-freeze", action="store_true", help="no gc.collect(); gc.freeze() after warm-up")
    ap.add_argument(
        "--states",
        default=",".join(STATES),
        help="backend states to run, comma-separated; "
        "'livekit' is LiveKit's own tracing recipe (no otel_livekit) to a healthy backend, "
        "'recording' LiveKit's spans recorded and never exported",
    )
    ap.add_argument("--key", default="lag", help="where the lag results go in faults.json")
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
        return lag_child(
            args.lag_child, args.lag_seconds, args.url, freeze=not args.no_freeze, calls=args.calls
        )
    if args.outage_child:
        return outage_child(args.outage, args.cap, args.calls, args.off)

    out = HERE / "results" / "faults.json"
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    results["python"] = sys.version.split()[0]
    if not args.skip_lag:
        states = tuple(args.states.split(","))
        lags = results[args.key] = lag(
            args.lag_seconds, args.repeat, freeze=not args.no_freeze, states=states, calls=args.calls
        )
        spool = os.environ.get("OTEL_LIVEKIT_SPOOL")
        results[args.key]["command"] = " ".join(
            [*([f"OTEL_LIVEKIT_SPOOL={spool}"] if spool else []), "bench/bench_faults.py", *sys.argv[1:]]
        )
        per_run = f"{args.lag_seconds:.0f} s per run, {args.repeat} run(s) per arm"
        frozen = "heap frozen after warm-up" if not args.no_freeze else "heap NOT frozen"
        print(f"\nEvent-loop lag (ms), 1 ms ticker, {args.calls} concurrent calls, {per_run}, {frozen}\n")
        print("| backend | p50 off | p50 on | p99 off | p99 on | Δp99 | max off | max on | Δmax "
              "| ticks > 5 ms off | on | gen-2 GCs off / on | longest GC off / on |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for mode in states:
            off, on = lags[f"{mode}:off"], lags[f"{mode}:{mode}"]
            print(f"| {mode} | {off['p50']:.3f} | {on['p50']:.3f} | {off['p99']:.3f} | {on['p99']:.3f} | "
                  f"{on['p99'] - off['p99']:+.3f} | {off['max']:.1f} | {on['max']:.1f} | "
                  f"{on['max'] - off['max']:+.1f} | {off['over_5ms']} | {on['over_5ms']} | "
                  f"{off['gen2_collections']} / {on['gen2_collections']} | "
                  f"{off['longest_gc_ms']:.1f} / {on['longest_gc_ms']:.1f} |")  # fmt: skip
        print("\nticks > 5 ms that no full (gen-2) collection overlapped, per run, off / on\n")
        for mode in states:
            off, on = lags[f"{mode}:off"], lags[f"{mode}:{mode}"]
            print(f"- {mode}: {off['over_5ms_beside_gen2_per_run']} ({off['over_5ms_beside_gen2']}) / "
                  f"{on['over_5ms_beside_gen2_per_run']} ({on['over_5ms_beside_gen2']})")
        print("\nper run: max (ms) off / on; full collection of the unfrozen heap (ms) off / on\n")
        for mode in states:
            off, on = lags[f"{mode}:off"], lags[f"{mode}:{mode}"]
            print(
                f"- {mode}: max {off['max_per_run']} / {on['max_per_run']}; "
                f"full GC {off['full_gc_unfrozen_ms']} / {on['full_gc_unfrozen_ms']}"
            )
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
