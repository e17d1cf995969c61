"""setup_tracing(): what it installs, against a wire-level OTLP receiver and a real session."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry import metrics, trace
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from otlp_receiver import OtlpReceiver

import otel_livekit
from otel_livekit import ConfigurationError, setup_tracing
from otel_livekit.offline import run_offline_session


def emit_one_span(name: str = "probe") -> None:
    with trace.get_tracer("test").start_as_current_span(name):
        pass


def test_sdk_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    t = setup_tracing("otlp")
    assert not t.enabled and t.tracer_provider is None and t.meter_provider is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert t.force_flush() is True


def test_second_call_returns_same_handle_and_one_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        first = setup_tracing("otlp")
        second = setup_tracing("otlp")
        third = setup_tracing()
        assert first is second is third
        emit_one_span()
        first.force_flush()
        assert [s.name for _, s in rx.spans()] == ["probe"]


def test_otlp_traces_and_metrics_with_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=voice")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=voice,service.version=9.9")
        t = setup_tracing(environment="staging", agent_name="front-desk")
        assert t.backend == "otlp"
        emit_one_span()
        metrics.get_meter("test").create_counter("probe.count").add(3)
        assert t.force_flush()
        ((res, span),) = rx.spans()
        assert span.name == "probe"
        assert res["service.name"] == "svc-from-env"
        assert res["service.version"] == "9.9" and res["team"] == "voice"
        assert res["deployment.environment.name"] == "staging"
        assert res["livekit.agent.name"] == "front-desk"
        trace_req = next(r for r in rx.requests if r.path == "/v1/traces")
        assert trace_req.headers["x-team"] == "voice"
        assert trace_req.headers["content-encoding"] == "gzip"
        points = {m.name: m for _, m in rx.metrics()}
        probe = points["probe.count"].sum
        assert probe.data_points[0].as_int == 3
        assert probe.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def test_service_name_argument_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        t = setup_tracing("otlp", endpoint=rx.url, service_name="from-arg")
        emit_one_span()
        t.force_flush()
        ((res, _),) = rx.spans()
        assert res["service.name"] == "from-arg"


def test_default_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url)
        emit_one_span()
        t.force_flush()
        ((res, _),) = rx.spans()
        assert res["service.name"] == "livekit-agent"


def test_delta_temporality_env_and_metrics_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as traces_rx, OtlpReceiver() as metrics_rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", traces_rx.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics_rx.url + "/v1/metrics")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
        t = setup_tracing("otlp")
        metrics.get_meter("test").create_counter("probe.count").add(2)
        t.force_flush()
        assert not [m for _, m in traces_rx.metrics()]
        (m,) = [m for _, m in metrics_rx.metrics() if m.name == "probe.count"]
        assert m.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def test_sampler_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
        t = setup_tracing("otlp", endpoint=rx.url)
        emit_one_span()
        t.force_flush()
        assert rx.spans() == []


def test_langfuse_sends_metrics_only_to_a_named_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as langfuse, OtlpReceiver() as collector:
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk")
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk")
        monkeypatch.setenv("LANGFUSE_HOST", langfuse.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", collector.url + "/v1/metrics")
        t = setup_tracing()
        assert t.backend == "langfuse"
        emit_one_span()
        metrics.get_meter("test").create_counter("probe.count").add(1)
        t.force_flush()
        assert {r.path for r in langfuse.requests} == {"/api/public/otel/v1/traces"}
        assert langfuse.requests[0].headers["x-langfuse-ingestion-version"] == "4"
        assert {r.path for r in collector.requests} == {"/v1/metrics"}
        assert "authorization" not in collector.requests[0].headers


def test_bad_configuration_fails_at_setup_and_installs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY"):
        setup_tracing("langfuse")
    monkeypatch.setenv("OTEL_LIVEKIT_FLUSH_TIMEOUT", "forever")
    with pytest.raises(ConfigurationError, match="OTEL_LIVEKIT_FLUSH_TIMEOUT"):
        setup_tracing("console")
    assert otel_livekit.current() is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_refused_export_is_reported_once_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with OtlpReceiver(status=401) as rx:
        t = setup_tracing(
            "langfuse",
            langfuse_public_key="pk",
            langfuse_secret_key="sk-leak",
            langfuse_host=rx.url,
        )
        caplog.set_level(logging.DEBUG)
        for _ in range(3):
            emit_one_span()
            t.force_flush()
        assert t.export_failures["traces"] == 3
        ours = [r for r in caplog.records if r.name == "otel_livekit" and "failed" in r.getMessage()]
        assert len(ours) == 1
        text = "\n".join(r.getMessage() for r in caplog.records) + repr(t)
        assert "sk-leak" not in text and "Basic " not in text


def test_livekit_metrics_lose_per_call_labels_and_get_voice_buckets() -> None:
    """A real offline session inside a (fake) LiveKit job: LiveKit's own instruments
    flow through our MeterProvider with room/job ids dropped and sub-second buckets."""
    reader = InMemoryMetricReader()
    setup_tracing("none", metric_readers=[reader])
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=1))
    data = reader.get_metrics_data()
    assert data is not None
    seen: dict[str, list[object]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                seen.setdefault(m.name, []).extend(m.data.data_points)
    # LiveKit's own usage/GenAI client instruments are replaced by ours (no double count)
    assert not any(name.startswith("lk.agents.usage.") for name in seen)
    assert "gen_ai.execute_tool.duration" not in seen  # no tool call in these turns
    (invoke,) = seen["gen_ai.invoke_agent.duration"]
    assert isinstance(invoke, HistogramDataPoint)
    # LiveKit stamps job/room/agent ids on every measurement: none survive, one series left
    assert not {"job_id", "room_id", "agent_id", "room_name"} & set(invoke.attributes or {})
    assert set(invoke.attributes or {}) <= {"gen_ai.agent.name", "gen_ai.operation.name"}
    # 10 ms .. 10 s, dense below a second (the SDK default would start 0, 5, 10, 25 ...)
    bounds = tuple(invoke.explicit_bounds)
    assert bounds[:6] == (0.01, 0.025, 0.05, 0.075, 0.1, 0.15) and bounds[-1] == 10.0
    assert len([b for b in bounds if b < 1.0]) == 13
    assert invoke.count == 2  # one text turn, one audio turn


def test_job_shutdown_flush_is_registered_once_per_job() -> None:
    from livekit.agents.testing import fake_job_context

    def our_hooks(ctx: object) -> list[object]:
        callbacks = ctx._shutdown_callbacks  # type: ignore[attr-defined]
        return [cb for cb in callbacks if cb.__name__ == "otel_livekit_flush"]

    async def scenario() -> None:
        with fake_job_context(job_id="job-a") as ctx:
            t = setup_tracing("none")
            setup_tracing("none")
            (hook,) = our_hooks(ctx)
            await hook("test")  # type: ignore[operator]  # bounded, never raises
        with fake_job_context(job_id="job-b") as ctx2:
            assert setup_tracing("none") is t
            assert len(our_hooks(ctx2)) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("allow_pii", [False, True])
def test_metadata_and_allow_pii_reach_livekit(allow_pii: bool) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(exporter)],
                  metadata={"team": "voice"}, allow_pii=allow_pii)  # fmt: skip
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    spans = exporter.get_finished_spans()
    assert spans and all((s.attributes or {}).get("team") == "voice" for s in spans)
    content = {k for s in spans for k in (s.attributes or {})
               if k.startswith("lk.pii.") or k == "gen_ai.input.messages"}  # fmt: skip
    assert bool(content) is allow_pii, content


def test_livekit_meter_gets_no_ops_only_for_what_the_catalogue_replaces() -> None:
    """A meter taken from our provider after setup (not through LiveKit's import-time proxy):
    replaced names record nothing and cost nothing; LiveKit's other instruments go through
    the Views as before."""
    reader = InMemoryMetricReader()
    setup_tracing("none", metric_readers=[reader])
    meter = metrics.get_meter_provider().get_meter("livekit-agents")
    replaced = [meter.create_counter("lk.agents.usage.llm_input_tokens"),
                meter.create_histogram("gen_ai.client.operation.duration", unit="s")]  # fmt: skip
    assert [type(i).__name__ for i in replaced] == ["NoOpCounter", "NoOpHistogram"]
    replaced[0].add(5, {"model_name": "m"})
    kept = meter.create_histogram("lk.agents.turn.e2e_latency", unit="s")
    kept.record(0.3, {"model_name": "m", "room_id": "RM_1", "job_id": "job-1"})
    points: dict[str, list[HistogramDataPoint]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            if sm.scope.name == "livekit-agents":
                for m in sm.metrics:
                    points.setdefault(m.name, []).extend(m.data.data_points)  # type: ignore[arg-type]
    assert list(points) == ["lk.agents.turn.e2e_latency"]
    (point,) = points["lk.agents.turn.e2e_latency"]
    assert (point.count, point.sum, dict(point.attributes or {})) == (1, 0.3, {"model_name": "m"})


@pytest.mark.parametrize("strict", [True, False])
def test_a_build_that_fails_half_way_takes_everything_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, strict: bool
) -> None:
    """A metric reader already registered elsewhere (the SDK refuses it): the tracer provider
    and its export thread are already built when the meter provider fails. Nothing may stay
    behind, and a second setup must work."""
    import threading

    from livekit.agents import AgentSession
    from opentelemetry.sdk.metrics import MeterProvider

    original_start = AgentSession.start
    reused = InMemoryMetricReader()
    MeterProvider(metric_readers=[reused], shutdown_on_exit=False)
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        threads = set(threading.enumerate())
        if strict:
            with pytest.raises(Exception, match="registered already"):
                setup_tracing("otlp", metric_readers=[reused], strict=True)
            assert otel_livekit.current() is None
        else:
            with caplog.at_level(logging.ERROR, logger="otel_livekit"):
                handle = setup_tracing("otlp", metric_readers=[reused], strict=False)
            assert not handle.enabled
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, errors
            assert errors[0].startswith("otel_livekit: setup failed (Exception: "), errors
        assert set(threading.enumerate()) - threads == set()
        assert AgentSession.start is original_start
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        if not strict:
            return
        again = setup_tracing("otlp")
        assert again.enabled and again.backend == "otlp"
        emit_one_span("after-a-failed-setup")
        assert again.force_flush(timeout=5)
        assert "after-a-failed-setup" in {s.name for _, s in rx.spans()}


def test_check_config_lists_every_problem_and_installs_nothing() -> None:
    from otel_livekit import check_config

    env = {"OTEL_LIVEKIT_FLUSH_TIMEOUT": "two", "OTEL_LIVEKIT_LOGS": "otel", "OTEL_LIVEKIT_BACKEND": "none"}
    with pytest.raises(ConfigurationError) as err:
        check_config(env)
    assert str(err.value).splitlines() == [
        "otel_livekit configuration: 2 problem(s):",
        "  OTEL_LIVEKIT_FLUSH_TIMEOUT='two': must be a number of seconds, got 'two'; using the default (2)",
        "  OTEL_LIVEKIT_LOGS='otel': must be one of ids, otlp, none, got 'otel'; using the default (ids)",
    ]
    assert otel_livekit.current() is None
    config = check_config({"OTEL_LIVEKIT_FLUSH_TIMEOUT": "3"}, backend="none")
    assert config.flush_timeout == 3.0 and config.plan.backend == "none" and config.problems == ()
