"""Spans, bytes and CPU per call: the lean tree against the full one, per destination.

Each arm is a fresh process that runs ``--calls`` offline calls (real ``AgentSession``s, two
text turns with a tool call and one spoken turn each) with ``setup_tracing("otlp")`` to a
loopback receiver in the parent; the receiver counts spans and request bytes (protobuf, as
sent). CPU is the child's whole-process CPU time (user + system) over the calls and the
job-end flush, so the export thread's encoding is included::

    python bench/bench_lean.py --calls 20 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def child(profile: str, calls: int, url: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    from otel_livekit import setup_tracing
    from otel_livekit.offline import run_offline_session

    t = setup_tracing("otlp", endpoint=url, lean="otlp" if profile == "lean" else "none",
                      langfuse_mapping=True, spool=False)  # fmt: skip

    async def run() -> None:
        for _ in range(calls):
            await run_offline_session(text_turns=("hello", "what's the weather?"), audio_turns=1)

    asyncio.run(run())  # warm-up: imports and first exports (its spans are counted too)
    started = time.process_time()
    asyncio.run(run())
    t.force_flush(10)
    print(json.dumps({"cpu": time.process_time() - started}))


class Receiver:
    def __init__(self) -> None:
        self.spans = 0
        self.bytes = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.endswith("/v1/traces"):
                    msg = ExportTraceServiceRequest.FromString(raw)
                    receiver.spans += sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
                    receiver.bytes += len(raw)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child")
    ap.add_argument("--url")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.calls, args.url)
    results: dict[str, list[dict[str, float]]] = {"full": [], "lean": []}
    for i in range(args.repeat):
        for profile in ("full", "lean") if i % 2 == 0 else ("lean", "full"):
            rx = Receiver()
            cmd = [sys.executable, __file__, "--child", profile, "--calls", str(args.calls), "--url", rx.url]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
            cpu = json.loads(out.stdout.strip().splitlines()[-1])["cpu"]
            rx.server.shutdown()
            calls = 2 * args.calls  # warm-up loop + measured loop both export
            results[profile].append({"spans": rx.spans / calls, "bytes": rx.bytes / calls,
                                     "cpu_ms": cpu * 1000 / args.calls})  # fmt: skip
    title = f"per call ({args.calls} calls × {args.repeat} runs, median)"
    print(f"| {title} | spans | bytes | process CPU (ms) |")
    print("|---|---|---|---|")
    for profile, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("spans", "bytes", "cpu_ms")}
        print(f"| {profile} | {med['spans']:.1f} | {med['bytes']:.0f} | {med['cpu_ms']:.1f} |")


if __name__ == "__main__":
    main()
