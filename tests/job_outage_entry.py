"""A LiveKit job that makes one call during an outage, flushes (the batches go to the spool)
and then hangs until the test kills it with SIGKILL, its export still in flight."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from livekit.agents import JobContext, JobProcess

from otel_livekit import setup_tracing
from otel_livekit.offline import run_offline_session


def prewarm(proc: JobProcess) -> None:
    pass


async def entrypoint(ctx: JobContext) -> None:
    # the settings come with the job: the forkserver's environment is the one it started with
    os.environ.update(json.loads(ctx.job.metadata))
    t = setup_tracing()
    run = await run_offline_session(text_turns=("hello",), audio_turns=0, in_job=False)
    assert run.assistant_messages == 1
    await asyncio.to_thread(t.force_flush)
    # the spool's sender has claimed the batch and is waiting on the hung backend: the kill
    # lands mid-send (on a busy machine the claim can come a moment after the flush)
    claim = f".claim-{os.getpid()}"
    spool = Path(os.environ["OTEL_LIVEKIT_SPOOL_DIR"])
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(claim) for p in spool.glob("traces-*/*")):
        if time.monotonic() > deadline:
            break  # the test's assertion says what is left
        await asyncio.sleep(0.05)
    Path(os.environ["TEST_FLUSHED_MARKER"]).write_text(str(os.getpid()))
    await asyncio.sleep(3600)  # SIGKILLed here
