"""Every setting, declared once, and the one resolution of arguments + environment into a
frozen :class:`Config`, done before anything is built or installed.

``setup_tracing()`` is resolve → build → install; ``otel-livekit doctor`` runs the same
:func:`resolve` and prints what it found. A bad value never stops resolution: it becomes a
:class:`Problem` (the variable, its value masked, why, what is used instead), and the policy
decides — strict (outside a job, by default) raises every problem at once; lenient (inside a
LiveKit job, by default) logs each once at ERROR and goes on with the default, so a
telemetry mistake is never the reason a call fails.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from . import environment_variables as ev
from .errors import ConfigurationError
from .export.delivery.health import SPAN_BATCH_SIZE
from .export.delivery.spooling import SpoolSettings, default_root, spool_settings
from .export.destinations.backends import Destination, ExportPlan, resolve_plan
from .export.destinations.headers import HEADER_VARIABLES, masked_header_value, parse_headers
from .export.destinations.instances import DEFAULT_EXPIRATION, InstanceSettings, default_directory
from .export.destinations.transport import Signal, Transport, resolve_transport
from .export.local.prometheus import PrometheusSettings, prometheus_settings
from .metrics.pricing import PriceSource, PriceTable, load_prices
from .secrets import Secret
from .sessions.content import ALL, ContentPolicy, default_policy, parse_destinations, resolve_policy
from .sessions.features import LOGS, PROCESSORS, REPORT
from .sessions.logs import log_mode, logs_endpoint_problem

logger = logging.getLogger("otel_livekit")

T = TypeVar("T")

DEFAULT_FLUSH_TIMEOUT = 2.0
DEFAULT_SLOW_TURN_SECONDS = 1.5


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, the kind of value, its default and meaning."""

    variable: str
    type_name: str
    default_text: str
    doc: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # --- where telemetry goes
    Setting(ev.OTEL_LIVEKIT_BACKEND, "backend name", "inferred",
            "Where traces go: langfuse, jaeger, otlp, console, file, none or an APM preset "
            "(honeycomb, grafana-cloud, datadog, newrelic, phoenix). Inferred: Langfuse keys → "
            "langfuse, an OTLP endpoint → otlp, else console."),
    Setting(ev.OTEL_SDK_DISABLED, "bool", "false",
            "`true` installs nothing: no providers, no exporters, no hooks."),
    Setting(ev.OTEL_LIVEKIT_STRICT, "auto | true | false", "auto",
            "What a bad setting does. `true`: setup raises ConfigurationError listing every "
            "problem. `false`: each problem is logged once at ERROR and its default used (a "
            "destination that cannot work is switched off). `auto`: strict outside a LiveKit "
            "job, lenient inside one, so a telemetry mistake never fails a call."),
    Setting(ev.OTEL_EXPORTER_OTLP_ENDPOINT, "URL", "SDK default (http://localhost:4318)",
            "OTLP/HTTP base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended."),
    Setting(ev.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "URL", "from the base", "Full URL for traces."),
    Setting(ev.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "URL", "from the base",
            "Full URL for metrics; for backends that take no metrics (Langfuse, Jaeger, "
            "Phoenix) the Collector that takes them."),
    Setting(ev.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, "URL", "from the base",
            "Full URL for OTLP logs (`OTEL_LIVEKIT_LOGS=otlp`)."),
    Setting(ev.OTEL_EXPORTER_OTLP_HEADERS, "key=value,…", "none",
            "Headers on every OTLP request, comma-separated `key=value`, values percent-encoded "
            "(OTel spec). Parsed by otel_livekit: a malformed entry is reported with its value masked.",
            secret=True),
    Setting(ev.OTEL_EXPORTER_OTLP_TRACES_HEADERS, "key=value,…", "the general headers",
            "Headers for traces only (same format).", secret=True),
    Setting(ev.OTEL_EXPORTER_OTLP_METRICS_HEADERS, "key=value,…", "the general headers",
            "Headers for metrics only (same format).", secret=True),
    Setting(ev.OTEL_EXPORTER_OTLP_LOGS_HEADERS, "key=value,…", "the general headers",
            "Headers for logs only (same format).", secret=True),
    Setting(ev.OTEL_EXPORTER_OTLP_TIMEOUT, "seconds", "10",
            "Per-request timeout, in seconds as the OTel Python SDK reads it; a value of 1000 or "
            "more is read as the milliseconds the OTLP spec names (`10000` = 10 s). With the "
            "spool one live attempt is capped at 5 s, the rest waits in the spool. Each "
            "`OTEL_EXPORTER_OTLP_*` transport variable here has a per-signal form "
            "(`…_TRACES_…`, `…_METRICS_…`, `…_LOGS_…`) that wins over it."),
    Setting(ev.OTEL_EXPORTER_OTLP_COMPRESSION, "gzip | deflate | none", "none", "Request body compression."),
    Setting(ev.OTEL_EXPORTER_OTLP_CERTIFICATE, "path", "certifi's CAs",
            "CA bundle to verify the backend's TLS certificate (doctor uses it too); without it "
            "`REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE`, as with requests. Proxies come from "
            "`HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` (SOCKS needs PySocks)."),
    Setting(ev.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, "path", "none", "Client certificate for mutual TLS."),
    Setting(ev.OTEL_EXPORTER_OTLP_CLIENT_KEY, "path", "none", "Client key for mutual TLS."),
    Setting(ev.OTEL_METRIC_EXPORT_INTERVAL, "milliseconds", "60000",
            "How often OTLP metrics are exported (read by the SDK); job end always flushes."),
    Setting(ev.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, "spans", "64",
            "Spans per export request (read by the SDK, whose own default is 512): a busy process "
            "sends a batch as soon as this many have ended, so its queue stays short."),
    Setting(ev.OTEL_BSP_MAX_QUEUE_SIZE, "spans", "2048",
            "Ended spans waiting for export (read by the SDK); beyond it new spans are dropped and counted."),
    Setting(ev.OTEL_TRACES_SAMPLER, "sampler name", "parentbased_always_on",
            "Trace sampler (read by the SDK); see the sampling docs for whole-call sampling."),
    Setting(ev.OTEL_TRACES_SAMPLER_ARG, "number", "sampler's",
            "The sampler's argument, e.g. the ratio for `traceidratio`."),
    Setting(ev.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, "cumulative | delta", "the backend's",
            "Metric temporality; wins over the backend preset's."),
    Setting(ev.OTEL_LIVEKIT_FILE_PATH, "path", "./otel-livekit-traces.jsonl",
            "The `file` backend's output: traces and metrics as OTLP/JSON lines (appended)."),
    # --- the resource
    Setting(ev.OTEL_SERVICE_NAME, "string", "livekit-agent", "Resource `service.name`."),
    Setting(ev.OTEL_RESOURCE_ATTRIBUTES, "key=value,…", "none", "Extra resource attributes."),
    Setting(ev.OTEL_LIVEKIT_ENVIRONMENT, "string", "unset",
            "Resource `deployment.environment.name` (e.g. `production`); Langfuse's environment."),
    Setting(ev.OTEL_LIVEKIT_SERVICE_VERSION, "string", "unset", "Resource `service.version`."),
    Setting(ev.OTEL_LIVEKIT_AGENT_NAME, "string", "the job's agent name",
            "Resource `livekit.agent.name`."),
    Setting(ev.OTEL_LIVEKIT_INSTANCE_SLOTS, "bool", "true",
            "With OTLP metrics, each job process takes the lowest free slot of its service on "
            "the host as `service.instance.id` (`<host>/<n>`, a file lock held for the "
            "process's life) and continues that slot's counters and histograms, so metric "
            "series grow with concurrent calls, not with calls. `false`: the SDK's random id "
            "per process. A `service.instance.id` you set yourself always wins."),
    Setting(ev.OTEL_LIVEKIT_SERIES_EXPIRATION, "seconds", "3600",
            "How long a slot's counters may go unexported and still be continued by its next "
            "process; set it to your Collector's prometheus exporter `metric_expiration` (the "
            "shipped one's is 60m)."),
    # --- job end and outages
    Setting(ev.OTEL_LIVEKIT_SLOW_TURN_SECONDS, "seconds (0–60]", "1.5",
            "A turn whose wait (user's last word to agent's first audio) is longer is slow: "
            "`voice_agent.turn.slow` by dominant part, the turn budget's verdict."),
    Setting(ev.OTEL_LIVEKIT_FLUSH_TIMEOUT, "seconds (0–60]", "2",
            "The one deadline for everything telemetry does at job end and at exit (flush, "
            "shutdown, atexit together), a fifth of LiveKit's 10 s shutdown window."),
    Setting(ev.OTEL_LIVEKIT_SPOOL, "bool", "true",
            "`false` turns the outage spool off: what the backend does not take in time is "
            "dropped (and counted)."),
    Setting(ev.OTEL_LIVEKIT_SPOOL_DIR, "path", "$XDG_CACHE_HOME/otel_livekit/spool/<service>",
            "Directory of the outage spool, shared by the job processes of a machine (one "
            "subdirectory per destination); `~/.cache/...` without XDG_CACHE_HOME."),
    Setting(ev.OTEL_LIVEKIT_SPOOL_MAX_BYTES, "bytes", "67108864 (64 MiB)",
            "Size cap of the spool per destination; the oldest batches are dropped (and counted) beyond it."),
    # --- content and per-call features
    Setting(ev.OTEL_LIVEKIT_CONTENT, "destinations", "none",
            "Destinations that receive conversation content (prompts, replies, transcripts, tool "
            "payloads), comma-separated: the backend's name (e.g. `langfuse`), names given to "
            "`span_exporters=`, `processors`, `logs`, `report`; or `all` / `none`."),
    Setting(ev.OTEL_LIVEKIT_LEAN, "destinations", "langfuse when it is the backend, else none",
            "Span destinations that get the lean tree (the session, turns, generations, tool "
            "calls, failures; LiveKit's wrappers dropped, their children re-parented and their "
            "numbers moved up, state changes summarised), comma-separated like "
            "`OTEL_LIVEKIT_CONTENT`, or `all` / `none`. The others get every span."),
    Setting(ev.OTEL_LIVEKIT_ALLOW_PII, "bool", "false",
            "The older all-or-nothing content switch: `true` = `OTEL_LIVEKIT_CONTENT=all`; "
            "`OTEL_LIVEKIT_CONTENT` wins."),
    Setting(ev.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
            "NO_CONTENT | SPAN_ONLY | EVENT_ONLY | SPAN_AND_EVENT", "NO_CONTENT",
            "The GenAI conventions' switch. Without `OTEL_LIVEKIT_CONTENT` it applies to every "
            "destination; with it, it only says which kind the listed destinations get."),
    Setting(ev.OTEL_LIVEKIT_SESSION_ID, "string", "the room name",
            "Session id on every span (`session.id`, `langfuse.session.id`)."),
    Setting(ev.OTEL_LIVEKIT_USER_ID, "string", "the remote participant's identity",
            "User id on every span (`user.id`, `langfuse.user.id`)."),
    Setting(ev.OTEL_LIVEKIT_TRACE_NAME, "string", "voice_call", "Langfuse trace name."),
    Setting(ev.OTEL_LIVEKIT_TAGS, "list", "none", "Comma-separated Langfuse trace tags."),
    Setting(ev.OTEL_LIVEKIT_LANGFUSE_MAPPING, "bool", "true for langfuse, else false",
            "Adds the Langfuse keys (trace name/tags/metadata, observation types, generation fields)."),
    Setting(ev.OTEL_LIVEKIT_REPORT_DIR, "path", "not written",
            "Directory where each call's session report is written as JSON."),
    Setting(ev.OTEL_LIVEKIT_LOGS, "ids | otlp | none", "ids",
            "`otlp` exports Python log records and session reports as OTLP logs; `none` turns "
            "off the trace/span ids put on Python log records."),
    Setting(ev.OTEL_LIVEKIT_INSTRUMENT_SESSIONS, "bool", "true",
            "`false` stops setup_tracing() from instrumenting every AgentSession (then call "
            "`instrument_session(session)` yourself)."),
    Setting(ev.OTEL_LIVEKIT_PRICES, "path", "the shipped table",
            "JSON price table that overrides/extends the shipped estimate (`otel_livekit/prices.json`)."),
    # --- Prometheus
    Setting(ev.PROMETHEUS_MULTIPROC_DIR, "path", "unset",
            "prometheus-client's multiprocess directory (LiveKit's worker sets it from "
            "`prometheus_multiproc_dir`): the catalogue's metrics are written there so the "
            "worker's `/metrics` sums every job process. Must exist and be writable."),
    Setting(ev.OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS, "auto | true | false", "auto",
            "Write the catalogue's metrics to prometheus-client's multiprocess files (auto: "
            "when `PROMETHEUS_MULTIPROC_DIR` is set)."),
    Setting(ev.OTEL_LIVEKIT_PROMETHEUS_PORT, "port", "unset (no endpoint)",
            "Port of a standalone `/metrics` endpoint otel_livekit serves itself (0: any free port)."),
    Setting(ev.OTEL_LIVEKIT_PROMETHEUS_HOST, "host", "127.0.0.1", "Address the standalone endpoint binds."),
    # --- backend presets' vendor variables
    Setting(ev.LANGFUSE_PUBLIC_KEY, "string", "required for langfuse", "Langfuse project public key.",
            secret=True),
    Setting(ev.LANGFUSE_SECRET_KEY, "string", "required for langfuse", "Langfuse project secret key.",
            secret=True),
    Setting(ev.LANGFUSE_HOST, "URL", "https://cloud.langfuse.com",
            "Langfuse host (also `LANGFUSE_BASE_URL`)."),
    Setting(ev.LANGFUSE_BASE_URL, "URL", "https://cloud.langfuse.com", "Langfuse host (the newer name)."),
    Setting(ev.HONEYCOMB_API_KEY, "string", "required for honeycomb", "Sent as `x-honeycomb-team`.",
            secret=True),
    Setting(ev.HONEYCOMB_API_ENDPOINT, "URL", "https://api.honeycomb.io",
            "Honeycomb's OTLP endpoint (EU: https://api.eu1.honeycomb.io)."),
    Setting(ev.HONEYCOMB_METRICS_DATASET, "string", "unset (no metrics)", "Honeycomb dataset for metrics."),
    Setting(ev.GRAFANA_CLOUD_OTLP_ENDPOINT, "URL", "required for grafana-cloud",
            "The stack's OTLP gateway (…grafana.net/otlp)."),
    Setting(ev.GRAFANA_CLOUD_INSTANCE_ID, "string", "required for grafana-cloud", "Basic-auth user."),
    Setting(ev.GRAFANA_CLOUD_API_KEY, "string", "required for grafana-cloud", "Basic-auth token.",
            secret=True),
    Setting(ev.DD_AGENT_HOST, "host", "localhost", "The Datadog Agent's host (OTLP/HTTP intake)."),
    Setting(ev.DD_OTLP_HTTP_PORT, "port", "4318", "The Datadog Agent's OTLP/HTTP port."),
    Setting(ev.NEW_RELIC_LICENSE_KEY, "string", "required for newrelic", "Sent as `api-key`.", secret=True),
    Setting(ev.NEW_RELIC_OTLP_ENDPOINT, "URL", "https://otlp.nr-data.net",
            "New Relic's OTLP endpoint (EU: https://otlp.eu01.nr-data.net)."),
    Setting(ev.PHOENIX_COLLECTOR_ENDPOINT, "URL", "http://localhost:6006", "Arize Phoenix's base URL."),
    Setting(ev.PHOENIX_API_KEY, "string", "unset", "Phoenix API key (Bearer).", secret=True),
    Setting(ev.PHOENIX_PROJECT_NAME, "string", "the service name", "Phoenix project."),
)  # fmt: skip

_BY_NAME = {s.variable: s for s in SETTINGS}
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "HEADERS")


def settings_markdown() -> str:
    """The settings table in docs/configuration.md, generated from :data:`SETTINGS`."""
    rows = ["| variable | value | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        secret = " Secret: never printed (doctor shows its length)." if s.secret else ""
        cells = (f"`{s.variable}`", s.type_name, s.default_text, s.doc + secret)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def is_secret(variable: str) -> bool:
    setting = _BY_NAME.get(variable)
    return setting.secret if setting else any(w in variable.upper() for w in _SECRET_WORDS)


def shown(variable: str, value: str) -> str:
    """A value as it may be printed: secrets as their length only."""
    if variable in HEADER_VARIABLES:
        return masked_header_value(value)
    if is_secret(variable):
        return f"<{len(value)} chars>"
    return repr(value)


@dataclass(frozen=True)
class Problem:
    """A setting that setup rejects or replaces."""

    variable: str
    value: str
    reason: str
    instead: str

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.variable}{value}: {self.reason}; {self.instead}"


@dataclass(frozen=True)
class SetupArgs:
    """``setup_tracing()``'s arguments, as given (None: not given)."""

    backend: str | None = None
    backend_options: Mapping[str, str] = field(default_factory=dict)
    strict: bool | None = None
    flush_timeout: float | None = None
    slow_turn_seconds: float | None = None
    instrument_sessions: bool | None = None
    prices: PriceSource = None
    content: str | bool | Sequence[str] | None = None
    lean: str | bool | Sequence[str] | None = None
    allow_pii: bool | None = None
    span_exporter_names: tuple[str, ...] = ()
    has_span_processors: bool = False
    session_id: str | None = None
    user_id: str | None = None
    trace_name: str | None = None
    tags: Sequence[str] | None = None
    environment: str | None = None
    langfuse_mapping: bool | None = None
    report_dir: str | os.PathLike[str] | None = None
    has_report_callback: bool = False
    logs: str | None = None
    prometheus_port: int | None = None
    prometheus_host: str | None = None
    prometheus_multiprocess: bool | None = None
    spool: bool | None = None
    spool_dir: str | os.PathLike[str] | None = None
    spool_max_bytes: int | None = None


@dataclass(frozen=True)
class Config:
    """Everything setup will build from, resolved."""

    strict: bool
    plan: ExportPlan
    flush_timeout: float
    instrument_sessions: bool
    policy: ContentPolicy
    destinations: tuple[str, ...]
    """Every destination name the content policy knows (span destinations, logs, report)."""
    span_destinations: tuple[str, ...]
    lean: frozenset[str]
    """Span destinations that get the lean tree (docs/sessions.md); the others get every span."""
    logs: str
    spool: SpoolSettings
    prometheus: PrometheusSettings | None
    instances: InstanceSettings
    transports: Mapping[Signal, Transport]
    """Each OTLP signal's endpoint, headers, timeout, compression and TLS, resolved once."""
    prices: PriceTable
    session_id: str | None
    user_id: str | None
    trace_name: str | None
    tags: tuple[str, ...]
    environment: str | None
    langfuse_mapping: bool | None
    report_dir: Path | None
    headers: Mapping[str, Mapping[str, Secret]]
    """Per header variable, the entries that parsed (values kept as secrets)."""
    problems: tuple[Problem, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    slow_turn_seconds: float = DEFAULT_SLOW_TURN_SECONDS
    span_batch_size: int | None = SPAN_BATCH_SIZE
    """Spans per export; None when ``OTEL_BSP_*`` sizes are set: the SDK reads them."""

    def report(self) -> None:
        """Strict: raise every problem at once. Lenient: log each once at ERROR."""
        if not self.problems:
            return
        if self.strict:
            raise ConfigurationError(problem_list(self.problems))
        for p in self.problems:
            logger.error("otel_livekit configuration: %s", p)


def problem_list(problems: Sequence[Problem]) -> str:
    lines = "\n  ".join(str(p) for p in problems)
    return f"otel_livekit configuration: {len(problems)} problem(s):\n  {lines}"


_VAR = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b")


class _Resolution:
    """Collects problems; each section is resolved with its bad variables taken out."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def add(self, variable: str, reason: str, instead: str, value: str | None = None) -> None:
        raw = self.env.get(variable) if value is None else value
        shown_value = shown(variable, raw) if raw else ""
        if raw and is_secret(variable):
            reason = reason.replace(raw, shown_value).replace(repr(raw), shown_value)
        if reason.startswith(variable + " "):  # the line already starts with the variable
            reason = reason[len(variable) + 1 :]
        self.problems.append(Problem(variable, shown_value, reason, instead))

    def section(self, fn: Callable[[Mapping[str, str]], T], fallback: Callable[[], T], what: str,
                instead: str = "using the default") -> T:  # fmt: skip
        """``fn(env)``; a bad variable is reported and taken out (its default applies), and
        ``fn`` runs again; a problem with no variable in the environment gives ``fallback``."""
        env = dict(self.env)
        for _ in range(16):
            try:
                return fn(env)
            except ConfigurationError as exc:
                var = exc.variable or next((v for v in _VAR.findall(str(exc)) if v in env), None)
                setting = _BY_NAME.get(var or "")
                if var and var in env and not (setting and _remote_default(setting)):
                    default = f"using the default ({setting.default_text})" if setting else instead
                    self.add(var, str(exc), default, env.pop(var))
                    continue
                self.add(var or what, str(exc), instead, value="")
                return fallback()
        return fallback()


def _remote_default(setting: Setting) -> bool:
    """A bad URL switches its destination off rather than falling back to a default: a
    self-hosted host must not become the vendor's cloud (the data and the keys would go
    where the user never chose), nor a bad OTLP endpoint the console."""
    return setting.type_name == "URL"


def _flag(env: Mapping[str, str], var: str, *, auto: bool = False) -> bool | None:
    return ev.flag(env.get(var), var, auto=auto)


def _sdk_batch_sizes(env: Mapping[str, str]) -> bool:
    """The user sized the span queue or its batches: the SDK reads (and checks) both."""
    sizes = (ev.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, ev.OTEL_BSP_MAX_QUEUE_SIZE)
    return any((env.get(v) or "").strip() for v in sizes)


def _float(env: Mapping[str, str], var: str, default: float) -> float:
    raw = env.get(var)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"must be a number of seconds, got {raw!r}", variable=var) from None
    if not 0 < value <= 60:
        raise ConfigurationError(f"must be between 0 and 60 seconds, got {raw!r}", variable=var)
    return value


def _transports(plan: ExportPlan, logs: str, env: Mapping[str, str],
                headers: Mapping[str, Mapping[str, Secret]]) -> dict[Signal, Transport]:  # fmt: skip
    out: dict[Signal, Transport] = {}
    signal: Signal
    for signal, dest in (("traces", plan.traces), ("metrics", plan.metrics)):
        if isinstance(dest, Destination):
            out[signal] = resolve_transport(signal, dest.endpoint, dest.headers, env, headers)
    if logs == "otlp":
        standard = env.get(ev.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) or env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT)
        if standard or "traces" not in out:
            out["logs"] = resolve_transport("logs", None, {}, env, headers)
        else:  # an OTLP backend's base, with its headers (Langfuse takes no logs: checked above)
            traces = out["traces"]
            endpoint = traces.endpoint.removesuffix("traces") + "logs"
            out["logs"] = resolve_transport("logs", endpoint, traces.headers, env, headers)
    return out


def _lean(given: str | bool | Sequence[str] | None, env: Mapping[str, str], backend: str,
          span_destinations: Sequence[str]) -> frozenset[str]:  # fmt: skip
    """argument > ``OTEL_LIVEKIT_LEAN`` > lean for Langfuse (a person reads that tree and
    pays per observation), full for every other destination."""
    raw = given if given is not None else (env.get(ev.OTEL_LIVEKIT_LEAN) or "").strip() or None
    if raw is None:
        return frozenset({backend}) if backend == "langfuse" and backend in span_destinations else frozenset()
    var = "lean=" if given is not None else ev.OTEL_LIVEKIT_LEAN
    names = parse_destinations(raw, var)
    if ALL in names:
        return frozenset(d for d in span_destinations if d != PROCESSORS)
    if unknown := sorted(names - set(span_destinations)):
        known = ", ".join(span_destinations) or "none"
        raise ConfigurationError(f"names no span destination: {', '.join(unknown)} (the destinations are "
                                 f"{known})", variable=None if given is not None else var)  # fmt: skip
    return names


def _instances(env: Mapping[str, str], service: str) -> InstanceSettings:
    enabled = _flag(env, ev.OTEL_LIVEKIT_INSTANCE_SLOTS) is not False
    raw = env.get(ev.OTEL_LIVEKIT_SERIES_EXPIRATION)
    expiration = DEFAULT_EXPIRATION
    if raw:
        try:
            expiration = float(raw)
        except ValueError:
            raise ConfigurationError(f"must be a number of seconds, got {raw!r}",
                                     variable=ev.OTEL_LIVEKIT_SERIES_EXPIRATION) from None  # fmt: skip
        if not 0 <= expiration < float("inf"):
            raise ConfigurationError(f"must be 0 or more seconds, got {raw!r}",
                                     variable=ev.OTEL_LIVEKIT_SERIES_EXPIRATION)  # fmt: skip
    return InstanceSettings(enabled, default_directory(service, env), expiration)


def _strict_or_auto(strict: bool | None, inside_job: bool | None = None) -> bool:
    """``auto`` (None): strict outside a LiveKit job, lenient inside one."""
    if strict is not None:
        return strict
    return not (in_job() if inside_job is None else inside_job)


def strict_policy(given: bool | None, env: Mapping[str, str]) -> bool:
    """The policy when the configuration itself could not be resolved: the same precedence
    (argument > ``OTEL_LIVEKIT_STRICT`` > auto), a bad value of the variable read as auto."""
    if given is None:
        try:
            given = _flag(env, ev.OTEL_LIVEKIT_STRICT, auto=True)
        except ConfigurationError:
            given = None
    return _strict_or_auto(given)


def in_job() -> bool:
    try:
        from livekit.agents import get_job_context

        return get_job_context(required=False) is not None
    except Exception:
        return False


def resolve(args: SetupArgs | None = None, env: Mapping[str, str] | None = None,
            *, inside_job: bool | None = None) -> Config:  # fmt: skip
    """Arguments > environment > defaults, every value checked; never raises (problems are
    in ``Config.problems``; ``Config.report()`` applies the policy)."""
    a = args or SetupArgs()
    env = os.environ if env is None else env
    r = _Resolution(env)
    sources: dict[str, str] = {}

    strict = a.strict
    if strict is None:
        strict = r.section(lambda e: _flag(e, ev.OTEL_LIVEKIT_STRICT, auto=True), lambda: None, "strict")
    strict = _strict_or_auto(strict, inside_job)

    headers: dict[str, Mapping[str, Secret]] = {}
    for var in HEADER_VARIABLES:
        if raw := env.get(var):
            good, bad = parse_headers(raw)
            headers[var] = {k: Secret(v) for k, v in good.items()}
            for entry in bad:
                r.add(var, "malformed entry (want key=value, comma-separated, percent-encoded)",
                      "the request goes without it", value=entry)  # fmt: skip

    def plan_of(e: Mapping[str, str]) -> ExportPlan:
        return resolve_plan(a.backend, a.backend_options, e, sources)

    backend_name = (a.backend or env.get(ev.OTEL_LIVEKIT_BACKEND) or "").strip() or None
    def no_traces() -> ExportPlan:  # metrics still go to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
        try:
            return resolve_plan("none", {}, env)
        except ConfigurationError:
            return ExportPlan("none", None)

    plan = r.section(plan_of, no_traces, ev.OTEL_LIVEKIT_BACKEND,
                     f"trace export{' to ' + backend_name if backend_name else ''} switched off "
                     "(metrics and Prometheus keep working)")  # fmt: skip
    if a.backend is None and ev.OTEL_LIVEKIT_BACKEND in env:
        sources[ev.OTEL_LIVEKIT_BACKEND] = "env"

    flush_timeout = a.flush_timeout
    if flush_timeout is None:
        flush_timeout = r.section(lambda e: _float(e, ev.OTEL_LIVEKIT_FLUSH_TIMEOUT, DEFAULT_FLUSH_TIMEOUT),
                                  lambda: DEFAULT_FLUSH_TIMEOUT, ev.OTEL_LIVEKIT_FLUSH_TIMEOUT)  # fmt: skip
    slow_turn = a.slow_turn_seconds
    if slow_turn is None:
        var = ev.OTEL_LIVEKIT_SLOW_TURN_SECONDS
        slow_turn = r.section(lambda e: _float(e, var, DEFAULT_SLOW_TURN_SECONDS),
                              lambda: DEFAULT_SLOW_TURN_SECONDS, var)  # fmt: skip
    instrument = a.instrument_sessions
    if instrument is None:
        instrument = r.section(lambda e: _flag(e, ev.OTEL_LIVEKIT_INSTRUMENT_SESSIONS), lambda: None,
                               ev.OTEL_LIVEKIT_INSTRUMENT_SESSIONS) is not False  # fmt: skip
    prices = r.section(lambda e: load_prices(a.prices, e), lambda: load_prices(None, {}), "prices",
                       "using the shipped price table")  # fmt: skip

    logs = r.section(lambda e: log_mode(a.logs, e), lambda: "ids", "logs", "using the default (ids)")
    traces = plan.traces
    if logs == "otlp" and (why := logs_endpoint_problem(env, plan.backend, traces)):
        r.add(ev.OTEL_LIVEKIT_LOGS, why, "logs are not exported (ids only)", value="otlp")
        logs = "ids"

    span_destinations = ([plan.backend] if plan.traces is not None else []) + list(a.span_exporter_names)
    if a.has_span_processors:
        span_destinations.append(PROCESSORS)
    report_dir_raw = a.report_dir or env.get(ev.OTEL_LIVEKIT_REPORT_DIR) or None
    destinations = list(span_destinations)
    if logs == "otlp":
        destinations.append(LOGS)
    if report_dir_raw or a.has_report_callback:
        destinations.append(REPORT)

    def policy_of(e: Mapping[str, str]) -> ContentPolicy:
        policy = resolve_policy(a.content, a.allow_pii, e)
        policy.check(destinations)
        return policy

    policy = r.section(policy_of, default_policy, "content", "no content to any destination")
    def no_lean() -> frozenset[str]:
        return frozenset()

    lean = r.section(lambda e: _lean(a.lean, e, plan.backend, span_destinations), no_lean, "lean",
                     "every destination gets every span")  # fmt: skip
    langfuse_mapping = a.langfuse_mapping
    if langfuse_mapping is None:
        langfuse_mapping = r.section(lambda e: _flag(e, ev.OTEL_LIVEKIT_LANGFUSE_MAPPING), lambda: None,
                                     ev.OTEL_LIVEKIT_LANGFUSE_MAPPING)  # fmt: skip
    raw_tags = a.tags if a.tags is not None else (env.get(ev.OTEL_LIVEKIT_TAGS) or "").split(",")

    service = env.get(ev.OTEL_SERVICE_NAME) or "livekit-agent"
    spool = r.section(
        lambda e: spool_settings(e, service, enabled=a.spool, directory=a.spool_dir,
                                 max_bytes=a.spool_max_bytes),
        lambda: SpoolSettings(True, default_root(service, env), 64 * 1024 * 1024), "spool",
    )  # fmt: skip
    prometheus = r.section(
        lambda e: prometheus_settings(e, port=a.prometheus_port, host=a.prometheus_host,
                                      multiprocess=a.prometheus_multiprocess),
        lambda: None, "prometheus", "no Prometheus endpoint",
    )  # fmt: skip

    def no_transports() -> dict[Signal, Transport]:
        return {}

    transports = r.section(lambda e: _transports(plan, logs, e, headers), no_transports, "transport",
                           "nothing is exported over OTLP")  # fmt: skip
    instances = r.section(lambda e: _instances(e, service),
                          lambda: InstanceSettings(True, default_directory(service, env), DEFAULT_EXPIRATION),
                          "instances")  # fmt: skip

    return Config(
        strict=strict, plan=plan, flush_timeout=flush_timeout, instances=instances, transports=transports,
        slow_turn_seconds=slow_turn,
        span_batch_size=None if _sdk_batch_sizes(env) else SPAN_BATCH_SIZE,
        instrument_sessions=instrument, policy=policy, destinations=tuple(destinations),
        span_destinations=tuple(span_destinations), lean=lean, logs=logs, spool=spool, prometheus=prometheus,
        prices=prices, session_id=a.session_id or env.get(ev.OTEL_LIVEKIT_SESSION_ID) or None,
        user_id=a.user_id or env.get(ev.OTEL_LIVEKIT_USER_ID) or None,
        trace_name=a.trace_name or env.get(ev.OTEL_LIVEKIT_TRACE_NAME) or None,
        tags=tuple(t.strip() for t in raw_tags if t.strip()),
        environment=a.environment or env.get(ev.OTEL_LIVEKIT_ENVIRONMENT) or None,
        langfuse_mapping=langfuse_mapping,
        report_dir=Path(report_dir_raw) if report_dir_raw else None,
        headers=headers, problems=tuple(r.problems), sources=sources,
    )  # fmt: skip


def check_config(env: Mapping[str, str] | None = None, **setup_arguments: Any) -> Config:
    """Resolve the configuration as ``setup_tracing()`` would and raise ConfigurationError
    listing every problem — for a worker's start-up, ``prewarm`` or CI, so a bad setting
    fails the deploy instead of being replaced at the first call. Installs nothing."""
    config = resolve(_args(setup_arguments), env, inside_job=False)
    replace(config, strict=True).report()
    return config


def _args(given: Mapping[str, Any]) -> SetupArgs:
    known = set(SetupArgs.__dataclass_fields__)
    options = {k: str(v) for k, v in given.items() if k not in known}
    return SetupArgs(**{k: v for k, v in given.items() if k in known}, backend_options=options)
