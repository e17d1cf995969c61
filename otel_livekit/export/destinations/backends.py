"""Backends: where traces (and, where the backend takes them, metrics) are exported.

Each backend is a small function from settings to an :class:`ExportPlan`; the registry
``BACKENDS`` is the single list the README's backend table and the error messages use.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ... import environment_variables as ev
from ...errors import ConfigurationError
from ...secrets import Secret

Temporality = Literal["cumulative", "delta"]

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
LANGFUSE_DEFAULT_HOST = "https://cloud.langfuse.com"
LANGFUSE_TRACES_PATH = "/api/public/otel/v1/traces"
LANGFUSE_INGESTION_VERSION = "4"
DEFAULT_FILE_PATH = "otel-livekit-traces.jsonl"
JAEGER_DEFAULT_ENDPOINT = "http://localhost:4318"
HONEYCOMB_DEFAULT_ENDPOINT = "https://api.honeycomb.io"
NEW_RELIC_DEFAULT_ENDPOINT = "https://otlp.nr-data.net"
PHOENIX_DEFAULT_ENDPOINT = "http://localhost:6006"
DATADOG_DEFAULT_PORT = "4318"


@dataclass(frozen=True)
class Destination:
    """One signal's OTLP/HTTP target. ``endpoint=None`` lets the OTel exporter resolve the
    standard ``OTEL_EXPORTER_OTLP_*`` variables itself (per-signal endpoint, headers,
    timeout, compression, certificates)."""

    endpoint: str | None = None
    headers: Mapping[str, Secret] = field(default_factory=dict)

    def revealed_headers(self) -> dict[str, str] | None:
        return {k: v.reveal() for k, v in self.headers.items()} or None


@dataclass(frozen=True)
class FileTarget:
    """A local OTLP/JSON-lines file (the ``file`` backend) holding traces and metrics."""

    path: str


@dataclass(frozen=True)
class ExportPlan:
    """What a backend resolved to. ``traces`` is a Destination, a FileTarget,
    ``"console"`` or None."""

    backend: str
    traces: Destination | FileTarget | Literal["console"] | None
    metrics: Destination | FileTarget | None = None
    temporality: Temporality | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)


class Settings:
    """Backend options: an explicit keyword argument wins over its environment variable."""

    def __init__(self, backend: str, options: Mapping[str, str], env: Mapping[str, str]):
        self.backend = backend
        self._options = options
        self._env = env
        self._missing: list[str] = []
        self._used: set[str] = set()
        self.sources: dict[str, str] = {}
        """Where each looked-up value came from: argument, env or default (for doctor)."""

    def get(self, var: str, default: str | None = None) -> str | None:
        self._used.add(var.lower())
        given, from_env = self._options.get(var.lower()), self._env.get(var)
        value = given or from_env or default
        if value:
            self.sources[var] = "argument" if given else "env" if from_env else "default"
        return value.strip() if value else value

    def require(self, var: str) -> str:
        """Look ``var`` up; remember it as missing so every missing one is named at once."""
        value = self.get(var)
        if not value:
            self._missing.append(var)
            return ""
        return value

    def url(self, var: str, default: str | None = None) -> str | None:
        value = self.get(var, default)
        if value:
            validate_url(value, var)
        return value.rstrip("/") if value else None

    def check(self) -> None:
        unknown = sorted(set(self._options) - self._used)
        if unknown:
            raise ConfigurationError(
                f"backend {self.backend!r} takes no option {', '.join(unknown)}; its options "
                f"are the lower-case names of its variables: {', '.join(sorted(self._used))}"
            )
        if self._missing:
            names = ", ".join(self._missing)
            raise ConfigurationError(
                f"backend {self.backend!r} needs {names}: set "
                f"{'it' if len(self._missing) == 1 else 'them'} in the environment "
                f"(or pass {', '.join(m.lower() + '=' for m in self._missing)} to setup_tracing)"
            )


def validate_url(value: str, var: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{var} must be an http(s) URL, got {value!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigurationError(f"{var} has a malformed port: {value!r}") from None


def _metrics_to_collector(s: Settings) -> Destination | None:
    """Backends that take no metrics still send them to a collector when one is named."""
    endpoint = s.url(ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
    return Destination(endpoint) if endpoint else None


def _metrics_or(s: Settings, base: str, headers: Mapping[str, Secret]) -> Destination:
    endpoint = s.url(ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
    if endpoint:
        return Destination(endpoint)
    return Destination(base + METRICS_PATH, headers)


def _basic(user: str, password: str) -> Secret:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Secret(f"Basic {token}")


def _validate_standard_endpoints(s: Settings) -> None:
    for var in (
        ev.OTEL_EXPORTER_OTLP_ENDPOINT,
        ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    ):
        s.url(var)


def _otlp(s: Settings) -> ExportPlan:
    _validate_standard_endpoints(s)
    base = s.url("endpoint")
    if base:  # an explicit argument; otherwise the SDK reads OTEL_EXPORTER_OTLP_* itself
        traces = s.url(ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or base + TRACES_PATH
        metrics = s.url(ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) or base + METRICS_PATH
        return ExportPlan("otlp", Destination(traces), Destination(metrics))
    return ExportPlan("otlp", Destination(), Destination())


def _jaeger(s: Settings) -> ExportPlan:
    traces = s.url(ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    if not traces:
        base = s.url("endpoint") or s.url(ev.OTEL_EXPORTER_OTLP_ENDPOINT, JAEGER_DEFAULT_ENDPOINT)
        traces = f"{base}{TRACES_PATH}"
    return ExportPlan("jaeger", Destination(traces), _metrics_to_collector(s))


def _langfuse(s: Settings) -> ExportPlan:
    public_key = s.require(ev.LANGFUSE_PUBLIC_KEY)
    secret_key = s.require(ev.LANGFUSE_SECRET_KEY)
    host = s.url(ev.LANGFUSE_HOST) or s.url(ev.LANGFUSE_BASE_URL, LANGFUSE_DEFAULT_HOST)
    headers = {
        "authorization": _basic(public_key, secret_key),
        "x-langfuse-ingestion-version": Secret(LANGFUSE_INGESTION_VERSION),
    }
    return ExportPlan(
        "langfuse", Destination(f"{host}{LANGFUSE_TRACES_PATH}", headers), _metrics_to_collector(s)
    )


def _honeycomb(s: Settings) -> ExportPlan:
    key = s.require(ev.HONEYCOMB_API_KEY)
    base = s.url(ev.HONEYCOMB_API_ENDPOINT, HONEYCOMB_DEFAULT_ENDPOINT) or ""
    headers = {"x-honeycomb-team": Secret(key)}
    metric_headers = {**headers}
    if dataset := s.get(ev.HONEYCOMB_METRICS_DATASET):
        metric_headers["x-honeycomb-dataset"] = Secret(dataset)
    return ExportPlan(
        "honeycomb",
        Destination(base + TRACES_PATH, headers),
        _metrics_or(s, base, metric_headers),
    )


def _grafana_cloud(s: Settings) -> ExportPlan:
    base = s.require(ev.GRAFANA_CLOUD_OTLP_ENDPOINT)
    instance = s.require(ev.GRAFANA_CLOUD_INSTANCE_ID)
    token = s.require(ev.GRAFANA_CLOUD_API_KEY)
    base = s.url(ev.GRAFANA_CLOUD_OTLP_ENDPOINT) or base
    headers = {"authorization": _basic(instance, token)}
    return ExportPlan(
        "grafana-cloud", Destination(base + TRACES_PATH, headers), _metrics_or(s, base, headers)
    )


def _datadog(s: Settings) -> ExportPlan:
    host = s.get(ev.DD_AGENT_HOST, "localhost")
    port = s.get(ev.DD_OTLP_HTTP_PORT, DATADOG_DEFAULT_PORT)
    base = f"http://{host}:{port}"
    validate_url(base, f"{ev.DD_AGENT_HOST}/{ev.DD_OTLP_HTTP_PORT}")
    return ExportPlan(
        "datadog", Destination(base + TRACES_PATH), _metrics_or(s, base, {}), temporality="delta"
    )


def _newrelic(s: Settings) -> ExportPlan:
    key = s.require(ev.NEW_RELIC_LICENSE_KEY)
    base = s.url(ev.NEW_RELIC_OTLP_ENDPOINT, NEW_RELIC_DEFAULT_ENDPOINT) or ""
    headers = {"api-key": Secret(key)}
    return ExportPlan(
        "newrelic",
        Destination(base + TRACES_PATH, headers),
        _metrics_or(s, base, headers),
        temporality="delta",
    )


def _phoenix(s: Settings) -> ExportPlan:
    base = s.url(ev.PHOENIX_COLLECTOR_ENDPOINT, PHOENIX_DEFAULT_ENDPOINT) or ""
    headers = {}
    if key := s.get(ev.PHOENIX_API_KEY):
        headers["authorization"] = Secret(f"Bearer {key}")
    resource = {}
    if project := s.get(ev.PHOENIX_PROJECT_NAME):
        resource["openinference.project.name"] = project
    return ExportPlan(
        "phoenix",
        Destination(base + TRACES_PATH, headers),
        _metrics_to_collector(s),
        resource_attributes=resource,
    )


def _file(s: Settings) -> ExportPlan:
    target = FileTarget(s.get(ev.OTEL_LIVEKIT_FILE_PATH, DEFAULT_FILE_PATH) or DEFAULT_FILE_PATH)
    return ExportPlan("file", target, target)


def _console(s: Settings) -> ExportPlan:
    return ExportPlan("console", "console", _metrics_to_collector(s))


def _none(s: Settings) -> ExportPlan:
    return ExportPlan("none", None, _metrics_to_collector(s))


@dataclass(frozen=True)
class Backend:
    name: str
    build: Callable[[Settings], ExportPlan]
    env_vars: tuple[str, ...]
    """Variables the backend reads; required ones are marked with a trailing ``*``."""
    metrics: str
    summary: str


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "langfuse",
            _langfuse,
            (
                ev.LANGFUSE_PUBLIC_KEY + "*",
                ev.LANGFUSE_SECRET_KEY + "*",
                ev.LANGFUSE_HOST,
                ev.LANGFUSE_BASE_URL,
            ),
            "to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT when set",
            f"OTLP/HTTP to {{host}}{LANGFUSE_TRACES_PATH}, Basic auth, "
            f"x-langfuse-ingestion-version: {LANGFUSE_INGESTION_VERSION}; "
            f"host defaults to {LANGFUSE_DEFAULT_HOST}",
        ),
        Backend(
            "jaeger",
            _jaeger,
            (ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, ev.OTEL_EXPORTER_OTLP_ENDPOINT),
            "to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT when set",
            f"OTLP/HTTP, default {JAEGER_DEFAULT_ENDPOINT}",
        ),
        Backend(
            "otlp",
            _otlp,
            (
                "OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}{ENDPOINT,HEADERS,TIMEOUT,COMPRESSION}",
                ev.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            "OTLP, cumulative unless OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE says",
            "any OTLP/HTTP receiver (a Collector, Tempo, SigNoz, …); the standard variables",
        ),
        Backend(
            "honeycomb",
            _honeycomb,
            (ev.HONEYCOMB_API_KEY + "*", ev.HONEYCOMB_API_ENDPOINT, ev.HONEYCOMB_METRICS_DATASET),
            "OTLP, to the dataset in HONEYCOMB_METRICS_DATASET",
            f"{HONEYCOMB_DEFAULT_ENDPOINT} (EU: https://api.eu1.honeycomb.io), x-honeycomb-team",
        ),
        Backend(
            "grafana-cloud",
            _grafana_cloud,
            (
                ev.GRAFANA_CLOUD_OTLP_ENDPOINT + "*",
                ev.GRAFANA_CLOUD_INSTANCE_ID + "*",
                ev.GRAFANA_CLOUD_API_KEY + "*",
            ),
            "OTLP (cumulative), to Grafana Cloud's Mimir",
            "the stack's OTLP gateway (…grafana.net/otlp), Basic instance-id:token",
        ),
        Backend(
            "datadog",
            _datadog,
            (ev.DD_AGENT_HOST, ev.DD_OTLP_HTTP_PORT),
            "OTLP (delta), through the Agent",
            "the Datadog Agent's OTLP/HTTP intake (default localhost:4318); no key in the app",
        ),
        Backend(
            "newrelic",
            _newrelic,
            (ev.NEW_RELIC_LICENSE_KEY + "*", ev.NEW_RELIC_OTLP_ENDPOINT),
            "OTLP (delta)",
            f"{NEW_RELIC_DEFAULT_ENDPOINT} (EU: https://otlp.eu01.nr-data.net), api-key header",
        ),
        Backend(
            "phoenix",
            _phoenix,
            (ev.PHOENIX_COLLECTOR_ENDPOINT, ev.PHOENIX_API_KEY, ev.PHOENIX_PROJECT_NAME),
            "to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT when set",
            f"Arize Phoenix, default {PHOENIX_DEFAULT_ENDPOINT}/v1/traces, optional Bearer key",
        ),
        Backend(
            "console",
            _console,
            (),
            "to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT when set",
            "one line per finished span on stderr; needs no server (the default)",
        ),
        Backend(
            "file",
            _file,
            (ev.OTEL_LIVEKIT_FILE_PATH,),
            "OTLP/JSON lines in the same file",
            f"OTLP/JSON lines appended to a local file (default ./{DEFAULT_FILE_PATH}); "
            "`otel-livekit report` turns it into an HTML page",
        ),
        Backend(
            "none",
            _none,
            (),
            "to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT when set",
            "no trace export (metrics and your own processors/readers still work)",
        ),
    )
}

DEFAULT_BACKEND = "console"


def infer_backend(env: Mapping[str, str]) -> str:
    """Langfuse keys → langfuse; an OTLP endpoint → otlp; otherwise the local default."""
    if env.get(ev.LANGFUSE_PUBLIC_KEY) and env.get(ev.LANGFUSE_SECRET_KEY):
        return "langfuse"
    if env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT) or env.get(ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
        return "otlp"
    return DEFAULT_BACKEND


def resolve_plan(
    backend: str | None,
    options: Mapping[str, str],
    env: Mapping[str, str],
    sources: dict[str, str] | None = None,
) -> ExportPlan:
    """``sources``, when given, is filled with where each value came from (doctor)."""
    name = (backend or env.get(ev.OTEL_LIVEKIT_BACKEND) or infer_backend(env)).strip().lower()
    spec = BACKENDS.get(name.replace("_", "-"))
    if spec is None:
        valid = ", ".join(BACKENDS)
        source = "backend=" if backend else f"{ev.OTEL_LIVEKIT_BACKEND}="
        raise ConfigurationError(f"unknown backend {source}{name!r}; valid backends: {valid}")
    settings = Settings(spec.name, {k.lower(): v for k, v in options.items()}, env)
    plan = spec.build(settings)
    settings.check()
    if sources is not None:
        sources.update(settings.sources)
    return plan
