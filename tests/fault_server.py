"""A real loopback OTLP/HTTP server that misbehaves on purpose: it hangs, answers slowly,
answers an error status (with ``Retry-After``), or writes garbage instead of HTTP. In mode
``ok`` it decodes the real OTLP protobuf it receives. The mode can change while it runs
(the backend recovering); ``port`` lets a server come up where a "down" backend was."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SLOW_SECONDS = 2.0
STATUS_MODES = {"401": 401, "403": 403, "404": 404, "429": 429, "500": 500, "503": 503}


def slow_seconds(mode: str) -> float:
    return float(mode.split("-", 1)[1]) if "-" in mode else SLOW_SECONDS


@dataclass
class Hit:
    at: float
    path: str
    mode: str
    body: Any = None


@dataclass
class FaultServer:
    """``mode``: ok, hang, slow (2 s, past the job-end cut), slow-<seconds> (answers ok after
    that long, e.g. slow-0.5, slow-1), garbage, or an HTTP status (401 403 404 429 500 503)."""

    mode: str = "ok"
    port: int = 0
    retry_after: str | Callable[[], str] | None = None
    """Sent with 429/503: delay-seconds, or a callable giving e.g. an HTTP-date at answer time."""
    delay: float = 0.0
    """Seconds every answer waits in mode ok (to make concurrent senders overlap)."""
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        self._stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                mode = server.mode
                hit = Hit(time.monotonic(), self.path, mode)
                server.hits.append(hit)
                if mode == "hang":
                    server._stop.wait()
                    return
                if mode == "garbage":
                    self.wfile.write(b"\x00\x17garbage, not HTTP\r\n\r\n")
                    self.close_connection = True
                    return
                if wait := slow_seconds(mode) if mode.startswith("slow") else server.delay:
                    server._stop.wait(wait)
                status = STATUS_MODES.get(mode, 200)
                if status == 200:
                    msg: Any = (ExportMetricsServiceRequest() if self.path.endswith("/v1/metrics")
                                else ExportTraceServiceRequest())  # fmt: skip
                    msg.ParseFromString(raw)
                    hit.body = msg
                self.send_response(status)
                if server.retry_after is not None and status in (429, 503):
                    value = server.retry_after
                    self.send_header("Retry-After", value() if callable(value) else value)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def delivered(self) -> list[Any]:
        """The decoded requests this server accepted (answered 2xx)."""
        return [h.body for h in self.hits if h.body is not None]

    def span_ids(self) -> list[str]:
        """Every span id received, once per time it arrived (duplicates show up twice)."""
        return [s.span_id.hex() for _, s in self.spans()]

    def spans(self) -> Iterator[tuple[Any, Any]]:
        for body in self.delivered():
            if isinstance(body, ExportTraceServiceRequest):
                for rs in body.resource_spans:
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            yield rs.resource, s

    def metrics(self) -> Iterator[Any]:
        for body in self.delivered():
            if isinstance(body, ExportMetricsServiceRequest):
                for rm in body.resource_metrics:
                    for sm in rm.scope_metrics:
                        yield from sm.metrics
