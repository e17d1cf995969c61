"""Job processes for the Prometheus tests, started the way LiveKit's job executor starts
them on Linux (``multiprocessing`` forkserver: they end with ``os._exit``, so no ``atexit``
hook runs, only the job's shutdown flush), with ``PROMETHEUS_MULTIPROC_DIR`` set as the
worker sets it: each calls ``setup_tracing()`` and runs real offline sessions.

What a process really produced is written to a JSON file from LiveKit's own accounting
(``session.usage``, the ``metrics_collected`` events, the conversation items), never from
the code under test, so the test can compare Prometheus's sums with it.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobSpec:
    sessions: int
    prompt_tokens: int
    completion_tokens: int
    ttft: float


def job_main(spec: JobSpec, multiproc_dir: str, out: str, ready: Event | None = None,
             release: Event | None = None) -> None:  # fmt: skip
    """One job process: sessions, the job's shutdown flush, report; with ``release``, stay
    alive until told."""
    # the forkserver is shared by the whole test run: the variable is set here, not in it
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    os.environ.setdefault("LIVEKIT_TELEMETRY_ALLOW_PII", "1")
    from livekit import rtc
    from livekit.agents.metrics.base import LLMMetrics

    from otel_livekit import setup_tracing
    from otel_livekit.offline import OfflineLLM, run_offline_session

    telemetry = setup_tracing("none")
    events: list[Any] = []

    def before_start(session: Any) -> None:
        rtc.EventEmitter.on(session, "metrics_collected", lambda ev: events.append(ev.metrics))  # type: ignore[arg-type]

    turns = input_tokens = output_tokens = 0
    for i in range(spec.sessions):
        llm = OfflineLLM(ttft=spec.ttft, prompt_tokens=spec.prompt_tokens,
                         completion_tokens=spec.completion_tokens)  # fmt: skip
        run = asyncio.run(run_offline_session(
            text_turns=("hello", "bye"), audio_turns=0, llm_=llm, before_start=before_start,
            job_id=f"job-{os.getpid()}-{i}",
        ))  # fmt: skip
        turns += run.assistant_messages
        for usage in run.session.usage.model_usage:
            if usage.type == "llm_usage":
                input_tokens += usage.input_tokens
                output_tokens += usage.output_tokens
    ttfts = [m.ttft for m in events if isinstance(m, LLMMetrics) and not m.cancelled and m.ttft >= 0]
    telemetry.force_flush()  # what the job's shutdown callback runs
    report = {"pid": os.getpid(), "spec": asdict(spec), "sessions": spec.sessions, "turns": turns,
              "input_tokens": input_tokens, "output_tokens": output_tokens, "ttfts": ttfts}  # fmt: skip
    Path(out).write_text(json.dumps(report))
    if ready is not None:
        ready.set()
    if release is not None:
        release.wait(120)


def reference_main(out: str, ready: Event, release: Event) -> None:
    """A multiprocess job process with the SDK's own Prometheus reader beside our sink: the
    rich session of test_session_metrics plus a batch-STT one; writes the SDK's exposition."""
    os.environ.setdefault("LIVEKIT_TELEMETRY_ALLOW_PII", "1")
    import prom_reference
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    telemetry = prom_reference.run_reference_sessions(registry)
    telemetry.force_flush()
    Path(out).write_bytes(generate_latest(registry))
    ready.set()
    release.wait(120)


def shared_writer(directory: str, n: int, rounds: int, start: Event) -> None:
    """One job process writing the shared files as fast as it can: a new series and a
    growing counter per round."""
    from otel_livekit.export.local.prometheus_families import Family
    from otel_livekit.export.local.prometheus_files import MultiprocessFiles

    files = MultiprocessFiles(directory, f"{n}-otel-livekit")
    start.wait(60)
    for i in range(1, rounds + 1):
        files.write([Family("voice_agent_tool_calls", "counter", "", "d", ("gen_ai_tool_name",),
                            ((("shared",), float(i)), ((f"t{i}",), 1.0)))])  # fmt: skip
    files.close()


def held_call_main(multiproc_dir: str, ready: Event) -> None:
    """A job process in the middle of a call: the session started and answered, its
    metrics written, then the process hangs before closing it (to be killed)."""
    import time

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    from otel_livekit import setup_tracing
    from otel_livekit.offline import run_offline_session

    telemetry = setup_tracing("none")

    def hang(session: Any) -> None:
        telemetry.force_flush()
        ready.set()
        time.sleep(600)

    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, before_close=hang))
