"""``otel-livekit doctor``: show the resolved configuration and where each value came
from, send one test span (and one metric point) the way the exporters would, and explain
the answer. Secrets are never printed: keys and header values show as ``<set, N chars>``.

Exit codes (the first failing check wins; warnings alone exit 0):
  0 ok · 2 configuration error · 3 rejected credentials (401/403) · 4 wrong path (404/405)
  5 connection refused / host unreachable · 6 timeout · 7 TLS error · 8 other failure
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click
import requests
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.re import parse_env_headers

from .. import environment_variables as ev
from ..errors import ConfigurationError
from ..export.backends import BACKENDS, DEFAULT_BACKEND, Destination, ExportPlan, FileTarget, resolve_plan

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_TIMEOUT = 6
EXIT_TLS = 7
EXIT_OTHER = 8

_SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "HEADERS")


@dataclass(frozen=True)
class Check:
    signal: str
    url: str
    code: int
    verdict: str
    advice: str


def _masked(var: str, value: str) -> str:
    if any(m in var.upper() for m in _SECRET_MARKERS):
        return f"<set, {len(value)} chars>"
    return _safe_url(value) if "://" in value else value


def _safe_url(url: str) -> str:
    """No user:password@ in what we print."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _backend_source(backend: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    if backend:
        return backend, "argument --backend"
    if env.get(ev.OTEL_LIVEKIT_BACKEND):
        return env[ev.OTEL_LIVEKIT_BACKEND], f"env {ev.OTEL_LIVEKIT_BACKEND}"
    if env.get(ev.LANGFUSE_PUBLIC_KEY) and env.get(ev.LANGFUSE_SECRET_KEY):
        return "langfuse", f"inferred: {ev.LANGFUSE_PUBLIC_KEY} and {ev.LANGFUSE_SECRET_KEY} are set"
    for var in (ev.OTEL_EXPORTER_OTLP_ENDPOINT, ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
        if env.get(var):
            return "otlp", f"inferred: {var} is set"
    return DEFAULT_BACKEND, "default (nothing configured)"


def warnings(env: Mapping[str, str]) -> list[str]:
    """Common mistakes, each with the fix."""
    out = []
    for var in (ev.LANGFUSE_HOST, ev.LANGFUSE_BASE_URL):
        value = (env.get(var) or "").strip()
        if value and "://" not in value:
            out.append(f"{var}={value!r} has no scheme: set it to 'https://{value}'")
    if ev.is_true(env.get(ev.OTEL_SDK_DISABLED)):
        out.append(f"{ev.OTEL_SDK_DISABLED} is set: setup_tracing() installs nothing while it is true")
    multiproc = env.get(ev.PROMETHEUS_MULTIPROC_DIR)
    if multiproc is not None and not Path(multiproc).is_dir():
        out.append(
            f"{ev.PROMETHEUS_MULTIPROC_DIR}={multiproc!r} is not an existing directory: "
            "prometheus-client fails in job processes; create it before the worker starts"
        )
    metrics = env.get(ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "")
    if metrics.rstrip("/").endswith("/traces"):
        out.append(
            f"{ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT} ends in a traces path: metrics go to /v1/metrics"
        )
    base = env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT, "")
    if base.rstrip("/").endswith(("/v1/traces", "/v1/metrics")):
        out.append(
            f"{ev.OTEL_EXPORTER_OTLP_ENDPOINT} is a base URL; the SDK appends /v1/traces itself "
            "(use OTEL_EXPORTER_OTLP_TRACES_ENDPOINT for a full URL)"
        )
    return out


def _headers(dest: Destination, signal: str, env: Mapping[str, str]) -> dict[str, str]:
    if dest.headers:
        return dest.revealed_headers() or {}
    raw = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    return dict(parse_env_headers(raw or "", liberal=True))


def _test_span(resource: Resource) -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("otel_livekit.doctor").start_as_current_span("otel-livekit doctor") as span:
        span.set_attribute("otel_livekit.doctor", True)
    provider.shutdown()
    return encode_spans(memory.get_finished_spans()).SerializeToString()


def _test_metric(resource: Resource) -> bytes:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    provider.get_meter("otel_livekit.doctor").create_counter("otel_livekit.doctor.checks").add(1)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return encode_metrics(data).SerializeToString()


def send(
    signal: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    verify: bool | str = True,
) -> Check:
    """POST one OTLP/protobuf request and turn the outcome into a diagnosis. ``verify`` is
    the CA bundle the exporter would use (``OTEL_EXPORTER_OTLP_*CERTIFICATE``)."""
    shown = _safe_url(url)
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/x-protobuf", **headers},
            timeout=timeout,
            verify=verify,
        )
    except requests.exceptions.SSLError:
        return Check(signal, shown, EXIT_TLS, "TLS error",
                     "the certificate was not accepted: check the URL's scheme/host, or point "
                     "OTEL_EXPORTER_OTLP_CERTIFICATE at the CA that signed it")  # fmt: skip
    except requests.exceptions.Timeout:
        return Check(signal, shown, EXIT_TIMEOUT, f"no answer within {timeout:g} s",
                     "the host is reachable but silent: a firewall dropping packets, a wrong port, "
                     "or an overloaded collector")  # fmt: skip
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        if "Name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
            return Check(signal, shown, EXIT_UNREACHABLE, "host name does not resolve",
                         "check the host in the endpoint")  # fmt: skip
        return Check(signal, shown, EXIT_UNREACHABLE, "connection refused",
                     "nothing listens there: is the Collector/backend up, and is the port right "
                     "(OTLP/HTTP is usually 4318; 4317 is gRPC)?")  # fmt: skip
    except requests.exceptions.RequestException as exc:
        return Check(signal, shown, EXIT_OTHER, f"request failed ({type(exc).__name__})", "")
    status = response.status_code
    if 200 <= status < 300:
        return Check(signal, shown, EXIT_OK, f"HTTP {status}: accepted", "")
    if status in (401, 403):
        return Check(signal, shown, EXIT_AUTH, f"HTTP {status}: credentials rejected",
                     "the keys/token are wrong or for another project/region: check the backend's "
                     "key variables (values are not shown here)")  # fmt: skip
    if status == 404:
        return Check(signal, shown, EXIT_NOT_FOUND, "HTTP 404: no such path",
                     f"the endpoint answers but not at this path: {signal} go to …/v1/{signal} on "
                     "an OTLP receiver; Langfuse, Phoenix and Jaeger take no metrics at all")  # fmt: skip
    if status == 405:
        return Check(signal, shown, EXIT_NOT_FOUND, "HTTP 405: this path takes no OTLP POST",
                     f"the server has this path but not as an OTLP {signal} receiver: wrong path, or a "
                     f"backend that takes no {signal}")  # fmt: skip
    if status == 415:
        return Check(signal, shown, EXIT_OTHER, "HTTP 415: unsupported media type",
                     "this endpoint takes no OTLP/HTTP protobuf (a gRPC port? a JSON-only API?)")  # fmt: skip
    return Check(signal, shown, EXIT_OTHER, f"HTTP {status}", "the backend refused the request")


def _resource(plan: ExportPlan, env: Mapping[str, str]) -> Resource:
    attrs = dict(plan.resource_attributes)
    attrs[SERVICE_NAME] = env.get(ev.OTEL_SERVICE_NAME) or "otel-livekit-doctor"
    return Resource.create(attrs)


@click.command("doctor")
@click.option("--backend", default=None, help="Backend to check (default: as setup_tracing() would pick).")
@click.option(
    "--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 60), help="Seconds per request."
)
def doctor(backend: str | None, timeout: float) -> None:
    """Check the configuration against the backend and explain what is wrong.

    Exit codes: 0 ok, 2 configuration, 3 credentials (401/403), 4 path (404/405),
    5 connection refused/unreachable, 6 timeout, 7 TLS, 8 other.
    """
    sys.exit(diagnose(backend, timeout, os.environ))


def diagnose(backend: str | None, timeout: float, env: Mapping[str, str]) -> int:
    echo = click.echo
    name, why = _backend_source(backend, env)
    echo(f"backend           {name}  ({why})")
    notes = warnings(env)
    sources: dict[str, str] = {}
    try:
        plan = resolve_plan(backend, {}, env, sources)
    except ConfigurationError as exc:
        for note in notes:
            echo(f"warning: {note}")
        echo(f"FAIL configuration: {exc}")
        return EXIT_CONFIG
    spec = BACKENDS[plan.backend]
    shown = {v.rstrip("*") for v in spec.env_vars if not v.startswith("OTEL_EXPORTER_OTLP_{")}
    for var in sorted(shown | set(sources)):
        source = sources.get(var)
        if source == "env":
            echo(f"{var:<40} {_masked(var, env[var])}  (env)")
        elif source == "default":
            echo(f"{var:<40} (built-in default)")
        else:
            echo(f"{var:<40} (not set)")
    service = env.get(ev.OTEL_SERVICE_NAME)
    echo(f"{ev.OTEL_SERVICE_NAME:<40} {service or 'livekit-agent'}  ({'env' if service else 'default'})")
    pii = env.get(ev.OTEL_LIVEKIT_ALLOW_PII) or env.get("LIVEKIT_TELEMETRY_ALLOW_PII")
    echo(f"{'allow_pii':<40} {pii or 'true'}  ({'env' if pii else 'LiveKit default'})")

    checks: list[Check] = []
    resource = _resource(plan, env)
    for signal, dest in (("traces", plan.traces), ("metrics", plan.metrics)):
        if dest is None:
            echo(f"{signal:<8} not exported by {plan.backend}")
            continue
        if dest == "console":
            echo(f"{signal:<8} printed to stderr (console): nothing to send")
            continue
        if isinstance(dest, FileTarget):
            folder = Path(dest.path).resolve().parent
            ok = os.access(folder if folder.exists() else folder.parent, os.W_OK)
            echo(f"{signal:<8} file {dest.path}: {'writable' if ok else 'NOT writable'}")
            if not ok:
                checks.append(Check(signal, dest.path, EXIT_OTHER, "file not writable", "fix the directory"))
            continue
        assert isinstance(dest, Destination)
        if signal == "traces":
            url = OTLPSpanExporter(endpoint=dest.endpoint)._endpoint
            body = _test_span(resource)
        else:
            url = OTLPMetricExporter(endpoint=dest.endpoint)._endpoint
            body = _test_metric(resource)
        headers = _headers(dest, signal, env)
        names = ", ".join(sorted(headers)) or "none"
        echo(f"{signal:<8} {_safe_url(url)}  ({_endpoint_source(dest, signal, env)}; headers: {names})")
        ca = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_CERTIFICATE") or env.get(
            "OTEL_EXPORTER_OTLP_CERTIFICATE"
        )
        check = send(signal, url, body, headers, timeout, ca or True)
        checks.append(check)
    for note in notes:
        echo(f"warning: {note}")
    code = EXIT_OK
    for check in checks:
        mark = "ok  " if check.code == EXIT_OK else "FAIL"
        echo(f"{mark} {check.signal}: {check.verdict}" + (f" — {check.advice}" if check.advice else ""))
        if check.code != EXIT_OK and code == EXIT_OK:
            code = check.code
    echo(f"exit {code}")
    return code


def _endpoint_source(dest: Destination, signal: str, env: Mapping[str, str]) -> str:
    if dest.endpoint:
        return f"from the {signal} settings above"
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    if env.get(specific):
        return f"env {specific}"
    if env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT):
        return f"env {ev.OTEL_EXPORTER_OTLP_ENDPOINT} + /v1/{signal}"
    return "SDK default"
