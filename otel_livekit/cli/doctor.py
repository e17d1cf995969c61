"""``otel-livekit doctor``: show the resolved configuration and where each value came
from, send one test span (and one metric point) the way the exporters would, and explain
the answer. Secrets are never printed: keys and header values show as their length, ``<N chars>``.

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

import click
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .. import environment_variables as ev
from ..config import SETTINGS, Config, SetupArgs, is_secret, resolve, shown
from ..export.delivery.http_client import HttpClient, failure_reason
from ..export.destinations.backends import Destination, ExportPlan, FileTarget, infer_backend
from ..export.destinations.transport import Transport
from ..secrets import safe_url

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_TIMEOUT = 6
EXIT_TLS = 7
EXIT_OTHER = 8

@dataclass(frozen=True)
class Check:
    signal: str
    url: str
    code: int
    verdict: str
    advice: str


def _shown(var: str, value: str) -> str:
    text = shown(var, value)
    return safe_url(value) if "://" in value and not is_secret(var) else text


def _backend_source(backend: str | None, env: Mapping[str, str]) -> str:
    if backend:
        return "argument --backend"
    if env.get(ev.OTEL_LIVEKIT_BACKEND):
        return f"env {ev.OTEL_LIVEKIT_BACKEND}"
    endpoint = next((v for v in (ev.OTEL_EXPORTER_OTLP_ENDPOINT, ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
                     if env.get(v)), "an OTLP endpoint")  # fmt: skip
    return {
        "langfuse": f"inferred: {ev.LANGFUSE_PUBLIC_KEY} and {ev.LANGFUSE_SECRET_KEY} are set",
        "otlp": f"inferred: {endpoint} is set",
    }.get(infer_backend(env), "default (nothing configured)")


def warnings(env: Mapping[str, str]) -> list[str]:
    """Common mistakes, each with the fix."""
    out = []
    for var in (ev.LANGFUSE_HOST, ev.LANGFUSE_BASE_URL):
        value = (env.get(var) or "").strip()
        if value and "://" not in value:
            out.append(f"{var}={value!r} has no scheme: set it to 'https://{value}'")
    if ev.is_true(env.get(ev.OTEL_SDK_DISABLED)):
        out.append(f"{ev.OTEL_SDK_DISABLED} is set: setup_tracing() installs nothing while it is true")
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


def send(signal: str, transport: Transport, body: bytes, timeout: float, env: Mapping[str, str]) -> Check:
    """POST one OTLP/protobuf request through the client the exporters use (the same TLS,
    proxy and headers, from the same environment) and turn the outcome into a diagnosis."""
    shown = safe_url(transport.endpoint)
    try:
        reply = HttpClient(transport, env=env).post(transport.endpoint, transport.compressor()(body),
                                           transport.request_headers(), timeout)  # fmt: skip
    except Exception as exc:
        reason = failure_reason(exc)
        if reason == "TLS error":
            return Check(signal, shown, EXIT_TLS, reason,
                         "the certificate was not accepted: check the URL's scheme/host, or point "
                         "OTEL_EXPORTER_OTLP_CERTIFICATE at the CA that signed it")  # fmt: skip
        if reason.startswith("timeout"):
            return Check(signal, shown, EXIT_TIMEOUT, f"no answer within {timeout:g} s",
                         "the host is reachable but silent: a firewall dropping packets, a wrong port, "
                         "or an overloaded collector")  # fmt: skip
        if reason == "host name does not resolve":
            return Check(signal, shown, EXIT_UNREACHABLE, reason, "check the host in the endpoint")
        if reason.startswith("connection"):
            return Check(signal, shown, EXIT_UNREACHABLE, "connection refused",
                         "nothing listens there: is the Collector/backend up, and is the port right "
                         "(OTLP/HTTP is usually 4318; 4317 is gRPC)?")  # fmt: skip
        return Check(signal, shown, EXIT_OTHER, f"request failed ({reason})", "")
    status = reply.status
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
    config = resolve(SetupArgs(backend=backend), env, inside_job=False)
    plan = config.plan
    echo(f"{'backend':<40} {plan.backend}  ({_backend_source(backend, env)})")
    _print_settings(config, env)
    notes = warnings(env)
    if config.problems:
        for note in notes:
            echo(f"warning: {note}")
        for problem in config.problems:
            echo(f"FAIL configuration: {problem}")
        echo(f"in a LiveKit job each of these is logged once at ERROR and its default used; "
             f"outside a job (or with {ev.OTEL_LIVEKIT_STRICT}=true) setup_tracing() raises")  # fmt: skip
        echo(f"exit {EXIT_CONFIG}")
        return EXIT_CONFIG

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
            unwritable = _file_problem(dest.path)
            echo(f"{signal:<8} file {dest.path}: {unwritable or 'opens for append'}")
            if unwritable:
                checks.append(Check(signal, dest.path, EXIT_OTHER, f"file not writable ({unwritable})",
                                    f"fix {ev.OTEL_LIVEKIT_FILE_PATH} or the directory's permissions"))
            continue
        assert isinstance(dest, Destination)
        # the transport setup resolved: the same URL, headers, compression and CA the exporter uses
        transport = config.transports["traces" if signal == "traces" else "metrics"]
        body = _test_span(resource) if signal == "traces" else _test_metric(resource)
        names = ", ".join(sorted(transport.headers)) or "none"
        how = f"timeout {transport.timeout:g} s; compression {transport.compression}"
        echo(f"{signal:<8} {safe_url(transport.endpoint)}  ({_endpoint_source(dest, signal, env)}; "
             f"headers: {names}; {how})")  # fmt: skip
        checks.append(send(signal, transport, body, timeout, env))
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


def _print_settings(config: Config, env: Mapping[str, str]) -> None:
    """Every variable that is set (secrets masked), then what setup resolved from them."""
    echo = click.echo
    for setting in SETTINGS:
        var = setting.variable
        if var in env:
            echo(f"{var:<40} {_shown(var, env[var])}  ({config.sources.get(var, 'env')})")
    for var, source in sorted(config.sources.items()):
        if source == "default" and var not in env:
            echo(f"{var:<40} (built-in default)")
    service = env.get(ev.OTEL_SERVICE_NAME) or "livekit-agent"
    prometheus = config.prometheus
    echo(f"{'service':<40} {service}")
    echo(f"{'flush deadline':<40} {config.flush_timeout:g} s")
    echo(f"{'content':<40} {config.policy.describe(config.destinations)}")
    echo(f"{'logs':<40} {config.logs}")
    spool = config.spool
    echo(f"{'outage spool':<40} "
         + (f"{spool.root} (cap {spool.max_bytes} bytes)" if spool.enabled else "off"))  # fmt: skip
    if prometheus is None:
        echo(f"{'prometheus':<40} off")
    else:
        folder = prometheus.multiprocess_dir
        where = [f"multiprocess files in {folder}"] if folder else []
        if prometheus.port is not None:
            where.append(f"http://{prometheus.host}:{prometheus.port}/metrics")
        echo(f"{'prometheus':<40} {'; '.join(where)}")


def _file_problem(path: str) -> str | None:
    """Open the file for append as the exporter will (creating its directory): the real
    answer, where ``os.access`` says yes to root on a read-only mount."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def _endpoint_source(dest: Destination, signal: str, env: Mapping[str, str]) -> str:
    if dest.endpoint:
        return f"from the {signal} settings above"
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    if env.get(specific):
        return f"env {specific}"
    if env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT):
        return f"env {ev.OTEL_EXPORTER_OTLP_ENDPOINT} + /v1/{signal}"
    return "SDK default"
