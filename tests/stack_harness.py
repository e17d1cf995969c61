"""Real offline calls scraped by a real Prometheus with the stack's rules loaded: the data
every dashboard query and the stack tests run against.

The scrape target is pluggable (``MetricsEndpoint``): the OTel SDK's
``PrometheusMetricReader`` served by prometheus_client (the names the Collector's
``prometheus`` exporter produces), and the package's own /metrics endpoint; the dashboard
tests run on both.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from livekit.agents import AgentSession
from livekit.agents.llm import LLMError
from livekit.agents.metrics.base import LLMMetrics, Metadata
from livekit.agents.voice.events import (
    AgentFalseInterruptionEvent,
    ErrorEvent,
    MetricsCollectedEvent,
)
from metric_points import Points
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from servers import REPO_ROOT, PrometheusServer, ScrapeTarget, free_port

from otel_livekit import setup_tracing
from otel_livekit.offline import OfflineLLM, run_offline_session

JOB = "voice-agent-stack-test"
"""The agent's service.name: the ``job`` label on the Collector path (honor_labels)."""
WORKER_JOB = "livekit-worker"
RULE_FILES = sorted((REPO_ROOT / "prometheus" / "rules").glob("*.yml"))
SCRAPE_SECONDS = 1.0
PRICES = {
    "llm": {
        "openai/fake-gpt": {"input": 1.0, "cached_input": 0.5, "output": 2.0},
        "openai/fake-gpt-mini": {"input": 0.25, "cached_input": 0.125, "output": 0.5},
    },
    "tts": {"fake-tts-co/fake-voice": {"per_million_characters": 100.0}},
    "stt": {"fake-stt-co/fake-nova": {"per_minute": 0.01}},
}
DELIVERED, UNREACHABLE = "stack-test", "unreachable"
"""Named span destinations: one that takes every span, one whose every export fails (an
OTLP endpoint on a closed loopback port), so the export self-metrics have deliveries,
failed attempts and dropped spans to show."""
TEXT_TURNS = ("hello", "what's the weather?", "book a flight")  # a tool call, a failing tool
TURNS_PER_CALL = len(TEXT_TURNS) + 1  # + one audio turn (VAD + streaming STT)
SLOW_TURN_SECONDS = 0.4
"""A plain text turn (LLM TTFT 0.2 s, then TTS) stays under it; tool and audio turns pass it."""


class MetricsEndpoint(Protocol):
    """Something Prometheus scrapes that carries the catalogue's metrics."""

    def readers(self) -> list[MetricReader]: ...
    def setup_options(self) -> dict[str, Any]: ...
    def targets(self) -> list[ScrapeTarget]: ...
    def close(self) -> None: ...


class SdkReaderEndpoint:
    """``PrometheusMetricReader`` (the OTel→Prometheus compatibility rules) on its own
    registry, plus LiveKit's global registry (its ``lk_agents_*`` worker gauges) as the
    worker's /metrics, both on loopback."""

    def __init__(self) -> None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        self.registry = CollectorRegistry()
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.port, self.worker_port = free_port(), free_port()
        self._servers = [
            start_http_server(self.port, addr="127.0.0.1", registry=self.registry),
            start_http_server(self.worker_port, addr="127.0.0.1", registry=REGISTRY),
        ]

    def readers(self) -> list[MetricReader]:
        return [self.reader]

    def setup_options(self) -> dict[str, Any]:
        return {}

    def targets(self) -> list[ScrapeTarget]:
        return [ScrapeTarget(JOB, f"127.0.0.1:{self.port}"),
                ScrapeTarget(WORKER_JOB, f"127.0.0.1:{self.worker_port}")]  # fmt: skip

    def close(self) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class PackageEndpoint:
    """The package's own standalone ``/metrics`` (``setup_tracing(prometheus_port=...)``),
    plus LiveKit's global registry as the worker's /metrics, both on loopback."""

    def __init__(self) -> None:
        self.port, self.worker_port = free_port(), free_port()
        self._worker = start_http_server(self.worker_port, addr="127.0.0.1", registry=REGISTRY)

    def readers(self) -> list[MetricReader]:
        return []

    def setup_options(self) -> dict[str, Any]:
        return {"prometheus_port": self.port}

    def targets(self) -> list[ScrapeTarget]:
        return [ScrapeTarget(JOB, f"127.0.0.1:{self.port}"),
                ScrapeTarget(WORKER_JOB, f"127.0.0.1:{self.worker_port}")]  # fmt: skip

    def close(self) -> None:
        server, thread = self._worker
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def inject_error_and_cancellation(session: AgentSession[Any]) -> None:
    """What the offline plugins cannot produce, sent through the real session's emitter as
    LiveKit sends it: a recoverable LLM error, a cancelled LLM request, a false interruption."""
    err = LLMError(timestamp=time.time(), label="fake", error=TimeoutError("slow"), recoverable=True)
    session.emit("error", ErrorEvent(error=err, source=None))
    cancelled = LLMMetrics(
        label="fake", request_id="cancelled", timestamp=time.time(), duration=0.1, ttft=-1,
        cancelled=True, completion_tokens=0, prompt_tokens=0, prompt_cached_tokens=0, total_tokens=0,
        tokens_per_second=0.0, metadata=Metadata(model_name="fake-gpt", model_provider="openai"),
    )  # fmt: skip
    session.emit("metrics_collected", MetricsCollectedEvent(metrics=cancelled))
    session.emit("agent_false_interruption", AgentFalseInterruptionEvent(resumed=True))


def worker_gauges_as_the_worker_sets_them() -> None:
    """LiveKit's worker gauges, set through the functions LiveKit's worker calls (no LiveKit
    server runs here, so no worker registers): load, one running job, its process count."""
    from livekit.agents.telemetry import metrics as lk_metrics

    lk_metrics._update_worker_load(0.25)
    lk_metrics._update_child_proc_count()
    lk_metrics.job_started()


def one_call(model: str = "fake-gpt") -> None:
    """Text turns (one with a tool, one with a failing tool), an audio turn, an interrupted
    say(), an error, a cancelled request; then close."""
    run = asyncio.run(run_offline_session(
        text_turns=TEXT_TURNS, audio_turns=1, llm_=OfflineLLM(ttft=0.2, model=model),
        interrupted_say="This is a long announcement. " * 20,
        before_close=inject_error_and_cancellation,
    ))  # fmt: skip
    assert run.assistant_messages >= TURNS_PER_CALL, run.assistant_messages


def healthy_call(model: str = "fake-gpt") -> None:
    """A call with nothing wrong: no tool error, no interruption, no error, no cancellation."""
    run = asyncio.run(run_offline_session(text_turns=("hello", "thanks"), audio_turns=1,
                                          llm_=OfflineLLM(ttft=0.2, model=model)))  # fmt: skip
    assert run.assistant_messages >= 2, run.assistant_messages


@dataclass
class StackRun:
    """What the scraped calls produced, and when Prometheus saw it."""

    prom: PrometheusServer
    t_first: float
    """Timestamp of a scrape after the warm-up call, before the counted calls."""
    t_end: float
    """Timestamp of a scrape after the counted calls."""
    calls: int
    before: Points
    after: Points
    spans: int
    """Spans the counted calls ended (each sent to both named destinations)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def range_ms(self) -> int:
        return round((self.t_end - self.t_first) * 1000)


def scrape_after(prom: PrometheusServer, wall: float, timeout: float = 30.0) -> float:
    """Timestamp of a scrape of ``JOB`` that happened after ``wall``."""
    expr = f'timestamp(voice_agent_sessions_started_total{{job="{JOB}"}})'
    result = prom.wait_for(expr, lambda r: bool(r) and float(r[0]["value"][1]) > wall, timeout)
    return float(result[0]["value"][1])


def span_destinations() -> tuple[InMemorySpanExporter, dict[str, Any]]:
    """A destination that keeps every span and one that refuses every export (connection
    refused, no retry: the 0.5 s timeout is shorter than the exporter's first backoff)."""
    delivered = InMemorySpanExporter()
    closed = f"http://127.0.0.1:{free_port()}/v1/traces"
    return delivered, {DELIVERED: delivered, UNREACHABLE: OTLPSpanExporter(endpoint=closed, timeout=0.5)}


def flush_spans() -> None:
    """Export every ended span to both destinations now. Spans only: a MeterProvider flush
    makes the SDK's PrometheusMetricReader queue a snapshot that its next scrape serves
    before the fresh one (the same series twice; Prometheus keeps the first, stale, value)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert provider.force_flush(10_000)


@contextmanager
def scraped_calls(endpoint: MetricsEndpoint, counted_calls: int = 2, call: Callable[[str], None] = one_call,
                  slow_turn_seconds: float = SLOW_TURN_SECONDS) -> Iterator[StackRun]:  # fmt: skip
    """One warm-up call (its series exist before the counted range), then ``counted_calls``
    calls, all scraped every second. Every counted call after the first uses another LLM
    model, so some series are born inside the range (as a new job process's are). Spans are
    flushed after each call, so the export self-metrics are settled before each scrape."""
    memory = InMemoryMetricReader()
    delivered, exporters = span_destinations()
    telemetry = setup_tracing("none", service_name=JOB, prices=PRICES, span_exporters=exporters,
                              slow_turn_seconds=slow_turn_seconds,
                              metric_readers=[*endpoint.readers(), memory],
                              **endpoint.setup_options())  # fmt: skip
    try:
        with PrometheusServer(endpoint.targets(), RULE_FILES, f"{SCRAPE_SECONDS:g}s") as prom:
            worker_gauges_as_the_worker_sets_them()
            call("fake-gpt")
            flush_spans()
            spans_before = len(delivered.get_finished_spans())
            before = Points(memory)
            t_first = scrape_after(prom, time.time())
            for i in range(counted_calls):
                call("fake-gpt" if i == 0 else "fake-gpt-mini")
                flush_spans()
            spans = len(delivered.get_finished_spans()) - spans_before
            after = Points(memory)
            t_end = scrape_after(prom, time.time())
            # every rule group evaluated on the final scrape
            settled = t_end + 2 * SCRAPE_SECONDS
            prom.wait_for("timestamp(job:voice_agent_turn_latency_seconds:p95_5m)",
                          lambda r: bool(r) and float(r[0]["value"][1]) > settled)  # fmt: skip
            yield StackRun(prom, t_first, t_end, counted_calls, before, after, spans)
    finally:
        telemetry.shutdown()
        endpoint.close()


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    """Every finite sample value of an instant vector or a range matrix."""
    values = []
    for series in result:
        samples = series.get("values") or [series["value"]]
        values += [float(v) for _, v in samples if math.isfinite(float(v))]
    return values


def rule_files() -> list[Path]:
    return list(RULE_FILES)
