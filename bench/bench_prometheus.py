"""How long a scrape of ``/metrics`` takes after 1,000 simulated calls.

Each call is what a real one emits, fed to the recorder as LiveKit metric objects: six
turns of EOU, STT, VAD, LLM and TTS metrics (providers and models varied across calls, as
in a fleet with a fallback model or two), the turn's e2e latency, a tool call now and then,
an error now and then, and the session's start/end/duration/turns.

- single process: the standalone endpoint (``prometheus_port``), one process made all
  1,000 calls; a GET of ``/metrics`` collects the OTel points and renders them.
- multiprocess: LiveKit's worker ``/metrics`` (``MultiProcessCollector`` over
  ``PROMETHEUS_MULTIPROC_DIR``, what ``livekit.agents.telemetry.http_server`` runs per
  scrape) after the calls ran in job processes that have ended, each leaving its files: one
  call per job process (LiveKit's default) and 100 calls per process.

Run: .venv/bin/python bench/bench_prometheus.py
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livekit.agents.metrics.base import (
    EOUMetrics,
    LLMMetrics,
    Metadata,
    STTMetrics,
    TTSMetrics,
    VADMetrics,
)
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from otel_livekit import semconv as sc
from otel_livekit.export.local.prometheus import PrometheusSink
from otel_livekit.metrics.catalogue import METER_NAME, views
from otel_livekit.metrics.instruments import Instruments
from otel_livekit.metrics.pricing import load_prices
from otel_livekit.metrics.recorder import Recorder
from otel_livekit.metrics.turns import TurnTracker

CALLS = 1_000
TURNS = 6
LLMS = [("api.openai.com", "gpt-4o-mini"), ("api.openai.com", "gpt-4.1"),
        ("anthropic", "claude-sonnet-4"), ("google", "gemini-2.5-flash")]  # fmt: skip
TTSS = [("cartesia", "sonic-2"), ("elevenlabs", "eleven_flash_v2_5"), ("openai", "gpt-4o-mini-tts")]
STTS = [("deepgram", "nova-3"), ("assemblyai", "universal-streaming")]
TOOLS = ["lookup_weather", "book_flight", "transfer_call"]
CLOSE = ["user_initiated", "participant_disconnected", "job_shutdown"]


def call(rec: Recorder, rnd: random.Random, n: int) -> None:
    """One simulated call through the recorder, as the session hooks would feed it."""
    turns = TurnTracker()
    llm = Metadata(model_provider=LLMS[n % len(LLMS)][0], model_name=LLMS[n % len(LLMS)][1])
    tts = Metadata(model_provider=TTSS[n % len(TTSS)][0], model_name=TTSS[n % len(TTSS)][1])
    stt = Metadata(model_provider=STTS[n % len(STTS)][0], model_name=STTS[n % len(STTS)][1])
    rec.add("voice_agent.sessions.started", 1)
    rec.add("voice_agent.sessions.active", 1)
    for t in range(TURNS):
        sid = f"speech_{n}_{t}"
        eou = rnd.uniform(0.2, 0.8)
        ttft = rnd.lognormvariate(-1.2, 0.4)
        ttfb = rnd.lognormvariate(-1.8, 0.3)
        for m in (
            VADMetrics(label="v", timestamp=0.0, idle_time=0.0, inference_duration_total=0.02,
                       inference_count=100, metadata=Metadata(model_provider="silero", model_name="vad")),
            STTMetrics(label="s", request_id=sid, timestamp=0.0, duration=0.0,
                       audio_duration=rnd.uniform(1, 4), streamed=True, metadata=stt),
            EOUMetrics(timestamp=0.0, end_of_utterance_delay=eou, transcription_delay=eou * 0.6,
                       on_user_turn_completed_delay=0.001, speech_id=sid),
            LLMMetrics(label="l", request_id=sid, timestamp=0.0, duration=ttft + 0.5, ttft=ttft,
                       cancelled=False, completion_tokens=rnd.randint(10, 60),
                       prompt_tokens=rnd.randint(300, 2000), prompt_cached_tokens=128,
                       total_tokens=0, tokens_per_second=rnd.uniform(40, 120), speech_id=sid,
                       metadata=llm),
            TTSMetrics(label="t", request_id=sid, timestamp=0.0, ttfb=ttfb, duration=ttfb + 0.4,
                       audio_duration=rnd.uniform(1, 5), cancelled=rnd.random() < 0.05,
                       characters_count=rnd.randint(20, 200), streamed=True, speech_id=sid,
                       metadata=tts),
        ):  # fmt: skip
            rec.record(m, turns)
        rec.finish_turn(sid, {"e2e_latency": eou + ttft + ttfb + rnd.uniform(0.05, 0.2)}, turns, None)
        if rnd.random() < 0.2:
            tool = rnd.choice(TOOLS)
            rec.add("voice_agent.tool.calls", 1, {sc.GEN_AI_TOOL_NAME: tool})
            if rnd.random() < 0.1:
                rec.add("voice_agent.tool.errors", 1, {sc.GEN_AI_TOOL_NAME: tool})
    if rnd.random() < 0.05:
        rec.add("voice_agent.errors", 1, {sc.COMPONENT: "llm", sc.ERROR_RECOVERABLE: "true",
                                          sc.ERROR_TYPE: "APITimeoutError"})  # fmt: skip
    reason = rnd.choice(CLOSE)
    rec.add("voice_agent.sessions.ended", 1, {sc.CLOSE_REASON: reason})
    rec.instruments.counter("voice_agent.sessions.active").add(-1)
    rec.hist("voice_agent.session.duration", rnd.uniform(20, 600), {sc.CLOSE_REASON: reason})
    rec.hist("voice_agent.session.turns", TURNS)


def job_process(sink: PrometheusSink) -> tuple[MeterProvider, Recorder]:
    provider = MeterProvider(metric_readers=[sink], views=views())
    return provider, Recorder(Instruments(provider.get_meter(METER_NAME)), load_prices())


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median and worst of ``runs`` calls, in ms; the last result. The simulation's garbage
    is collected first: a worker serving scrapes does not carry it."""
    gc.collect()
    out: Any = None
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples), out


def single_process(runs: int) -> tuple[float, float, int, int]:
    sink = PrometheusSink(port=0)
    provider, rec = job_process(sink)
    rnd = random.Random(1)
    for n in range(CALLS):
        call(rec, rnd, n)
    assert sink.endpoint is not None
    url = f"http://127.0.0.1:{sink.endpoint.port}/metrics"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    median, worst, body = timed(lambda: opener.open(url).read(), runs)
    provider.shutdown()
    return median, worst, _series(body), len(body)


def multiprocess(calls_per_process: int, runs: int, *,
                 shared: bool = True) -> tuple[float, float, int, int, int]:  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        rnd = random.Random(1)
        for p in range(CALLS // calls_per_process):
            # a job process: its own provider and files, ended before the scrape
            sink = PrometheusSink(multiprocess_dir=directory, process_id=f"{10_000 + p}-otel-livekit")
            assert sink.files is not None
            sink.files.shared = shared  # False: prometheus-client's one-file-set-per-process layout
            provider, rec = job_process(sink)
            for n in range(calls_per_process):
                call(rec, rnd, p * calls_per_process + n)
            provider.shutdown()

        def scrape() -> bytes:  # what LiveKit's worker runs per request
            registry = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)

        median, worst, body = timed(scrape, runs)
        files = len(list(Path(directory).iterdir()))
    return median, worst, _series(body), len(body), files


def _series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def main() -> None:
    runs = 20
    print(f"python {sys.version.split()[0]}, {CALLS} calls x {TURNS} turns, median/worst of {runs} scrapes")
    print("| endpoint | job processes | files | series | bytes | median ms | worst ms |")
    print("|---|---|---|---|---|---|---|")
    med, worst, series, size = single_process(runs)
    print(f"| standalone, single process | 1 | — | {series} | {size} | {med:.1f} | {worst:.1f} |")
    for per in (CALLS, 100, 1):
        med, worst, series, size, files = multiprocess(per, runs)
        print(f"| worker, multiprocess | {CALLS // per} (ended) | {files} | {series} | {size} | "
              f"{med:.1f} | {worst:.1f} |")  # fmt: skip
    med, worst, series, size, files = multiprocess(1, 3, shared=False)
    print(f"| baseline: prometheus-client's per-process files | {CALLS} (ended) | {files} | {series} | "
          f"{size} | {med:.1f} | {worst:.1f} |")  # fmt: skip
    for calls in (1, CALLS):
        med, worst = write_cycle(calls, runs)
        print(f"| write cycle in a job process that made {calls} call(s) (background thread) | 1 | — | — | "
              f"— | {med:.1f} | {worst:.1f} |")  # fmt: skip


def write_cycle(calls: int, runs: int) -> tuple[float, float]:
    """One collection + file write of a live job process, with one new call between cycles."""
    with tempfile.TemporaryDirectory() as directory:
        sink = PrometheusSink(multiprocess_dir=directory, interval=3600)
        provider, rec = job_process(sink)
        rnd = random.Random(2)
        for n in range(calls):
            call(rec, rnd, n)
        sink.collect_families()
        samples = []
        for n in range(runs):
            call(rec, rnd, calls + n)
            start = time.perf_counter()
            sink.collect_families()
            samples.append((time.perf_counter() - start) * 1000)
        provider.shutdown()
    return statistics.median(samples), max(samples)


if __name__ == "__main__":
    main()
