"""A busy process sends its spans 64 at a time, as soon as 64 have ended, not 512 after the
5 s batch delay (export/delivery/health.py ``SPAN_BATCH_SIZE``): queued spans are freed
together when their batch is sent, and a big batch freed at once makes CPython collect
more often — its collections pause the agent's loop. ``OTEL_BSP_*`` sizes still win."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace
from otlp_receiver import OtlpReceiver

from otel_livekit import setup_tracing
from otel_livekit.config import SetupArgs, resolve
from otel_livekit.export.delivery.health import SPAN_BATCH_SIZE


def _batches(rx: OtlpReceiver) -> list[int]:
    return [
        sum(len(ss.spans) for rs in r.body.resource_spans for ss in rs.scope_spans)
        for r in rx.requests
        if r.path == "/v1/traces"
    ]


def _end_spans(n: int) -> None:
    tracer = trace.get_tracer("livekit-agents")
    for i in range(n):
        tracer.start_span("llm_request", attributes={"i": i}).end()


def _sent(rx: OtlpReceiver, spans: int, within: float) -> list[int]:
    """The batches received once ``spans`` spans arrived, or after ``within`` seconds."""
    deadline = time.monotonic() + within
    while sum(_batches(rx)) < spans and time.monotonic() < deadline:
        time.sleep(0.02)
    return _batches(rx)


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "spool-off"])
def test_a_busy_process_sends_every_64_spans_without_waiting_the_batch_delay(spool: bool) -> None:
    assert SPAN_BATCH_SIZE == 64
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, service_name="batches", spool=spool)
        _end_spans(200)
        sent = _sent(rx, 192, within=3.0)  # the batch delay is 5 s: nothing waited for it
        assert sent[:3] == [64, 64, 64], sent
        assert t.force_flush()
        assert sorted(_batches(rx), reverse=True) == [64, 64, 64, 8]


def test_the_sdks_batch_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, service_name="batches", spool=False)
        _end_spans(250)
        assert _sent(rx, 200, within=3.0)[:2] == [100, 100]
        assert t.force_flush()
        assert sorted(_batches(rx), reverse=True) == [100, 100, 50]
    base = {"OTEL_LIVEKIT_BACKEND": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert resolve(SetupArgs(), base).span_batch_size == SPAN_BATCH_SIZE
    assert resolve(SetupArgs(), {**base, "OTEL_BSP_MAX_QUEUE_SIZE": "32"}).span_batch_size is None
