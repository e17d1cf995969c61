"""Logs tied to the call: trace/span ids on every Python log record (``otelTraceID``,
``otelSpanID`` for text formats) and, opt-in, an OTel ``LoggerProvider`` exporting the
agent's log records (``livekit.agents`` and the user's loggers) over OTLP."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from .. import environment_variables as ev
from ..errors import ConfigurationError
from .content import ContentRule, filter_attributes, is_content_attribute

LOG_MODES = ("ids", "otlp", "none")
_QUIET = ("opentelemetry", "urllib3", "requests")


def log_mode(value: str | None, env: Mapping[str, str]) -> str:
    raw = (value or env.get(ev.OTEL_LIVEKIT_LOGS) or "ids").strip().lower()
    if raw not in LOG_MODES:
        var = "logs=" if value else ev.OTEL_LIVEKIT_LOGS
        raise ConfigurationError(f"{var} must be one of {', '.join(LOG_MODES)}, got {raw!r}",
                                 variable=None if value else var)  # fmt: skip
    return raw


def logs_endpoint_problem(env: Mapping[str, str], backend: str, traces: object) -> str | None:
    """Why ``otlp`` logs would have nowhere to go, or None."""
    if env.get(ev.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) or env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT):
        return None
    endpoint = getattr(traces, "endpoint", None)
    if backend != "langfuse" and endpoint and endpoint.endswith("/v1/traces"):
        return None
    return f"needs {ev.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT} (the {backend!r} backend takes no OTLP logs)"


class ContentLogFilter(LogRecordProcessor):
    """Withholds content attributes (``lk.pii.*``, GenAI content keys) from log records
    when the ``logs`` destination takes no content; runs before the exporting processor."""

    def __init__(self, rule: ContentRule) -> None:
        self.rule = rule

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        attrs = record.attributes or {}
        if not self.rule.attributes and any(is_content_attribute(k) for k in attrs):
            record.attributes = filter_attributes(attrs)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _FlushLogsWithTraces(SpanProcessor):
    """Lets the tracer provider's flush/shutdown (bounded by the handle) carry the logs."""

    def __init__(self, provider: LoggerProvider) -> None:
        self.provider = provider

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        self.provider.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.provider.force_flush(timeout_millis))


class _NotOurOwn(logging.Filter):
    """The exporters' own log lines must not loop back into the exporter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_QUIET)


class CallLogs:
    def __init__(self, mode: str, tracer_provider: TracerProvider, resource: Resource,
                 exporter: LogRecordExporter | None, rule: ContentRule) -> None:  # fmt: skip
        self.mode = mode
        self.provider: LoggerProvider | None = None
        self._handler: logging.Handler | None = None
        self._instrumented = False
        if mode == "none":
            return
        if not LoggingInstrumentor().is_instrumented_by_opentelemetry:
            LoggingInstrumentor().instrument(
                tracer_provider=tracer_provider,
                inject_trace_context=True,
                enable_log_auto_instrumentation=False,
            )
            self._instrumented = True
        if mode == "otlp" and exporter is not None:
            self.provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            self.provider.add_log_record_processor(ContentLogFilter(rule))
            self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
            tracer_provider.add_span_processor(_FlushLogsWithTraces(self.provider))
            handler = LoggingHandler(logger_provider=self.provider)
            handler.addFilter(_NotOurOwn())
            logging.getLogger().addHandler(handler)
            self._handler = handler

    def uninstall(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._instrumented:
            LoggingInstrumentor().uninstrument()
            self._instrumented = False
