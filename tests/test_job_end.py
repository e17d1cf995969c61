"""The job-end flush in a real LiveKit job process. LiveKit runs each job in a
multiprocessing child (forkserver, its default on Linux) that ends with ``os._exit``:
``atexit`` never runs there, so the job's shutdown callback is the only thing that
delivers what is buffered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import job_entry
import pytest
from fault_server import FaultServer
from livekit_jobs import launch_job
from otlp_receiver import OtlpReceiver

from otel_livekit.telemetry import DEFAULT_FLUSH_TIMEOUT

TEARDOWN = 1.0  # LiveKit's own end of a job process after the shutdown callbacks, loaded machine


async def run_one_job(settings: dict[str, str]) -> int | None:
    executor = await launch_job(job_entry.prewarm, job_entry.entrypoint, settings, "job-end-test")
    await asyncio.wait_for(executor.join(), 60)
    return executor.exitcode


def delivered(*, hook: bool) -> tuple[set[str], dict[str, Any]]:
    with OtlpReceiver() as rx:
        settings = {
            "OTEL_LIVEKIT_BACKEND": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only a flush exports
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_LIVEKIT_SPOOL": "false",  # nothing replayed from an earlier job's spool
            "TEST_DISABLE_JOB_HOOK": "0" if hook else "1",
        }
        assert asyncio.run(run_one_job(settings)) == 0
        return {s.name for _, s in rx.spans()}, {m.name: m for _, m in rx.metrics()}


def test_job_end_flush_delivers_in_a_real_job_process() -> None:
    spans, metrics = delivered(hook=True)
    assert {"agent_session", "agent_turn", "llm_request"} <= spans
    started = metrics["voice_agent.sessions.started"].sum.data_points
    assert [p.as_int for p in started] == [1]
    ttft = metrics["gen_ai.client.operation.time_to_first_chunk"].histogram.data_points
    assert sum(p.count for p in ttft) == 1


def test_without_the_job_hook_nothing_arrives() -> None:
    """The control: the same job with our shutdown callback removed delivers nothing, so
    the test above proves the hook (not atexit) delivers."""
    spans, metrics = delivered(hook=False)
    assert metrics == {}, sorted(metrics)
    assert spans == set()


def _timed_job(settings: dict[str, str], answered: Path) -> float:
    """Seconds from the job's call ending (its ``ctx.shutdown``) to the job process gone."""
    assert asyncio.run(run_one_job(settings)) == 0
    return time.time() - float(answered.read_text())


@pytest.mark.parametrize("spool", ["true", "false"], ids=["spool", "no-spool"])
@pytest.mark.parametrize("mode", ["hang", "slow"])
def test_a_backend_that_keeps_the_job_waiting_is_cut_at_the_budget_and_named(
    tmp_path: Path, mode: str, spool: str
) -> None:
    """The job-end flush in a real job process, whose end LiveKit waits for: a hung backend,
    or one answering each export after a second, never keeps the process past the one 2 s
    budget (plus LiveKit's own teardown), and the job's log names the destination and what
    was left before the process is gone."""
    log, answered = tmp_path / "job.log", tmp_path / "answered"
    with FaultServer("hang" if mode == "hang" else "ok", delay=1.0 if mode == "slow" else 0.0) as server:
        settings = {
            "OTEL_LIVEKIT_BACKEND": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": server.url,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "10",  # the SDK's default: only the budget cuts
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # everything waits for the job-end flush
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_LIVEKIT_SPOOL": spool,
            "TEST_LOG_FILE": str(log),
            "TEST_ANSWERED_FILE": str(answered),
        }
        ended_after = _timed_job(settings, answered)
        hits = list(server.hits)
    assert {h.path for h in hits} == {"/v1/traces", "/v1/metrics"}  # both were tried
    assert ended_after <= DEFAULT_FLUSH_TIMEOUT + TEARDOWN, ended_after
    lines = log.read_text().splitlines()
    assert not any("Traceback" in line for line in lines), lines
    said = [line for line in lines if line.startswith("WARNING otel_livekit") and "not delivered" in line]
    if mode == "slow":  # each export answered within the budget: delivered, nothing to say
        assert said == [], said
        assert {h.path for h in hits if h.body is not None} == {"/v1/traces", "/v1/metrics"}
        return
    traces = [line for line in said if f"otlp ({server.url}/v1/traces)" in line]
    assert len(traces) == 1, lines
    if spool == "true":
        assert " spans not delivered to otlp " in traces[0]
        assert "within the 2.0 s flush deadline (no answer in time); batches are kept in " in traces[0]
    else:
        assert "telemetry flush cut short at its 2.0 s deadline" in traces[0], traces
