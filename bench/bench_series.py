"""Series churn on the Collector path: distinct metric stream identities after N calls.

Each call is a real LiveKit job process (ProcJobExecutor, forkserver, one offline call, the
job-end flush) exporting OTLP metrics to a loopback receiver that decodes them. A stream's
identity is what the Collector and Prometheus key a series on: the resource attributes
(``service.instance.id`` → ``instance``), the metric name and the point's attributes; the
Prometheus series count adds each histogram's buckets, ``_sum`` and ``_count``. Run with
instance slots (the default) and with ``OTEL_LIVEKIT_INSTANCE_SLOTS=false`` (the SDK's random
id per process)::

    python bench/bench_series.py --calls 1 10 100 --width 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from livekit.agents import JobContext, JobProcess
from livekit.agents.ipc.job_proc_executor import ProcJobExecutor
from livekit.agents.job import JobAcceptArguments, RunningJobInfo
from livekit.protocol import agent, models
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest


def prewarm(proc: JobProcess) -> None:
    import otel_livekit  # noqa: F401  (imported at warm-up, as LiveKit advises)


def _quiet() -> None:
    import logging

    logging.disable(logging.WARNING)


async def entrypoint(ctx: JobContext) -> None:
    from otel_livekit import setup_tracing
    from otel_livekit.offline import run_offline_session

    _quiet()
    os.environ.update(json.loads(ctx.job.metadata))  # a forkserver keeps its first environment
    setup_tracing()
    await run_offline_session(text_turns=("hello", "and the weather?"), audio_turns=1, in_job=False)
    ctx.shutdown("call over")


class Receiver:
    """Keeps every distinct (resource, metric, point attributes) identity it is sent."""

    def __init__(self) -> None:
        self.identities: set[tuple[Any, ...]] = set()
        self.series: set[tuple[Any, ...]] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.endswith("/v1/metrics"):
                    msg = ExportMetricsServiceRequest()
                    msg.ParseFromString(raw)
                    receiver.add(msg)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, msg: ExportMetricsServiceRequest) -> None:
        for rm in msg.resource_metrics:
            res = tuple(sorted((a.key, str(a.value)) for a in rm.resource.attributes))
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    for p in getattr(m, kind).data_points:
                        identity = (res, m.name, tuple(sorted((a.key, str(a.value)) for a in p.attributes)))
                        self.identities.add(identity)
                        if kind == "histogram":  # buckets + _sum + _count
                            for i in range(len(p.explicit_bounds) + 3):
                                self.series.add((*identity, i))
                        else:
                            self.series.add(identity)


async def run(calls: int, width: int, settings: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    done = 0
    while done < calls:
        jobs = []
        for i in range(min(width, calls - done)):
            executor = ProcJobExecutor(
                initialize_process_fnc=prewarm, job_entrypoint_fnc=entrypoint,
                session_end_fnc=None, simulation_end_fnc=None, inference_executor=None,
                initialize_timeout=60, close_timeout=20, session_end_timeout=10, memory_warn_mb=0,
                memory_limit_mb=0, ping_interval=2.5, ping_timeout=60, high_ping_threshold=2,
                http_proxy=None, mp_ctx=multiprocessing.get_context("forkserver"), loop=loop,
            )  # fmt: skip
            await executor.start()
            await executor.initialize()
            job_id = f"job-{done + i}"
            job = agent.Job(id=job_id, room=models.Room(sid=f"RM_{job_id}", name=f"room-{job_id}"),
                            type=agent.JobType.JT_ROOM, metadata=json.dumps(settings))  # fmt: skip
            await executor.launch_job(RunningJobInfo(
                accept_arguments=JobAcceptArguments(name="", identity="agent", metadata=""),
                job=job, url="ws://127.0.0.1:9", token="", worker_id="w-bench", fake_job=True,
            ))  # fmt: skip
            jobs.append(executor)
        await asyncio.gather(*(j.join() for j in jobs))
        done += len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--width", type=int, default=4, help="calls running at once")
    args = parser.parse_args()
    print(f"| calls ({args.width} at once) | instance ids | stream identities | Prometheus series |")
    print("|---|---|---|---|")
    for slots in (True, False):
        for calls in args.calls:
            receiver = Receiver()
            with tempfile.TemporaryDirectory() as cache:
                settings = {
                    "OTEL_LIVEKIT_BACKEND": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                    "OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_LIVEKIT_SPOOL": "false",
                    "OTEL_SERVICE_NAME": "bench-agent", "XDG_CACHE_HOME": cache,
                    "OTEL_LIVEKIT_INSTANCE_SLOTS": "true" if slots else "false",
                }  # fmt: skip
                asyncio.run(run(calls, args.width, settings))
            receiver.server.shutdown()
            instances = {dict(res).get("service.instance.id") for res, _, _ in receiver.identities}
            label = "slots" if slots else "per process"
            print(f"| {calls} ({label}) | {len(instances)} | {len(receiver.identities)} | "
                  f"{len(receiver.series)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
