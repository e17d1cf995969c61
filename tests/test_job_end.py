"""The job-end flush in a real LiveKit job process. LiveKit runs each job in a
multiprocessing child (forkserver, its default on Linux) that ends with ``os._exit``:
``atexit`` never runs there, so the job's shutdown callback is the only thing that
delivers what is buffered."""

from __future__ import annotations

import asyncio
from typing import Any

import job_entry
from livekit_jobs import launch_job
from otlp_receiver import OtlpReceiver


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
