"""Backend resolution: every backend's variables, precedence, inference and errors."""

from __future__ import annotations

import base64

import pytest

from otel_livekit import BACKENDS, ConfigurationError
from otel_livekit.export.destinations.backends import Destination, resolve_plan

LF = {"LANGFUSE_PUBLIC_KEY": "pk-1", "LANGFUSE_SECRET_KEY": "sk-secret-1"}


def headers(dest: object) -> dict[str, str]:
    assert isinstance(dest, Destination)
    return dest.revealed_headers() or {}


def test_langfuse_endpoint_auth_and_ingestion_version() -> None:
    plan = resolve_plan("langfuse", {}, {**LF, "LANGFUSE_HOST": "https://lf.example.com/"})
    assert isinstance(plan.traces, Destination)
    assert plan.traces.endpoint == "https://lf.example.com/api/public/otel/v1/traces"
    h = headers(plan.traces)
    assert h["authorization"] == "Basic " + base64.b64encode(b"pk-1:sk-secret-1").decode()
    assert h["x-langfuse-ingestion-version"] == "4"
    assert plan.metrics is None  # Langfuse takes no metrics


def test_langfuse_base_url_and_default_host() -> None:
    plan = resolve_plan("langfuse", {}, {**LF, "LANGFUSE_BASE_URL": "http://127.0.0.1:3000"})
    assert plan.traces.endpoint == "http://127.0.0.1:3000/api/public/otel/v1/traces"  # type: ignore[union-attr]
    plan = resolve_plan("langfuse", {}, LF)
    assert plan.traces.endpoint == "https://cloud.langfuse.com/api/public/otel/v1/traces"  # type: ignore[union-attr]


def test_langfuse_metrics_go_to_a_named_collector() -> None:
    env = {**LF, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318/v1/metrics"}
    plan = resolve_plan("langfuse", {}, env)
    assert plan.metrics == Destination("http://collector:4318/v1/metrics")


def test_missing_langfuse_keys_are_all_named() -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_plan("langfuse", {}, {})
    msg = str(err.value)
    assert "'langfuse'" in msg
    assert "LANGFUSE_PUBLIC_KEY" in msg and "LANGFUSE_SECRET_KEY" in msg


def test_only_the_missing_key_is_named() -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_plan("langfuse", {}, {"LANGFUSE_PUBLIC_KEY": "pk"})
    assert "LANGFUSE_SECRET_KEY" in str(err.value)
    assert "LANGFUSE_PUBLIC_KEY" not in str(err.value)


def test_unknown_backend_lists_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_plan("zipkin", {}, {})
    for name in BACKENDS:
        assert name in str(err.value)
    with pytest.raises(ConfigurationError, match="OTEL_LIVEKIT_BACKEND="):
        resolve_plan(None, {}, {"OTEL_LIVEKIT_BACKEND": "nope"})


@pytest.mark.parametrize(
    ("backend", "env", "var"),
    [
        ("langfuse", {**LF, "LANGFUSE_HOST": "cloud.langfuse.com"}, "LANGFUSE_HOST"),
        (
            "jaeger",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            "otlp",
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            "otlp",
            {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x:99999"},
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ),
        ("phoenix", {"PHOENIX_COLLECTOR_ENDPOINT": "http//oops"}, "PHOENIX_COLLECTOR_ENDPOINT"),
    ],
)
def test_malformed_endpoint_is_rejected_naming_the_variable(
    backend: str, env: dict[str, str], var: str
) -> None:
    with pytest.raises(ConfigurationError, match=var):
        resolve_plan(backend, {}, env)


def test_arguments_win_over_env() -> None:
    env = {**LF, "LANGFUSE_HOST": "https://env.example.com"}
    plan = resolve_plan(
        "langfuse",
        {"langfuse_host": "https://arg.example.com", "langfuse_secret_key": "sk-arg"},
        env,
    )
    assert plan.traces.endpoint.startswith("https://arg.example.com/")  # type: ignore[union-attr]
    assert headers(plan.traces)["authorization"] == "Basic " + base64.b64encode(b"pk-1:sk-arg").decode()


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="takes no option langfuse_hots"):
        resolve_plan("langfuse", {"langfuse_hots": "x"}, LF)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "console"),
        (LF, "langfuse"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({**LF, "OTEL_LIVEKIT_BACKEND": "jaeger"}, "jaeger"),
    ],
)
def test_backend_inference(env: dict[str, str], expected: str) -> None:
    assert resolve_plan(None, {}, env).backend == expected


def test_otlp_leaves_standard_variables_to_the_sdk() -> None:
    plan = resolve_plan("otlp", {}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    # endpoint None: the OTel exporter resolves per-signal endpoint/headers/timeout itself
    assert plan.traces == Destination() and plan.metrics == Destination()
    plan = resolve_plan("otlp", {"endpoint": "http://arg:4318"}, {})
    assert plan.traces == Destination("http://arg:4318/v1/traces")
    assert plan.metrics == Destination("http://arg:4318/v1/metrics")


def test_jaeger_default_and_env() -> None:
    assert resolve_plan("jaeger", {}, {}).traces == Destination("http://localhost:4318/v1/traces")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}
    plan = resolve_plan("jaeger", {}, env)
    assert plan.traces == Destination("http://jaeger:4318/v1/traces")
    assert plan.metrics is None


def test_honeycomb() -> None:
    plan = resolve_plan(
        "honeycomb", {}, {"HONEYCOMB_API_KEY": "hc-key", "HONEYCOMB_METRICS_DATASET": "voice"}
    )
    assert plan.traces.endpoint == "https://api.honeycomb.io/v1/traces"  # type: ignore[union-attr]
    assert headers(plan.traces) == {"x-honeycomb-team": "hc-key"}
    assert plan.metrics is not None and plan.metrics.endpoint == "https://api.honeycomb.io/v1/metrics"
    assert headers(plan.metrics)["x-honeycomb-dataset"] == "voice"
    with pytest.raises(ConfigurationError, match="HONEYCOMB_API_KEY"):
        resolve_plan("honeycomb", {}, {})


def test_grafana_cloud() -> None:
    env = {
        "GRAFANA_CLOUD_OTLP_ENDPOINT": "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp",
        "GRAFANA_CLOUD_INSTANCE_ID": "123456",
        "GRAFANA_CLOUD_API_KEY": "glc_token",
    }
    plan = resolve_plan("grafana-cloud", {}, env)
    assert plan.traces.endpoint == env["GRAFANA_CLOUD_OTLP_ENDPOINT"] + "/v1/traces"  # type: ignore[union-attr]
    assert headers(plan.traces)["authorization"] == "Basic " + base64.b64encode(b"123456:glc_token").decode()
    assert plan.metrics is not None
    assert plan.metrics.endpoint == env["GRAFANA_CLOUD_OTLP_ENDPOINT"] + "/v1/metrics"
    with pytest.raises(ConfigurationError) as err:
        resolve_plan("grafana_cloud", {}, {})
    for var in env:
        assert var in str(err.value)


def test_datadog_agent_intake_prefers_delta() -> None:
    plan = resolve_plan("datadog", {}, {"DD_AGENT_HOST": "dd-agent"})
    assert plan.traces == Destination("http://dd-agent:4318/v1/traces")
    assert plan.metrics == Destination("http://dd-agent:4318/v1/metrics")
    assert plan.temporality == "delta"


def test_newrelic() -> None:
    plan = resolve_plan("newrelic", {}, {"NEW_RELIC_LICENSE_KEY": "nr-key"})
    assert plan.traces.endpoint == "https://otlp.nr-data.net/v1/traces"  # type: ignore[union-attr]
    assert headers(plan.traces) == {"api-key": "nr-key"}
    assert plan.temporality == "delta"
    with pytest.raises(ConfigurationError, match="NEW_RELIC_LICENSE_KEY"):
        resolve_plan("newrelic", {}, {})


def test_phoenix() -> None:
    plan = resolve_plan("phoenix", {}, {"PHOENIX_API_KEY": "px", "PHOENIX_PROJECT_NAME": "voice-bot"})
    assert plan.traces.endpoint == "http://localhost:6006/v1/traces"  # type: ignore[union-attr]
    assert headers(plan.traces) == {"authorization": "Bearer px"}
    assert plan.resource_attributes == {"openinference.project.name": "voice-bot"}


def test_console_and_none() -> None:
    assert resolve_plan("console", {}, {}).traces == "console"
    assert resolve_plan("none", {}, {}).traces is None


def test_no_secret_in_reprs_or_errors() -> None:
    plan = resolve_plan("langfuse", {}, LF)
    assert "sk-secret-1" not in repr(plan)
    encoded = base64.b64encode(b"pk-1:sk-secret-1").decode()
    assert encoded not in repr(plan) and encoded not in str(plan)
    plan = resolve_plan("newrelic", {}, {"NEW_RELIC_LICENSE_KEY": "nr-secret"})
    assert "nr-secret" not in repr(plan)
    with pytest.raises(ConfigurationError) as err:
        resolve_plan("langfuse", {}, {"LANGFUSE_SECRET_KEY": "sk-secret-2"})
    assert "sk-secret-2" not in str(err.value)
