"""Every environment variable otel_livekit reads, declared once.

The standard ``OTEL_*`` variables are read by the OpenTelemetry SDK itself wherever it
can (sampler, resource, exporter endpoints, headers, timeout, compression, temporality,
export interval); the ones below are the names this package reads directly.
"""

from __future__ import annotations

from .errors import ConfigurationError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def flag(raw: str | None, var: str, *, auto: bool = False) -> bool | None:
    """A yes/no variable: None when unset (or ``auto``, where allowed); anything else than
    the usual spellings fails at setup, naming the variable."""
    value = (raw or "").strip().lower()
    if not value or (auto and value == "auto"):
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{var} must be {'auto, ' if auto else ''}true or false, got {raw!r}")


def is_true(raw: str | None) -> bool:
    """Lenient, for the standard variables the SDK reads the same way (``OTEL_SDK_DISABLED``)."""
    return (raw or "").strip().lower() in _TRUE


# --- standard OpenTelemetry variables this package consults ------------------------------
OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
"""``true`` installs nothing: no providers, no exporters, no hooks."""

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"

# --- otel_livekit -----------------------------------------------------------------------
OTEL_LIVEKIT_BACKEND = "OTEL_LIVEKIT_BACKEND"
"""Where traces go: langfuse, jaeger, otlp, console, none or an APM preset name.
Default: inferred (Langfuse keys → langfuse, an OTLP endpoint → otlp, else console)."""

OTEL_LIVEKIT_ENVIRONMENT = "OTEL_LIVEKIT_ENVIRONMENT"
"""Resource ``deployment.environment.name`` (e.g. ``production``). Default: unset."""

OTEL_LIVEKIT_SERVICE_VERSION = "OTEL_LIVEKIT_SERVICE_VERSION"
"""Resource ``service.version``. Default: unset."""

OTEL_LIVEKIT_AGENT_NAME = "OTEL_LIVEKIT_AGENT_NAME"
"""Resource ``livekit.agent.name``. Default: the job's agent name when set up inside a job."""

OTEL_LIVEKIT_ALLOW_PII = "OTEL_LIVEKIT_ALLOW_PII"
"""The older all-or-nothing content switch: ``true`` = ``OTEL_LIVEKIT_CONTENT=all``, ``false``
= ``none``; ``OTEL_LIVEKIT_CONTENT`` wins. Default: no content (``LIVEKIT_TELEMETRY_ALLOW_PII``
is not consulted; LiveKit's ``allow_pii`` follows the destinations)."""

OTEL_LIVEKIT_FLUSH_TIMEOUT = "OTEL_LIVEKIT_FLUSH_TIMEOUT"
"""The one deadline, in seconds, for everything telemetry does at job end and at exit (the
job's flush, shutdown, atexit together), a fifth of LiveKit's 10 s shutdown window. Default: 2."""

# --- vendor variables used by the backend presets ----------------------------------------
LANGFUSE_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
LANGFUSE_SECRET_KEY = "LANGFUSE_SECRET_KEY"
LANGFUSE_HOST = "LANGFUSE_HOST"
LANGFUSE_BASE_URL = "LANGFUSE_BASE_URL"
HONEYCOMB_API_KEY = "HONEYCOMB_API_KEY"
HONEYCOMB_API_ENDPOINT = "HONEYCOMB_API_ENDPOINT"
HONEYCOMB_METRICS_DATASET = "HONEYCOMB_METRICS_DATASET"
GRAFANA_CLOUD_OTLP_ENDPOINT = "GRAFANA_CLOUD_OTLP_ENDPOINT"
GRAFANA_CLOUD_INSTANCE_ID = "GRAFANA_CLOUD_INSTANCE_ID"
GRAFANA_CLOUD_API_KEY = "GRAFANA_CLOUD_API_KEY"
DD_AGENT_HOST = "DD_AGENT_HOST"
DD_OTLP_HTTP_PORT = "DD_OTLP_HTTP_PORT"
NEW_RELIC_LICENSE_KEY = "NEW_RELIC_LICENSE_KEY"
NEW_RELIC_OTLP_ENDPOINT = "NEW_RELIC_OTLP_ENDPOINT"
PHOENIX_COLLECTOR_ENDPOINT = "PHOENIX_COLLECTOR_ENDPOINT"
PHOENIX_API_KEY = "PHOENIX_API_KEY"
PHOENIX_PROJECT_NAME = "PHOENIX_PROJECT_NAME"

OTEL_LIVEKIT_PRICES = "OTEL_LIVEKIT_PRICES"
"""Path of a JSON price table that overrides/extends the shipped estimate (see
``otel_livekit/prices.json`` for the format). Default: the shipped table only."""

OTEL_LIVEKIT_INSTRUMENT_SESSIONS = "OTEL_LIVEKIT_INSTRUMENT_SESSIONS"
"""``false`` stops setup_tracing() from instrumenting every AgentSession automatically
(then call ``instrument_session(session)`` yourself). Default: true."""

OTEL_LIVEKIT_FILE_PATH = "OTEL_LIVEKIT_FILE_PATH"
"""The ``file`` backend's output: traces and metrics as OTLP/JSON lines (appended).
Default: ``./otel-livekit-traces.jsonl``."""

# --- per-call features (otel_livekit/sessions/) -------------------------------------------
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The GenAI conventions' switch: NO_CONTENT (default), SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT.
Without ``OTEL_LIVEKIT_CONTENT`` it applies to every destination; with it, it only says
which kind (span attributes, span events) the listed destinations get."""

OTEL_LIVEKIT_CONTENT = "OTEL_LIVEKIT_CONTENT"
"""Destinations that receive conversation content (prompts, replies, transcripts, tool
payloads), comma-separated: the backend's name (e.g. ``langfuse``), the names given to
``span_exporters=``, ``processors`` (your ``span_processors=``), ``logs``, ``report``; or
``all`` / ``none``. Default: none."""

OTEL_LIVEKIT_SESSION_ID = "OTEL_LIVEKIT_SESSION_ID"
"""Session id on every span (``session.id``, ``langfuse.session.id``). Default: the room name."""

OTEL_LIVEKIT_USER_ID = "OTEL_LIVEKIT_USER_ID"
"""User id on every span (``user.id``, ``langfuse.user.id``). Default: the remote
participant's identity."""

OTEL_LIVEKIT_TRACE_NAME = "OTEL_LIVEKIT_TRACE_NAME"
"""Langfuse trace name. Default: ``voice_call``."""

OTEL_LIVEKIT_TAGS = "OTEL_LIVEKIT_TAGS"
"""Comma-separated Langfuse trace tags. Default: none."""

OTEL_LIVEKIT_LANGFUSE_MAPPING = "OTEL_LIVEKIT_LANGFUSE_MAPPING"
"""``true`` adds the Langfuse keys (trace name/tags/metadata, observation types, generation
fields) for any backend. Default: true for the ``langfuse`` backend, false otherwise."""

OTEL_LIVEKIT_REPORT_DIR = "OTEL_LIVEKIT_REPORT_DIR"
"""Directory where each call's session report is written as JSON. Default: not written."""

OTEL_LIVEKIT_LOGS = "OTEL_LIVEKIT_LOGS"
"""``otlp`` exports Python log records and session reports as OTLP logs (endpoint from
``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``/``OTEL_EXPORTER_OTLP_ENDPOINT``, else the backend's
OTLP base); ``none`` turns off the trace/span ids put on Python log records. Default: ids only."""

OTEL_EXPORTER_OTLP_LOGS_ENDPOINT = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"

# --- Prometheus (otel_livekit/export/prometheus.py) ---------------------------------------
PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's multiprocess directory (LiveKit's worker sets it from its
``prometheus_multiproc_dir`` option). When set, the catalogue's metrics are written there so
the worker's ``/metrics`` sums every job process (``otel-livekit doctor`` checks it exists).
Default: unset."""

OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS = "OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS"
"""``auto``, ``true`` or ``false``: write the catalogue's metrics to prometheus-client's
multiprocess files. Default: auto (on when ``PROMETHEUS_MULTIPROC_DIR`` is set)."""

OTEL_LIVEKIT_PROMETHEUS_PORT = "OTEL_LIVEKIT_PROMETHEUS_PORT"
"""Port of a standalone ``/metrics`` endpoint otel_livekit serves itself (0: any free port).
Default: unset (no endpoint)."""

OTEL_LIVEKIT_PROMETHEUS_HOST = "OTEL_LIVEKIT_PROMETHEUS_HOST"
"""Address the standalone endpoint binds. Default: 127.0.0.1 (loopback only)."""

OTEL_LIVEKIT_SPOOL = "OTEL_LIVEKIT_SPOOL"
"""``false`` turns the outage spool off: what the backend does not take in time is dropped
(and counted). Default: true."""

OTEL_LIVEKIT_SPOOL_DIR = "OTEL_LIVEKIT_SPOOL_DIR"
"""Directory of the outage spool, shared by the job processes of a machine (one
subdirectory per destination). Default: ``$XDG_CACHE_HOME/otel_livekit/spool/<service>``
(``~/.cache/...`` without XDG_CACHE_HOME)."""

OTEL_LIVEKIT_SPOOL_MAX_BYTES = "OTEL_LIVEKIT_SPOOL_MAX_BYTES"
"""Size cap of the spool, in bytes, per destination; the oldest batches are dropped (and
counted) beyond it. Default: 67108864 (64 MiB)."""
