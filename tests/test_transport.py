"""The OTLP transport comes from the settings, resolved once (export/destinations/transport.py): endpoint,
headers, timeout, compression and TLS per the ``OTEL_EXPORTER_OTLP_*`` variables, the
per-signal one first — the same values on the wire with the spool on and off."""

from __future__ import annotations

import pytest
from opentelemetry import metrics, trace
from otlp_receiver import OtlpReceiver

from otel_livekit import setup_tracing
from otel_livekit.config import SetupArgs, resolve


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "spool-off"])
def test_per_signal_variables_win_and_reach_the_wire(monkeypatch: pytest.MonkeyPatch, spool: bool) -> None:
    with OtlpReceiver() as traces_rx, OtlpReceiver() as base_rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base_rx.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{traces_rx.url}/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-everyone=all")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=tracing%20team")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "deflate")
        t = setup_tracing("otlp", spool=spool)
        with trace.get_tracer("test").start_as_current_span("probe"):
            pass
        metrics.get_meter("test").create_counter("probe.count").add(1)
        assert t.force_flush()
        (spans,) = [r for r in traces_rx.requests if r.path == "/v1/traces"]
        (points,) = [r for r in base_rx.requests if r.path == "/v1/metrics"]
    assert spans.headers["content-encoding"] == "gzip" and spans.headers["x-team"] == "tracing team"
    assert "x-everyone" not in spans.headers  # the signal's own variable replaces the general one
    assert points.headers["content-encoding"] == "deflate" and points.headers["x-everyone"] == "all"
    assert spans.headers["content-type"] == points.headers["content-type"] == "application/x-protobuf"
    names = [s.name for rs in spans.body.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert names == ["probe"]


def test_timeout_in_seconds_or_the_specs_milliseconds_and_bad_values_named() -> None:
    base = {"OTEL_LIVEKIT_BACKEND": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    seconds = resolve(SetupArgs(), {**base, "OTEL_EXPORTER_OTLP_TIMEOUT": "3"})
    millis = resolve(SetupArgs(), {**base, "OTEL_EXPORTER_OTLP_TIMEOUT": "7000",
                                   "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "2.5"})  # fmt: skip
    assert seconds.transports["traces"].timeout == 3.0
    assert millis.transports["traces"].timeout == 7.0 and millis.transports["metrics"].timeout == 2.5
    bad = resolve(SetupArgs(), {**base, "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
                                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "brotli"})  # fmt: skip
    assert {p.variable for p in bad.problems} == {"OTEL_EXPORTER_OTLP_TIMEOUT",
                                                  "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"}  # fmt: skip
    assert bad.transports["traces"].timeout == 10.0 and bad.transports["traces"].compression == "none"


def test_a_presets_own_headers_are_all_it_sends() -> None:
    """Langfuse's keys go to Langfuse; a Collector token in OTEL_EXPORTER_OTLP_HEADERS does not."""
    config = resolve(SetupArgs(backend="langfuse"), {
        "LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-1",
        "LANGFUSE_HOST": "http://127.0.0.1:3000",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20collector",
    })  # fmt: skip
    sent = config.transports["traces"].request_headers()
    assert sent["authorization"].startswith("Basic ") and "collector" not in str(sent)
    assert "sk-lf-1" not in repr(config.transports["traces"])
