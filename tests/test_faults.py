"""The fault suite: a real offline AgentSession against a real loopback HTTP server that is
down, hung, slow, or answers 401/403/404/429/500/503 or garbage. In every case the call
completes, nothing reaches the agent's code, the job-end deadline holds, the failure is
logged once (one line, no traceback) and counted in the self-metrics; what the backend did
not take is spooled (real OTLP protobuf on disk) and arrives once when it comes back."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer
from opentelemetry import trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servers import free_port

from otel_livekit import setup_tracing
from otel_livekit.export.delivery.direct import Sender, wire
from otel_livekit.export.delivery.health import ExportHealth
from otel_livekit.export.delivery.http_client import HttpClient
from otel_livekit.export.delivery.outbox import Outbox, Outcome
from otel_livekit.export.delivery.self_metrics import ATTR_OUTCOME, ATTR_SIGNAL
from otel_livekit.export.delivery.spool import CLAIM, SpoolDir
from otel_livekit.export.destinations.transport import Transport
from otel_livekit.offline import run_offline_session
from otel_livekit.telemetry import DEFAULT_FLUSH_TIMEOUT, Telemetry

SLACK = 0.6  # thread start-up and scheduling on a busy 2-core machine
SPOOLED = ["down", "hang", "429", "500", "503", "garbage"]
REJECTED = ["401", "403", "404"]


@pytest.fixture(autouse=True)
def only_job_end_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports happen at the job-end flush only (exact counts), with the SDK's default 10 s
    OTLP timeout: only our deadline and per-attempt bound keep things short."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")


@contextmanager
def backend(mode: str, **kw: Any) -> Iterator[FaultServer | None]:
    if mode == "down":
        yield None
        return
    with FaultServer(mode, **kw) as server:
        yield server


def one_call() -> None:
    run = asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, in_job=False))
    assert run.assistant_messages == 1


def spool_files(t: Telemetry, signal: str) -> list[Path]:
    assert t.spooler is not None
    (box,) = [b for b in t.spooler.outboxes if b.health.signal == signal]
    return [f.path for f in box.spool.pending()]


def spooled_span_ids(files: list[Path]) -> list[str]:
    ids = []
    for path in files:
        req = ExportTraceServiceRequest()
        req.ParseFromString(path.read_bytes())
        ids.extend(s.span_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans)
    return ids


def self_metrics(reader: InMemoryMetricReader) -> dict[tuple[str, ...], int]:
    """(instrument, signal[, outcome]) -> value, from a real collection."""
    out: dict[tuple[str, ...], int] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name.startswith("otel_livekit.export."):
                    for p in m.data.data_points:
                        a = dict(p.attributes or {})
                        key = (
                            m.name,
                            str(a[ATTR_SIGNAL]),
                            *([str(a[ATTR_OUTCOME])] if ATTR_OUTCOME in a else []),
                        )
                        out[key] = int(p.value)  # type: ignore[union-attr]
    return out


def wait_until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def failure_lines(caplog: pytest.LogCaptureFixture, signal: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"{signal} export to") and "failed" in r.getMessage()]  # fmt: skip


# slow: past the job-end cut; slow-1, slow-0.5: each export answered in time, the flush and
# shutdown together still within the one budget
@pytest.mark.parametrize("mode", ["down", "hang", "slow", "slow-1", "slow-0.5", *REJECTED, "429", "500",
                                  "503", "garbage"])  # fmt: skip
def test_a_call_survives_the_backend(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    with backend(mode, port=port, retry_after="1") as server:
        memory, reader = InMemorySpanExporter(), InMemoryMetricReader()
        t = setup_tracing("otlp", endpoint=f"http://127.0.0.1:{port}",
                          span_processors=[SimpleSpanProcessor(memory)], metric_readers=[reader])  # fmt: skip
        one_call()  # raises if anything reached the agent's code
        spans = len(memory.get_finished_spans())
        assert spans >= 10
        started = time.monotonic()
        t.force_flush()  # the job's shutdown callback
        job_end = time.monotonic() - started
        got = self_metrics(reader)
        traces = t.health[0]
        assert traces.signal == "traces"
        if mode in SPOOLED:
            files = spool_files(t, "traces")
            assert sorted(spooled_span_ids(files)) == sorted(s.context.span_id.to_bytes(8, "big").hex()
                                                            for s in memory.get_finished_spans())  # fmt: skip
            assert got[("otel_livekit.export.items", "traces", "spooled")] == spans
            assert got[("otel_livekit.export.items", "traces", "delivered")] == 0
        elif mode in REJECTED:
            assert spool_files(t, "traces") == []
            assert got[("otel_livekit.export.items", "traces", "dropped")] == spans
            assert got[("otel_livekit.export.items", "traces", "spooled")] == 0
        elif mode.startswith("slow-"):  # each export answered in time: delivered by the flush itself
            assert got[("otel_livekit.export.items", "traces", "delivered")] == spans
            assert got.get(("otel_livekit.export.failures", "traces"), 0) == 0
        started = time.monotonic()
        t.shutdown()
        job_end += time.monotonic() - started
        assert t.spooler is not None
        for box in t.spooler.outboxes:  # the attempt in flight ends on its own (≤ 5 s)
            box.join(10)
    assert job_end <= DEFAULT_FLUSH_TIMEOUT + SLACK, job_end
    assert not [r for r in caplog.records if r.exc_info], "a traceback reached the log"
    assert not [
        r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING
    ]
    if mode.startswith("slow"):  # cut at the deadline (or each export in time), delivered once
        assert server is not None
        assert sorted(server.span_ids()) == sorted(s.context.span_id.to_bytes(8, "big").hex()
                                                   for s in memory.get_finished_spans())  # fmt: skip
        assert traces.delivered + traces.replayed == spans
        assert spool_files(t, "traces") == []
        assert failure_lines(caplog, "traces") == []
        return
    assert traces.failures >= 1
    assert traces.attempts == traces.failures
    # a hung attempt too: counted at the deadline, right when the flush returned
    assert got[("otel_livekit.export.failures", "traces")] >= 1
    assert got[("otel_livekit.export.attempts", "traces")] == got[("otel_livekit.export.failures", "traces")]
    for signal in ("traces", "metrics"):
        (line,) = failure_lines(caplog, signal)
        reason = {"down": "connection refused", "hang": "timeout (no answer)",
                  "garbage": "connection error"}.get(mode, f"HTTP {mode}")  # fmt: skip
        assert f"failed: {reason}" in line, line
        assert ("re-sent when it answers" in line) is (mode in SPOOLED), line
    if mode in REJECTED:
        assert traces.not_delivered == spans


def test_spooled_spans_arrive_once_when_the_backend_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    """Same process: the sender thread re-sends the spool after the outage."""
    caplog.set_level(logging.INFO)
    port = free_port()
    memory = InMemorySpanExporter()
    t = setup_tracing(
        "otlp", endpoint=f"http://127.0.0.1:{port}", span_processors=[SimpleSpanProcessor(memory)]
    )
    one_call()
    t.force_flush()
    expected = sorted(s.context.span_id.to_bytes(8, "big").hex() for s in memory.get_finished_spans())
    assert sorted(spooled_span_ids(spool_files(t, "traces"))) == expected
    spooled_metrics = [
        ExportMetricsServiceRequest.FromString(p.read_bytes()) for p in spool_files(t, "metrics")
    ]
    with FaultServer("ok", port=port) as server:
        wait_until(lambda: not spool_files(t, "traces") and not spool_files(t, "metrics"))
        t.shutdown()
    ids = server.span_ids()
    assert sorted(ids) == expected  # every span, none twice
    assert max(Counter(ids).values()) == 1
    metric_requests = [b for b in server.delivered() if isinstance(b, ExportMetricsServiceRequest)]
    assert [metric_requests.count(m) for m in spooled_metrics] == [1]  # the job-end batch, once
    traces = t.health[0]
    assert (traces.spooled, traces.replayed, traces.delivered) == (len(expected), len(expected), 0)
    recovered = sorted(r.getMessage() for r in caplog.records if "recovered" in r.getMessage())
    assert recovered == [f"metrics export to otlp (http://127.0.0.1:{port}/v1/metrics) recovered",
                         f"traces export to otlp (http://127.0.0.1:{port}/v1/traces) recovered"]  # fmt: skip


def _http_date_in(seconds: float) -> Callable[[], str]:
    return lambda: formatdate(time.time() + seconds, usegmt=True)  # whole seconds: waits 3–4 s


def test_retry_after_is_honoured() -> None:
    port = free_port()
    with FaultServer("429", port=port, retry_after="3") as server:
        t = setup_tracing("otlp", endpoint=server.url)
        one_call()
        t.force_flush()
        server.mode = "ok"  # it is back at once, but asked us to wait 3 s
        assert t.spooler is not None
        wait_until(lambda: not spool_files(t, "traces"))
        t.shutdown()
    hits = [h for h in server.hits if h.path == "/v1/traces"]
    assert [h.mode for h in hits] == ["429", "ok"]
    assert hits[1].at - hits[0].at >= 3.0 - 0.05, hits[1].at - hits[0].at


def test_retry_after_as_an_http_date_is_honoured() -> None:
    """The other form RFC 9110 allows: a 503 with the date to come back at."""
    port = free_port()
    with FaultServer("503", port=port, retry_after=_http_date_in(4)) as server:
        t = setup_tracing("otlp", endpoint=server.url)
        one_call()
        t.force_flush()
        server.mode = "ok"  # it is back at once, but asked us to wait until a date 3–4 s away
        assert t.spooler is not None
        wait_until(lambda: not spool_files(t, "traces"))
        t.shutdown()
    hits = [h for h in server.hits if h.path == "/v1/traces"]
    assert [h.mode for h in hits] == ["503", "ok"]
    assert hits[1].at - hits[0].at >= 3.0 - 0.05, hits[1].at - hits[0].at


def test_the_spool_off_sender_honours_retry_after() -> None:
    with FaultServer("503", retry_after="2") as server:  # its own backoff would be 1 s
        transport = Transport("traces", f"{server.url}/v1/traces", timeout=4.0)
        sender = Sender(wire(transport, HttpClient(transport)))
        sent = []
        threading.Timer(0.3, lambda: setattr(server, "mode", "ok")).start()
        sent.append(sender.send(b""))
    assert sent == [True]
    assert [h.mode for h in server.hits] == ["503", "ok"]
    assert server.hits[1].at - server.hits[0].at >= 2.0 - 0.05


def test_the_cap_drops_the_oldest_and_counts_them() -> None:
    port = free_port()
    reader = InMemoryMetricReader()
    url = f"http://127.0.0.1:{port}"
    t = setup_tracing("otlp", endpoint=url, spool_max_bytes=6000, metric_readers=[reader])
    tracer = trace.get_tracer("cap-test")
    batches, per_batch = 30, 5
    for b in range(batches):
        for i in range(per_batch):
            with tracer.start_as_current_span(f"batch-{b:02d}-{i}"):
                pass
        t.force_flush()
    files = spool_files(t, "traces")
    assert sum(p.stat().st_size for p in files) <= 6000
    kept = spooled_span_ids(files)
    traces = t.health[0]
    assert 0 < len(kept) < batches * per_batch
    assert traces.spooled == batches * per_batch
    assert traces.dropped == batches * per_batch - len(kept)
    got = self_metrics(reader)
    assert got[("otel_livekit.export.items", "traces", "dropped")] == traces.dropped
    with FaultServer("ok", port=port) as server:
        wait_until(lambda: not spool_files(t, "traces"))
        t.shutdown()
    names = [s.name for _, s in server.spans()]
    assert sorted(server.span_ids()) == sorted(kept)
    newest = [f"batch-{b:02d}-{i}" for b in range(batches) for i in range(per_batch)][-len(kept) :]
    assert sorted(names) == newest  # the oldest went first


def test_spool_is_off_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LIVEKIT_SPOOL", "false")
    t = setup_tracing("otlp", endpoint=f"http://127.0.0.1:{free_port()}")
    assert t.spooler is not None and t.spooler.outboxes == []


BAD = [
    ("OTEL_LIVEKIT_SPOOL", "maybe"),
    ("OTEL_LIVEKIT_SPOOL_MAX_BYTES", "64M"),
    ("OTEL_LIVEKIT_SPOOL_MAX_BYTES", "0"),
]


@pytest.mark.parametrize(("var", "value"), BAD)
def test_bad_spool_settings_fail_at_setup(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    from otel_livekit.errors import ConfigurationError

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=var):
        setup_tracing("otlp", endpoint="http://127.0.0.1:4318")


def test_what_is_queued_at_the_deadline_is_spooled_within_it() -> None:
    """Three batches queued behind a hung backend: the first waits for an answer until just
    before the deadline, then it and the two behind it are on disk, all within the budget."""
    with FaultServer("hang") as server:
        t = setup_tracing("otlp", endpoint=server.url)
        tracer = trace.get_tracer("queue-test")
        for i in range(1200):  # the SDK exports at most 512 per batch
            with tracer.start_as_current_span(f"s{i}"):
                pass
        started = time.monotonic()
        t.force_flush()
        elapsed = time.monotonic() - started
        traces = t.health[0]
        assert traces.spooled == 1200
        assert len(set(spooled_span_ids(spool_files(t, "traces")))) == 1200
        t.shutdown()
    assert elapsed <= DEFAULT_FLUSH_TIMEOUT + SLACK, elapsed


@pytest.mark.parametrize("mode", ["hang", "slow"])
def test_a_backend_that_does_not_answer_in_time_is_said_at_job_end(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Read right when the job-end flush returns (a LiveKit job ends then): one WARNING per
    signal names the destination, what waits and where; nothing is lost."""
    caplog.set_level(logging.INFO)
    port = free_port()
    with backend(mode, port=port) as server:
        assert server is not None
        t = setup_tracing("otlp", endpoint=f"http://127.0.0.1:{port}")
        one_call()
        assert t.force_flush() is False  # the job's shutdown callback: then the process is gone
        # counted right now, not when the attempt times out (a job never lives to see that)
        assert t.export_failures["traces"] >= 1 and t.export_failures["metrics"] >= 1
        said = [r.getMessage() for r in caplog.records if "within the" in r.getMessage()]
        traces = [line for line in said if "/v1/traces" in line]
        assert len(traces) == 1, said
        spooled = t.health[0].spooled
        assert spooled >= 10
        assert traces[0].startswith(f"otel_livekit: {spooled} spans not delivered to otlp "
                                    f"(http://127.0.0.1:{port}/v1/traces) within the 2.0 s flush deadline "
                                    "(no answer in time); batches are kept in "), traces[0]  # fmt: skip
        assert traces[0].endswith("and re-sent when it answers")
        t.shutdown()
        assert t.spooler is not None
        for box in t.spooler.outboxes:
            box.join(10)


def test_a_batch_behind_an_unanswered_attempt_stays_this_processes_until_it_closes() -> None:
    """While an attempt waits for its answer, later batches queue behind it still claimed by
    this process (a killed job leaves only its own claims, given back to the next process)
    and go as soon as the backend answers; at shutdown they are handed to the spool."""
    mine = f"{CLAIM}{os.getpid()}"
    tracer = trace.get_tracer("held-test")

    def names(t: Telemetry) -> list[str]:
        return [p.name for p in spool_files(t, "traces")]

    def spans_received(server: FaultServer) -> list[list[str]]:
        return [[s.name for rs in h.body.resource_spans for ss in rs.scope_spans for s in ss.spans]
                for h in server.hits if h.path == "/v1/traces" and h.body is not None]  # fmt: skip

    # the backend answers after 3 s: the job-end flush (2 s) is cut while the first batch waits
    with FaultServer("ok", delay=3.0) as server:
        t = setup_tracing("otlp", endpoint=server.url)
        for name in ("first", "second"):
            with tracer.start_as_current_span(name):
                pass
            assert t.force_flush() is False
        (box,) = [b for b in t.spooler.outboxes if b.health.signal == "traces"]  # type: ignore[union-attr]
        assert len(names(t)) == 2 and all(n.endswith(mine) for n in names(t)), names(t)
        wait_until(lambda: not names(t))  # sent behind the first, without a spool scan
        assert spans_received(server) == [["first"], ["second"]]
        assert box.health.replayed == 2 and box.health.spooled == 2

        ids = []
        for name in ("third", "fourth"):
            with tracer.start_as_current_span(name) as span:
                ids.append(f"{span.get_span_context().span_id:016x}")
            t.force_flush()
        t.shutdown()  # the third is still in flight; the fourth goes back to the spool now
        left = names(t)
        assert len(left) == 2 and left[0].endswith(mine) and CLAIM not in left[1], left
        wait_until(lambda: len(names(t)) == 1)
    assert spans_received(server)[2:] == [["third"]]
    assert spooled_span_ids(spool_files(t, "traces")) == ids[1:]  # for the next process


def test_what_waits_behind_a_hung_attempt_is_bounded(tmp_path: Path) -> None:
    """A hung backend cannot grow the held queue: past ``max_held`` batches they go to the
    spool (released, for any process), as they do once the attempt has failed."""
    with FaultServer("hang") as server:
        transport = Transport("traces", f"{server.url}/v1/traces", timeout=5.0)
        health = ExportHealth("traces", "test")
        sending = wire(transport, HttpClient(transport, health.attempt))
        box = Outbox(SpoolDir(tmp_path / "spool", 1 << 20), sending, health, max_held=2)
        box.cut_at(time.monotonic() + 0.3)  # the job-end deadline: the first stops waiting, in flight
        outcomes = [box.submit(b"batch", 1) for _ in range(5)]
        names = sorted(p.name for p in (tmp_path / "spool").iterdir())
        box.close()
        held = sorted(p.name for p in (tmp_path / "spool").iterdir())
    assert outcomes == [Outcome.SPOOLED] * 5
    mine = f"{CLAIM}{os.getpid()}"
    assert [n.endswith(mine) for n in names] == [True, True, True, False, False], names  # in flight, 2 held
    assert [n.endswith(mine) for n in held] == [True, False, False, False, False], held  # closed: handed back
