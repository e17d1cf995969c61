"""What a long-lived process and a job's end cost: memory over many calls, and the time
the job-end flush + shutdown take with a healthy, refusing and hung backend.

1. Memory: 300 short text calls (real offline AgentSessions) in one process, telemetry on
   (``setup_tracing("otlp")`` to a healthy local receiver) against telemetry off (LiveKit with
   a plain OTel SDK setup exporting to the same receiver), each in a fresh process, RSS
   after warm-up and at the end.
2. Job end: ``force_flush()`` then ``shutdown()`` with the defaults (no shortened
   ``OTEL_EXPORTER_OTLP_TIMEOUT``) for a healthy, a refusing (closed port) and a hung
   (accepts, never answers) backend.

Run: .venv/bin/python bench/bench_lifecycle.py [--calls 300]
Prints a Markdown table and writes bench/results/lifecycle.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from loopback import backend, rss_mb  # noqa: E402


def plain_sdk_setup(endpoint: str) -> None:
    """What a LiveKit user writes by hand: SDK providers, OTLP exporters, LiveKit's hook."""
    from livekit.agents.telemetry import set_tracer_provider
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    trace.set_tracer_provider(tp)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"))
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    set_tracer_provider(tp)


def memory_child(mode: str, calls: int, endpoint: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    if mode == "on":
        from otel_livekit import setup_tracing

        setup_tracing("otlp", endpoint=endpoint)
    else:
        plain_sdk_setup(endpoint)
    from livekit.agents import AgentSession

    from otel_livekit.offline import run_offline_session

    async def run() -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(calls):
            await run_offline_session(text_turns=("hello",), audio_turns=0, job_id=f"job-{i}")
            if i + 1 in (30, calls):
                gc.collect()
                out[f"rss_after_{i + 1}"] = rss_mb()
        gc.collect()
        out["sessions_alive"] = sum(isinstance(o, AgentSession) for o in gc.get_objects())
        return out

    print(json.dumps(asyncio.run(run())))


def memory(calls: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with backend("healthy") as url:
        for mode in ("off", "on"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--calls", str(calls), "--endpoint", url],
                capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )  # fmt: skip
            out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def job_end() -> dict[str, float]:
    import logging

    logging.disable(logging.WARNING)
    os.environ.pop("OTEL_EXPORTER_OTLP_TIMEOUT", None)
    spool_dir = HERE / "results" / "spool-lifecycle"  # not the user's cache
    os.environ.setdefault("OTEL_LIVEKIT_SPOOL_DIR", str(spool_dir))
    from opentelemetry import metrics, trace

    from otel_livekit import setup_tracing
    from otel_livekit.telemetry import current

    out: dict[str, float] = {}
    for name, mode in (("healthy", "healthy"), ("refused", "refusing"), ("hung", "hung")):
        with backend(mode) as url:
            t = setup_tracing("otlp", endpoint=url)
            for i in range(50):
                with trace.get_tracer("bench").start_as_current_span(f"turn-{i}"):
                    pass
            metrics.get_meter("bench").create_counter("bench.calls").add(1)
            t0 = time.perf_counter()
            t.force_flush()
            t.shutdown()
            out[name] = time.perf_counter() - t0
        assert current() is None
        _reset_globals()
    return out


def _reset_globals() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    del metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--skip-memory", action="store_true", help="only the job-end figures")
    args = parser.parse_args()
    if args.child:
        memory_child(args.child, args.calls, args.endpoint)
        return
    ends = job_end()
    if args.skip_memory:
        print("| backend | job-end flush + shutdown (s), defaults (spool on) |")
        print("|---|---|")
        for name, secs in ends.items():
            print(f"| {name} | {secs:.2f} |")
        return
    mem = memory(args.calls)
    n = args.calls
    print(f"python {sys.version.split()[0]}, {n} calls per process")
    print("| measure | telemetry off (plain SDK) | otel_livekit | difference |")
    print("|---|---|---|---|")
    for key in ("rss_after_30", f"rss_after_{n}"):
        off, on = mem["off"][key], mem["on"][key]
        print(f"| RSS after {key.rsplit('_', 1)[1]} calls (MB) | {off:.1f} | {on:.1f} | {on - off:+.1f} |")
    growth_off = mem["off"][f"rss_after_{n}"] - mem["off"]["rss_after_30"]
    growth_on = mem["on"][f"rss_after_{n}"] - mem["on"]["rss_after_30"]
    print(f"| RSS growth from call 30 to {n} (MB) | {growth_off:+.1f} | {growth_on:+.1f} | "
          f"{growth_on - growth_off:+.1f} |")  # fmt: skip
    print(f"| AgentSession objects alive after the last call | {mem['off']['sessions_alive']:.0f} | "
          f"{mem['on']['sessions_alive']:.0f} | |")  # fmt: skip
    print()
    print("| backend | job-end flush + shutdown (s), defaults |")
    print("|---|---|")
    for name, secs in ends.items():
        print(f"| {name} | {secs:.2f} |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "lifecycle.json").write_text(json.dumps({"memory": mem, "job_end": ends}, indent=2))


if __name__ == "__main__":
    main()
