"""The job-end flush in a real LiveKit job process. LiveKit runs each job in a
multiprocessing child (forkserver, its default on Linux) that ends with ``os._exit``:
``atexit`` never runs there, so the job's shutdown callback is the only thing that
delivers what is buffered."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from typing import Any

import job_entry
from livekit.agents.ipc.job_proc_executor import ProcJobExecutor
from livekit.agents.job import JobAcceptArguments, RunningJobInfo
from livekit.protocol import agent, models
from otlp_receiver import OtlpReceiver


async def run_one_job(settings: dict[str, str]) -> int | None:
    executor = ProcJobExecutor(
        initialize_process_fnc=job_entry.prewarm, job_entrypoint_fnc=job_entry.entrypoint,
        session_end_fnc=None, simulation_end_fnc=None, inference_executor=None,
        initialize_timeout=60, close_timeout=20, session_end_timeout=10, memory_warn_mb=0,
        memory_limit_mb=0, ping_interval=2.5, ping_timeout=60, high_ping_threshold=2,
        http_proxy=None, mp_ctx=multiprocessing.get_context("forkserver"),
        loop=asyncio.get_running_loop(),
    )  # fmt: skip
    await executor.start()
    await executor.initialize()
    job = agent.Job(id="job-end-test", room=models.Room(sid="RM_test", name="room-test"),
                    type=agent.JobType.JT_ROOM, metadata=json.dumps(settings))  # fmt: skip
    await executor.launch_job(RunningJobInfo(
        accept_arguments=JobAcceptArguments(name="", identity="agent-test", metadata=""),
        job=job, url="ws://127.0.0.1:9", token="", worker_id="w-test", fake_job=True,
    ))  # fmt: skip
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
