"""One deadline at job end: with a backend that is down or hung, flush + shutdown together
take at most the flush budget (2 s by default), say once what was not delivered and why,
never log a traceback, and count failures while the exporter is still retrying.

These tests run with the SDK's default exporter timeout (10 s, no shortened
``OTEL_EXPORTER_OTLP_TIMEOUT``), so only our deadline can keep them short."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from otlp_receiver import OtlpReceiver
from servers import free_port

from otel_livekit import setup_tracing
from otel_livekit.telemetry import DEFAULT_FLUSH_TIMEOUT

SLACK = 0.6  # thread start-up and scheduling on a busy 2-core machine


@pytest.fixture(autouse=True)
def no_spool(monkeypatch: pytest.MonkeyPatch) -> None:
    """These pin the path without the outage spool (OTEL_LIVEKIT_SPOOL=false): the SDK's
    exporters, cut at the deadline. tests/test_faults.py covers the spool."""
    monkeypatch.setenv("OTEL_LIVEKIT_SPOOL", "false")


@contextmanager
def hung_server() -> Iterator[str]:
    """A real loopback server that accepts every connection and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        sock.close()


@contextmanager
def closed_port() -> Iterator[str]:
    yield f"http://127.0.0.1:{free_port()}"


def emit_call_telemetry() -> None:
    for i in range(3):
        with trace.get_tracer("test").start_as_current_span(f"turn-{i}"):
            pass
    metrics.get_meter("test").create_counter("probe").add(1)


@pytest.mark.parametrize("backend", [hung_server, closed_port], ids=["hung", "down"])
def test_flush_and_shutdown_share_one_short_deadline(
    backend: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")  # the SDK's default: 10 s per export
    caplog.set_level(logging.DEBUG)
    with backend() as url:  # type: ignore[operator]
        # a second reader (as a Prometheus one would be): the SDK then raises its own
        # flush timeout for it once the first one's export comes back late
        t = setup_tracing("otlp", endpoint=url, metric_readers=[InMemoryMetricReader()])
        emit_call_telemetry()
        started = time.monotonic()
        assert t.force_flush() is False
        t.shutdown()
        elapsed = time.monotonic() - started
        # the cut-off exports end later on their own (the SDK's 10 s timeout): quietly too
        for worker in threading.enumerate():
            if worker.name.startswith("otel_livekit-"):
                worker.join(15)
    assert DEFAULT_FLUSH_TIMEOUT == 2.0
    assert elapsed <= DEFAULT_FLUSH_TIMEOUT + SLACK, elapsed
    assert not [r for r in caplog.records if r.exc_info], "a traceback reached the log"
    cut = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(cut) == 1, cut
    why = "no answer yet" if backend is hung_server else "connection refused"
    assert f"traces: about 3 spans not delivered to otlp ({url}/v1/traces) ({why})" in cut[0]
    assert t.not_delivered["traces"] == 3
    if backend is closed_port:  # counted while the exporter was still retrying
        assert t.export_failures["traces"] >= 2


def test_shutdown_alone_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")
    with hung_server() as url:
        t = setup_tracing("otlp", endpoint=url, flush_timeout=1.0)
        emit_call_telemetry()
        started = time.monotonic()
        t.shutdown()
        assert time.monotonic() - started <= 1.0 + SLACK


def test_healthy_backend_gets_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url)
        emit_call_telemetry()
        assert t.force_flush() is True
        emit_call_telemetry()  # after the flush: shutdown delivers it
        t.shutdown()
        names = sorted(s.name for _, s in rx.spans())
        assert names == ["turn-0", "turn-0", "turn-1", "turn-1", "turn-2", "turn-2"]
        (probe,) = [m for _, m in rx.metrics() if m.name == "probe"][-1:]
        assert [p.as_int for p in probe.sum.data_points] == [2]
    assert t.not_delivered == {"traces": 0, "metrics": 0}
    assert t.export_failures == {"traces": 0, "metrics": 0}


@pytest.mark.parametrize("spool", ["true", "false"])
@pytest.mark.parametrize("delay", [0.5, 1.0, 1.5])
def test_a_slow_backend_that_answers_keeps_the_one_budget(
    monkeypatch: pytest.MonkeyPatch, delay: float, spool: str
) -> None:
    """Each export fits the 2 s budget, their sum does not: flush + shutdown still take
    the one budget together, and what is cut is spooled (spool on) or counted (off)."""
    from fault_server import FaultServer

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")
    monkeypatch.setenv("OTEL_LIVEKIT_SPOOL", spool)
    with FaultServer(delay=delay) as server:
        t = setup_tracing("otlp", endpoint=server.url)
        emit_call_telemetry()
        started = time.monotonic()
        t.force_flush()
        t.shutdown()
        elapsed = time.monotonic() - started
    assert elapsed <= DEFAULT_FLUSH_TIMEOUT + SLACK, elapsed
