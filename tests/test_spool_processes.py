"""The spool across processes: a real LiveKit job process SIGKILLed mid-outage and a new
process replaying what it left; two processes sharing the spool never send a span twice."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import job_outage_entry
import pytest
from fault_server import FaultServer
from livekit_jobs import launch_job
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from servers import free_port

from otel_livekit import setup_tracing
from otel_livekit.export.delivery.spool import CLAIM
from otel_livekit.telemetry import Telemetry

HERE = Path(__file__).resolve().parent


def traces_dir(t: Telemetry) -> Path:
    assert t.spooler is not None
    (box,) = [b for b in t.spooler.outboxes if b.health.signal == "traces"]
    return box.spool.directory


def span_ids_in(files: list[Path]) -> list[str]:
    ids = []
    for path in files:
        req = ExportTraceServiceRequest.FromString(path.read_bytes())
        ids.extend(s.span_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans)
    return ids


def wait_until(cond: object, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


async def kill_job_after_flush(marker: Path, env: dict[str, str]) -> tuple[int, int | None]:
    executor = await launch_job(job_outage_entry.prewarm, job_outage_entry.entrypoint, env, "job-killed")
    end = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < end, "the job never flushed"
        await asyncio.sleep(0.05)
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)  # mid-outage: its export is still waiting for an answer
    await asyncio.wait_for(executor.join(), 30)
    return pid, executor.exitcode


@pytest.fixture
def own_forkserver() -> Iterator[None]:
    """A forkserver keeps the environment it started with, and every later job process
    inherits it: stop the one this test started, so the next test gets its own."""
    yield
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


@pytest.mark.usefixtures("own_forkserver")
def test_a_job_killed_mid_outage_is_replayed_by_the_next_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "flushed"
    with FaultServer("hang") as server:
        env = {
            "OTEL_LIVEKIT_BACKEND": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": server.url,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "10",  # one attempt hangs 5 s: still in flight when killed
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_LIVEKIT_SPOOL_DIR": os.environ["OTEL_LIVEKIT_SPOOL_DIR"],
            "TEST_FLUSHED_MARKER": str(marker),
        }
        for key, value in env.items():  # the same settings for the process that replays
            monkeypatch.setenv(key, value)
        pid, exitcode = asyncio.run(kill_job_after_flush(marker, env))
        assert exitcode == -signal.SIGKILL
        spool = Path(os.environ["OTEL_LIVEKIT_SPOOL_DIR"])
        (traces,) = spool.glob("traces-*")
        left = sorted(traces.iterdir())
        assert left and all(p.name.endswith(f"{CLAIM}{pid}") for p in left), left  # claimed by the dead
        expected = span_ids_in(left)
        server.mode = "ok"  # the backend is back; a new process starts with the same spool
        t = setup_tracing()
        assert traces_dir(t) == traces
        wait_until(lambda: not any(traces.iterdir()))
        t.shutdown()
    received = server.span_ids()
    assert sorted(received) == sorted(expected)
    assert max(Counter(received).values()) == 1
    assert {"agent_session", "agent_turn", "llm_request"} <= {s.name for _, s in server.spans()}
    assert t.health[0].replayed == len(expected)


def test_two_processes_sharing_the_spool_never_send_a_span_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t = setup_tracing("otlp", endpoint=url)  # the backend is down: every batch is spooled
    tracer = trace.get_tracer("share-test")
    batches, per_batch = 40, 5
    for b in range(batches):
        for i in range(per_batch):
            with tracer.start_as_current_span(f"b{b}-{i}"):
                pass
        t.force_flush()
    t.shutdown()
    spooled = span_ids_in(sorted(traces_dir(t).iterdir()))
    assert len(spooled) == batches * per_batch
    with FaultServer("ok", port=port, delay=0.05) as server:  # slow enough for both to overlap
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, str(HERE / "spool_replayer.py"), url, str(tmp_path / f"ready{n}"), str(go)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(2)
        ]
        wait_until(lambda: all((tmp_path / f"ready{n}").exists() for n in range(2)))
        go.write_text("")
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
    replayed = [int(out.split()[-1]) for out in outputs]
    received = server.span_ids()
    assert max(Counter(received).values()) == 1
    assert sorted(received) == sorted(spooled)
    assert sum(replayed) == len(spooled)
    assert min(replayed) > 0, replayed  # both really took part
