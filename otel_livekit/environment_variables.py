"""Every environment variable otel_livekit reads, declared once.

The standard ``OTEL_*`` variables are read by the OpenTelemetry SDK itself wherever it
can (sampler, resource, exporter endpoints, headers, timeout, compression, temporality,
export interval); the ones below are the names this package reads directly.
"""

from __future__ import annotations

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
"""Whether transcripts, prompts and tool payloads may leave in spans (LiveKit's
``allow_pii``). Default: LiveKit's own default (``LIVEKIT_TELEMETRY_ALLOW_PII``, else true)."""

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
