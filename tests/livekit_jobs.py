"""Launching a real LiveKit job process the way LiveKit's worker does (ProcJobExecutor,
forkserver — its default on Linux, where a job process ends with ``os._exit``), with no
LiveKit server. Settings travel in the job's metadata: a forkserver keeps the environment
it started with, so the parent's environment at launch time never reaches the job."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents.ipc.job_proc_executor import ProcJobExecutor
from livekit.agents.job import JobAcceptArguments, RunningJobInfo
from livekit.protocol import agent, models


async def launch_job(
    prewarm: Callable[[Any], None],
    entrypoint: Callable[[Any], Awaitable[None]],
    settings: dict[str, str],
    job_id: str = "job-test",
) -> ProcJobExecutor:
    """Start a job process and hand it one (fake) job whose metadata is ``settings``. The
    test's own cache directory goes with them (a forkserver keeps the first test's), so a job
    never continues the instance-slot counters of another test's jobs."""
    if "XDG_CACHE_HOME" in os.environ:
        settings = {"XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"], **settings}
    executor = ProcJobExecutor(
        initialize_process_fnc=prewarm, job_entrypoint_fnc=entrypoint,
        session_end_fnc=None, simulation_end_fnc=None, inference_executor=None,
        initialize_timeout=60, close_timeout=20, session_end_timeout=10, memory_warn_mb=0,
        memory_limit_mb=0, ping_interval=2.5, ping_timeout=60, high_ping_threshold=2,
        http_proxy=None, mp_ctx=multiprocessing.get_context("forkserver"),
        loop=asyncio.get_running_loop(),
    )  # fmt: skip
    await executor.start()
    await executor.initialize()
    job = agent.Job(id=job_id, room=models.Room(sid=f"RM_{job_id}", name=f"room-{job_id}"),
                    type=agent.JobType.JT_ROOM, metadata=json.dumps(settings))  # fmt: skip
    await executor.launch_job(RunningJobInfo(
        accept_arguments=JobAcceptArguments(name="", identity="agent-test", metadata=""),
        job=job, url="ws://127.0.0.1:9", token="", worker_id="w-test", fake_job=True,
    ))  # fmt: skip
    return executor
