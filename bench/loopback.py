"""Loopback backends and process figures shared by the benches."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Backend:
    """A loopback OTLP/HTTP receiver that can be ok, slow (2 s) or hung; it counts span ids."""

    def __init__(self, mode: str, port: int = 0) -> None:
        self.mode = mode
        self.span_ids: list[bytes] = []
        backend = self
        stop = self._stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if backend.mode == "hung":
                    stop.wait()
                    return
                if backend.mode == "slow":
                    stop.wait(2.0)
                if self.path.endswith("/v1/traces"):
                    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                        ExportTraceServiceRequest,
                    )

                    req = ExportTraceServiceRequest.FromString(raw)
                    backend.span_ids.extend(
                        s.span_id for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
                    )
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # type: ignore[method-assign]  # clients hanging up
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def backend(mode: str) -> Iterator[str]:
    if mode in ("off", "refusing"):
        yield f"http://127.0.0.1:{free_port()}"
        return
    b = Backend({"healthy": "ok"}.get(mode, mode))
    try:
        yield b.url
    finally:
        b.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class GcPauses:
    """Every garbage collection while in the ``with`` block: (generation, start, end), on
    ``time.perf_counter``'s clock (each one a pause of whatever thread triggered it)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        self._began = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((info["generation"], self._began, time.perf_counter()))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def during(self, woke_at: float, late_ms: float) -> list[tuple[int, float]]:
        """(generation, pause ms) of each collection that overlapped a 1 ms tick which woke
        at ``woke_at`` ``late_ms`` late."""
        start = woke_at - (late_ms + 1) / 1000
        return [(g, (e - s) * 1000) for g, s, e in self.pauses if s < woke_at and e > start]

    def ms(self, generation: int | None = None) -> list[float]:
        """Each pause's length in ms, of one generation or all."""
        return [(e - s) * 1000 for g, s, e in self.pauses if generation is None or g == generation]


def backend_process() -> tuple[subprocess.Popen[str], str]:
    """A healthy backend in a process of its own (its decoding must not share the measured
    process's GIL): the process and its URL."""
    here = str(Path(__file__).resolve().parent)
    server = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; sys.path.insert(0, {here!r}); from loopback import "
         "Backend; print(Backend('ok').url, flush=True); time.sleep(3600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    return server, server.stdout.readline().strip()
