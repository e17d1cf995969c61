"""A wire-level OTLP/HTTP receiver for tests: decodes real protobuf requests with
``opentelemetry-proto``. Used where no real backend stores what we need (OTLP metrics,
logs) and as a second destination beside a real one."""

from __future__ import annotations

import gzip
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class OtlpReceiver:
    """Answers ``status`` to every POST; ``hang`` seconds of delay simulate a hung backend."""

    status: int = 200
    hang: float = 0.0
    requests: list[Received] = field(default_factory=list)
    tls: ssl.SSLContext | None = None
    """A server-side TLS context: the receiver then speaks HTTPS."""

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                msg: Any
                if self.path.endswith("/v1/metrics"):
                    msg = ExportMetricsServiceRequest()
                elif self.path.endswith("/v1/logs"):
                    msg = ExportLogsServiceRequest()
                else:
                    msg = ExportTraceServiceRequest()
                msg.ParseFromString(raw)
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, msg)
                )
                if receiver.hang:
                    time.sleep(receiver.hang)
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def __enter__(self) -> OtlpReceiver:
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        out = []
        for req in self.requests:
            if not isinstance(req.body, ExportTraceServiceRequest):
                continue
            for rs in req.body.resource_spans:
                res = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((res, s) for s in ss.spans)
        return out

    def metrics(self) -> Iterator[tuple[dict[str, Any], Any]]:
        for req in self.requests:
            if not isinstance(req.body, ExportMetricsServiceRequest):
                continue
            for rm in req.body.resource_metrics:
                res = attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        yield res, m

    def logs(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, log record) for every log record received."""
        out = []
        for req in self.requests:
            if not isinstance(req.body, ExportLogsServiceRequest):
                continue
            for rl in req.body.resource_logs:
                res = attrs(rl.resource.attributes)
                for sl in rl.scope_logs:
                    out.extend((res, r) for r in sl.log_records)
        return out


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        value = getattr(v, kind) if kind else None
        if kind == "array_value":  # a list of the elements' values
            value = [getattr(e, e.WhichOneof("value")) for e in value.values]
        out[kv.key] = value
    return out
