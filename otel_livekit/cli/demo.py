"""``otel-livekit demo``: simulated calls through real AgentSessions, instrumented by
``setup_tracing()`` exactly as a user's agent is, with a live per-turn latency view."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import environment_variables as ev
from .. import semconv as sc
from ..errors import ConfigurationError
from ..export.destinations.backends import DEFAULT_BACKEND, infer_backend
from ..metrics.budget import PARTS as BUDGET_PARTS
from .report import percentile, write_report
from .tracefile import ATTR_E2E, ATTR_EOU

if TYPE_CHECKING:
    from .simulate import CallPlan

DEMO_FILE = "otel-livekit-demo.jsonl"
PARTS: tuple[tuple[str, str], ...] = (
    ("eou", "EOU"),
    ("llm_ttft", "LLM"),
    ("tts_ttfb", "TTS"),
    ("remainder", "rest"),
    ("e2e", "e2e"),
)


@dataclass
class TurnSample:
    call: int
    values: dict[str, float]
    interrupted: bool
    timeline: list[tuple[str, float]] = field(default_factory=list)
    """The turn budget's segments in the order they happened (``agent_turn`` attributes)."""
    dominant: str | None = None

    @property
    def wait(self) -> float | None:
        return self.values.get("wait")


@dataclass
class LiveStats:
    """Every finished turn's budget, for the running p50/p95 and the final table."""

    samples: list[TurnSample] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        return [s.values[key] for s in self.samples if key in s.values]

    def p50_p95(self, key: str) -> str:
        values = self.series(key)
        if not values:
            return "–"
        return f"{percentile(values, 50):.2f}/{percentile(values, 95):.2f}"


class LiveTurns(SpanProcessor):
    """Reads each finished ``agent_turn`` span — the same attributes the report reads —
    and hands its latency budget to the live view."""

    def __init__(self, on_turn: Callable[[TurnSample], None]) -> None:
        from .simulate import CALL_INDEX

        self._call_index = CALL_INDEX
        self._calls: dict[int, int] = {}
        self._on_turn = on_turn

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.name == sc.SPAN_AGENT_SESSION and span.context is not None:
            self._calls[span.context.trace_id] = self._call_index.get()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name != sc.SPAN_AGENT_TURN or span.context is None:
            return
        attrs = span.attributes or {}
        keys = {
            "eou": (sc.ATTR_TURN_EOU, ATTR_EOU),
            "llm_ttft": (sc.ATTR_TURN_LLM_TTFT,),
            "tts_ttfb": (sc.ATTR_TURN_TTS_TTFB,),
            "remainder": (sc.ATTR_TURN_REMAINDER,),
            "e2e": (ATTR_E2E,),
        }
        values: dict[str, float] = {}
        for part, names in keys.items():
            for name in names:
                value = attrs.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[part] = float(value)
                    break
        budget = sc.ATTR_BUDGET
        for part in (*BUDGET_PARTS, "total"):
            value = attrs.get(f"{budget}.{part}")
            if isinstance(value, float):
                values["wait" if part == "total" else part] = value
        parts_, seconds_ = attrs.get(f"{budget}.timeline.parts"), attrs.get(f"{budget}.timeline.seconds")
        timeline: list[tuple[str, float]] = []
        if isinstance(parts_, (list, tuple)) and isinstance(seconds_, (list, tuple)):
            timeline = [(str(n), float(s)) for n, s in zip(parts_, seconds_, strict=False)]
        dominant = attrs.get(f"{budget}.dominant")
        call = self._calls.get(span.context.trace_id, -1)
        self._on_turn(TurnSample(call, values, bool(attrs.get("lk.interrupted")), timeline,
                                 str(dominant) if dominant else None))  # fmt: skip


def _turn_line(sample: TurnSample, stats: LiveStats, turn: int) -> str:
    """The turn's budget in the order it happened (what the report and the span show), then
    the running p50/p95 of the wait and of its biggest parts."""
    flag = " [interrupted]" if sample.interrupted else ""
    if sample.timeline and sample.wait is not None:
        steps = " → ".join(f"{part} {seconds:.3f}" for part, seconds in sample.timeline)
        head = f"{steps} = {sample.wait:.3f}s, mostly {sample.dominant}{flag}"
        running = "  ".join(f"{key} {stats.p50_p95(key)}" for key in ("wait", *_top_parts(stats)))
        return f"call {sample.call + 1} turn {turn}: {head}   p50/p95 {running}"
    v = sample.values  # a turn without a budget (a say()): LiveKit's own numbers
    parts = " + ".join(f"{label} {v[key]:.3f}" for key, label in PARTS[:3] if key in v)
    total = f" = e2e {v['e2e']:.3f}s" if "e2e" in v else ""
    return f"call {sample.call + 1} turn {turn}: {parts}{total}{flag}"


def _top_parts(stats: LiveStats, n: int = 3) -> list[str]:
    """The parts that took the most time so far."""
    totals = {part: sum(stats.series(part)) for part in BUDGET_PARTS}
    return [p for p, t in sorted(totals.items(), key=lambda kv: -kv[1]) if t > 0][:n]


def _choose_backend(backend: str | None) -> str:
    if backend:
        return backend
    env = os.environ
    chosen = env.get(ev.OTEL_LIVEKIT_BACKEND) or infer_backend(env)
    return "file" if chosen == DEFAULT_BACKEND and not env.get(ev.OTEL_LIVEKIT_BACKEND) else chosen


@click.command()
@click.option("--calls", default=6, show_default=True, type=click.IntRange(1, 200), help="Simulated calls.")
@click.option(
    "--concurrency", default=3, show_default=True, type=click.IntRange(1, 50), help="Calls running at once."
)
@click.option(
    "--turns", default=4, show_default=True, type=click.IntRange(1, 30), help="User turns per call."
)
@click.option("--seed", default=7, show_default=True, help="Seed for plans, providers and latencies.")
@click.option(
    "--speed",
    default=4.0,
    show_default=True,
    type=click.FloatRange(1.0, 50.0),
    help="Speed-up of the human side (speaking, playout); model latencies stay real.",
)
@click.option(
    "--backend",
    default=None,
    help="Where telemetry goes (default: $OTEL_LIVEKIT_BACKEND, an inferred backend, else file).",
)
@click.option(
    "--file",
    "file_path",
    default=None,
    type=click.Path(dir_okay=False),
    help=f"Trace file for the file backend, started afresh (default: ./{DEMO_FILE}).",
)
@click.option(
    "--report/--no-report", default=True, show_default=True, help="Write the HTML report (file backend)."
)
@click.option(
    "--prometheus-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Serve the catalogue on http://127.0.0.1:PORT/metrics while the demo runs "
    "(default: $OTEL_LIVEKIT_PROMETHEUS_PORT; 0 picks a free port).",
)
def demo(
    calls: int,
    concurrency: int,
    turns: int,
    seed: int,
    speed: float,
    backend: str | None,
    file_path: str | None,
    report: bool,
    prometheus_port: int | None,
) -> None:
    """Simulated calls through real LiveKit AgentSessions, with a live latency view."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("livekit.agents").setLevel(logging.ERROR)  # the view shows errors itself
    name = _choose_backend(backend)
    options: dict[str, str] = {}
    path: Path | None = None
    if name == "file":
        path = Path(file_path or DEMO_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        options["otel_livekit_file_path"] = str(path)
        allow_pii: bool | None = True  # a local file: keep what was said for the report
    else:
        os.environ.setdefault("LIVEKIT_TELEMETRY_ALLOW_PII", "0")
        # dashboards fill while the demo runs, not only at its end (the SDK default is 60 s)
        os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "5000")
        allow_pii = None

    from .. import setup_tracing
    from .simulate import plan_calls, run_call

    console = Console(highlight=False)
    if not console.is_terminal:  # plain output: no colour, no wrapping at 80 columns
        console = Console(highlight=False, width=160, no_color=True)
    stats = LiveStats()
    per_call: dict[int, int] = {}
    live = console.is_terminal
    progress = Progress(
        TextColumn(f"[bold]{calls} calls[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("turns"),
        TimeElapsedColumn(), console=console, disable=not live, transient=True,
    )  # fmt: skip
    task = progress.add_task("turns", total=calls * turns)

    def on_turn(sample: TurnSample) -> None:
        stats.samples.append(sample)
        per_call[sample.call] = per_call.get(sample.call, 0) + 1
        progress.advance(task)
        progress.console.print(_turn_line(sample, stats, per_call[sample.call]), markup=False, soft_wrap=True)

    try:
        telemetry = setup_tracing(
            name,
            service_name=os.environ.get(ev.OTEL_SERVICE_NAME) or "otel-livekit-demo",
            allow_pii=allow_pii,
            span_processors=[LiveTurns(on_turn)],
            prometheus_port=prometheus_port,
            **cast(Any, options),
        )
    except ConfigurationError as exc:
        raise click.ClickException(f"{exc} (otel-livekit doctor explains more)") from None
    plans = plan_calls(calls, turns, seed)
    console.print(
        f"{calls} simulated calls × {turns} turns, {min(concurrency, calls)} at a time, seed {seed}, "
        f"speed ×{speed:g} → backend [bold]{telemetry.backend}[/]" + (f" ({path})" if path else ""),
    )
    if telemetry.prometheus_url:
        console.print(f"metrics: {telemetry.prometheus_url} (while the demo runs)")
    started = time.monotonic()

    async def run_all() -> list[int]:
        gate = asyncio.Semaphore(concurrency)

        async def one(plan: CallPlan) -> int:
            async with gate:
                result = await run_call(plan, speed=speed)
                return result.replies

        return list(await asyncio.gather(*(one(p) for p in plans)))

    with progress:
        replies = asyncio.run(run_all())
    elapsed = time.monotonic() - started
    telemetry.shutdown()
    _summary(console, stats, plans, replies, elapsed)
    failures = telemetry.export_failures
    if any(failures.values()):
        console.print(f"export failures: {failures}")
    if path is not None:
        console.print(f"trace file: {path}")
        if report:
            out = write_report(path)
            console.print(f"report: {out.resolve()}")
    if sum(replies) < calls * turns or any(failures.values()):
        sys.exit(1)


def _summary(
    console: Console, stats: LiveStats, plans: list[CallPlan], replies: list[int], elapsed: float
) -> None:
    plain = not console.is_terminal
    table = Table(title="Where the wait went (s), all calls: the parts' means add up to the "
                  "mean wait", box=box.ASCII if plain else box.SIMPLE_HEAD)  # fmt: skip
    for col in ("part", "n", "mean", "p50", "p95", "max", "slowest turns"):
        table.add_column(col, justify="left" if col == "part" else "right")
    turns = [s for s in stats.samples if s.wait is not None]
    for key in (*BUDGET_PARTS, "wait"):
        values = stats.series(key)
        if values:
            mean = sum(values) / len(turns) if turns else 0.0  # absent in a turn counts as 0
            dominated = sum(1 for s in turns if s.dominant == key)
            table.add_row(key, str(len(values)), f"{mean:.3f}", f"{percentile(values, 50):.3f}",
                          f"{percentile(values, 95):.3f}", f"{max(values):.3f}",
                          str(dominated) if key != "wait" else "")  # fmt: skip
    console.print(table)
    calls = Table(title="Calls", box=box.ASCII if plain else box.SIMPLE_HEAD)
    for col in ("call", "LLM", "TTS", "STT", "replies", "e2e p50"):
        calls.add_column(col, overflow="fold")
    for plan, n in zip(plans, replies, strict=True):
        e2e = [s.values["e2e"] for s in stats.samples if s.call == plan.index and "e2e" in s.values]
        calls.add_row(
            str(plan.index + 1), f"{plan.llm.provider}/{plan.llm.model}",
            f"{plan.tts.provider}/{plan.tts.model}", f"{plan.stt.provider}/{plan.stt.model}", str(n),
            f"{percentile(e2e, 50):.3f}" if e2e else "–",
        )  # fmt: skip
    console.print(calls)
    console.print(f"{len(plans)} calls, {sum(replies)} agent replies in {elapsed:.1f} s")
