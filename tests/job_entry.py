"""Functions a real LiveKit job process runs (module level, so a spawned process can import
them): setup_tracing() in the job, one offline call, then the job shuts down."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from livekit.agents import JobContext, JobProcess

from otel_livekit import setup_tracing
from otel_livekit.offline import run_offline_session


def prewarm(proc: JobProcess) -> None:
    pass


async def entrypoint(ctx: JobContext) -> None:
    # the settings travel in the job's metadata: a forkserver keeps the environment it
    # started with, so the parent's environment at launch time never reaches this process
    os.environ.update(json.loads(ctx.job.metadata))
    if log_file := os.environ.get("TEST_LOG_FILE"):  # every record of the job, to check
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        logging.getLogger().addHandler(handler)
    setup_tracing()
    if os.environ.get("TEST_DISABLE_JOB_HOOK") == "1":  # the break the test must catch
        ctx._shutdown_callbacks.clear()  # type: ignore[attr-defined]
    run = await run_offline_session(text_turns=("hello",), audio_turns=0, in_job=False)
    assert run.assistant_messages == 1
    if answered := os.environ.get("TEST_ANSWERED_FILE"):  # when the call ended (wall clock)
        Path(answered).write_text(repr(time.time()))
    ctx.shutdown("call over")
