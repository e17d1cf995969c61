"""Per-event metrics cost: what a deployed agent pays per metrics event with otel_livekit
against LiveKit's own ``collect_usage`` on a plain SDK, for the same LLM/TTS/STT event mix.

Three sides, for the same events:
- baseline: LiveKit's ``collect_usage`` on a plain SDK MeterProvider (the global, no Views),
  as a user who sets one by hand gets it;
- ours: ``Recorder.record`` alone, with the MeterProvider ``setup_tracing("none")`` builds
  (every catalogue instrument, the span index, prices), events carrying speech ids so the
  live turn breakdown runs too: the package's own recording, the issue's measure;
- deployed: ``collect_usage`` then ``Recorder.record``, as an agent runs them: LiveKit calls
  ``collect_usage`` on every metrics event whatever the setup
  (``AgentActivity._on_metrics_collected``), here under our MeterProvider.
Histogram samples are aggregated off the event loop: the table gives the event-loop figure
and, beside it, the whole recording work including that aggregation (drained on the same
thread every ``DRAIN_EVERY`` events and timed apart). Each figure is the median of five
rounds over the whole event list.
Each side runs in fresh processes, alternated (baseline, ours, baseline, ours, ...), inside a
sampled span as LiveKit records (so exemplar handling is included), once inside a job context
(as deployed: LiveKit adds ``room_id`` and ``job_id`` to its measurements) and once outside
(tests, console mode).

Run: .venv/bin/python bench/bench_event_cost.py [--rounds 5]
Prints a Markdown table and writes bench/results/event_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRAIN_EVERY = 100
"""Events between aggregations. In an agent the aggregation thread wakes every 250 ms, a few
to a few hundred events; letting the queue grow to a whole round instead would charge ours
for garbage-collector passes over tens of thousands of queued samples that never happen."""
PROVIDERS = [("api.openai.com", "gpt-4o-mini"), ("api.anthropic.com", "claude-haiku"),
             ("api.groq.com", "llama-3.1-8b")]  # fmt: skip


def events(turns: int) -> list[Any]:
    """One LLM, one TTS and one STT event per turn, over a few providers/models."""
    from livekit.agents.metrics.base import LLMMetrics, Metadata, STTMetrics, TTSMetrics

    out: list[Any] = []
    for i in range(turns):
        provider, model = PROVIDERS[i % len(PROVIDERS)]
        sid = f"speech_{i}"
        out.append(
            LLMMetrics(
                label="l",
                request_id=f"r{i}",
                timestamp=0.0,
                duration=0.4 + i % 7 * 0.01,
                ttft=0.2,
                cancelled=False,
                completion_tokens=20,
                prompt_tokens=400,
                prompt_cached_tokens=100,
                total_tokens=420,
                tokens_per_second=50.0,
                speech_id=sid,
                metadata=Metadata(model_name=model, model_provider=provider),
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
                metadata=Metadata(model_name="sonic-2", model_provider="cartesia"),
            )
        )
        out.append(
            STTMetrics(
                label="s",
                request_id=f"s{i}",
                timestamp=0.0,
                duration=0.0,
                audio_duration=1.5,
                streamed=True,
                metadata=Metadata(model_name="nova-3", model_provider="deepgram"),
            )
        )
    return out  # fmt: skip


def child(side: str, turns: int, in_job: bool) -> tuple[float, float]:
    """(µs per event on the event loop, µs per event including aggregation)."""
    import contextlib

    from livekit.agents.testing import fake_job_context
    from opentelemetry import trace

    batch = events(turns)
    settle: Any = lambda: None  # noqa: E731
    if side == "baseline":
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        trace.set_tracer_provider(TracerProvider())
        from livekit.agents.telemetry.otel_metrics import collect_usage

        def run(ev: Any) -> None:
            collect_usage(ev)
    else:
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from otel_livekit import setup_tracing
        from otel_livekit.metrics.turns import TurnTracker

        t = setup_tracing("none", metric_readers=[InMemoryMetricReader()], instrument_sessions=False)
        assert t.recorder is not None
        from livekit.agents.telemetry.otel_metrics import collect_usage

        record, turns_ = t.recorder.record, TurnTracker()
        pending = t.recorder.instruments.pending
        pending.interval = 3600.0  # the background aggregation waits: timed apart below
        settle = pending.drain

        if side == "ours":

            def run(ev: Any) -> None:
                record(ev, turns_)
        else:  # deployed: LiveKit's collect_usage runs too, as AgentActivity calls it

            def run(ev: Any) -> None:
                collect_usage(ev)
                record(ev, turns_)

    tracer = trace.get_tracer("bench")
    job = fake_job_context(job_id="job-bench") if in_job else contextlib.nullcontext()
    with job, tracer.start_as_current_span("agent_turn"):
        for ev in batch[: len(batch) // 5]:  # warm-up: every series exists
            run(ev)
        settle()
        loops, totals = [], []
        for _ in range(5):
            drained = 0.0
            t0 = time.perf_counter()
            for i, ev in enumerate(batch, 1):
                run(ev)
                if i % DRAIN_EVERY == 0:  # what the aggregation thread does every 250 ms
                    d0 = time.perf_counter()
                    settle()
                    drained += time.perf_counter() - d0
            d0 = time.perf_counter()
            settle()
            t2 = time.perf_counter()
            drained += t2 - d0
            loops.append(t2 - t0 - drained)
            totals.append(t2 - t0)
    per_event = 1e6 / len(batch)
    return statistics.median(loops) * per_event, statistics.median(totals) * per_event


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--child")
    parser.add_argument("--in-job", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.turns, args.in_job)))
        return
    results: dict[str, Any] = {}
    print(f"python {sys.version.split()[0]}, {args.rounds} fresh processes per side, alternated, median")
    print("| µs per metrics event, LLM/TTS/STT mix | where | LiveKit collect_usage (plain SDK) "
          "| otel_livekit recording | ratio | deployed: collect_usage + otel_livekit | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for where, flag in (("inside a job (deployed)", ["--in-job"]), ("outside a job", [])):
        runs: dict[str, list[list[float]]] = {"baseline": [], "ours": [], "deployed": []}
        for _ in range(args.rounds):
            for side in runs:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", side, "--turns", str(args.turns), *flag],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
        base = statistics.median(total for _, total in runs["baseline"])
        ratios: dict[str, float] = {}
        for row, index in (("on the agent's event loop", 0),
                           ("all recording work, incl. aggregation off the loop", 1)):  # fmt: skip
            ours = statistics.median(r[index] for r in runs["ours"])
            deployed = statistics.median(r[index] for r in runs["deployed"])
            ratios[f"ours/{index}"], ratios[f"deployed/{index}"] = ours / base, deployed / base
            print(f"| {row} | {where} | {base:.1f} | {ours:.1f} | {ours / base:.2f}x | "
                  f"{deployed:.1f} | {deployed / base:.2f}x |")  # fmt: skip
        results[where] = {"runs": runs, "ratios": ratios}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "event_cost.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
