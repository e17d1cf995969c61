"""Builds the per-call features from ``setup_tracing()``'s arguments and the environment,
and attaches them to each session (one call from the session instrumentation)."""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents.metrics.base import EOUMetrics
from opentelemetry import trace
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from .. import semconv as sc
from ..installation import Installation, installed
from .calls import call_info, job_info, session_starting
from .content import ContentPolicy, DestinationExporter, DestinationProcessor, span_view
from .langfuse import TURN_ID, CallAttributesProcessor, CallDefaults
from .listeners import Listener
from .logs import CallLogs
from .report import ReportCallback, ReportSinks, build, emit
from .transcript import Transcript

logger = logging.getLogger("otel_livekit")

PROCESSORS = "processors"
LOGS = "logs"
REPORT = "report"


@dataclass
class SessionFeatures:
    policy: ContentPolicy
    defaults: CallDefaults
    processor: CallAttributesProcessor
    sinks: ReportSinks = field(default_factory=ReportSinks)
    logs: CallLogs | None = None

    def exporter(self, inner: SpanExporter, destination: str) -> SpanExporter:
        return DestinationExporter(inner, self.policy.rule(destination), self.defaults.langfuse)

    def view(self, destination: str) -> Callable[[ReadableSpan], ReadableSpan | None]:
        """The destination's view, to apply where its spans are queued."""
        return span_view(self.policy.rule(destination), self.defaults.langfuse)

    def span_processor(self, inner: SpanProcessor) -> SpanProcessor:
        return DestinationProcessor(inner, self.policy.rule(PROCESSORS), self.defaults.langfuse)


def configure(
    *,
    policy: ContentPolicy,
    defaults: CallDefaults,
    report_dir: Path | None,
    on_report: ReportCallback | None,
    span_destinations: Sequence[str] = (),
) -> SessionFeatures:
    """From the resolved configuration (checked there); builds, installs nothing."""
    features = SessionFeatures(policy, defaults, CallAttributesProcessor(defaults))
    features.sinks = ReportSinks(
        report_dir=report_dir,
        callback=on_report,
        report_rule=policy.rule(REPORT),
        logs_rule=policy.rule(LOGS),
        span_content=any(policy.rule(d).events for d in span_destinations),
    )
    return features


def install(
    installation: Installation,
    features: SessionFeatures,
    *,
    tracer_provider: TracerProvider,
    resource: Resource,
    mode: str,
    log_exporter: LogRecordExporter | None,
) -> None:
    exporter = log_exporter if mode == "otlp" else None
    features.logs = CallLogs(mode, tracer_provider, resource, exporter, features.policy.rule(LOGS))
    if features.logs.provider is not None:
        log = features.logs.provider.get_logger("otel_livekit.sessions")
        features.sinks = dataclasses.replace(features.sinks, log=log)
    installation.features = features
    installation.add("per-call features", lambda: _uninstall(installation, features))


def _uninstall(installation: Installation, features: SessionFeatures) -> None:
    if features.logs is not None:
        features.logs.uninstall()
    if installation.features is features:
        installation.features = None


class _CallState:
    """Per session, released with it: the transcript so far and where to report."""

    def __init__(self, features: SessionFeatures, inst: Any, session: Any) -> None:
        self.features = features
        self.recorder = inst.recorder
        self._inst = weakref.ref(inst)  # the instrumentation holds this state: no cycle back
        self._session = weakref.ref(session)
        self.transcript = Transcript()

    def session_span(self) -> Any:
        return self.recorder.find_near(sc.SPAN_AGENT_SESSION)

    def on_item(self, ev: Any) -> None:
        try:
            self.transcript.add(ev.item, self.session_span())
        except Exception:
            logger.debug("otel_livekit: transcript event failed", exc_info=True)

    def on_transcribed(self, ev: Any) -> None:
        """A final STT transcript: the user's words on the ``user_turn`` still open now (the
        chat item comes after the turn's span has ended). Never raises."""
        if not getattr(ev, "is_final", False):
            return
        try:
            self.transcript.heard(ev, self.recorder.find_near(sc.SPAN_USER_TURN))
        except Exception:
            logger.debug("otel_livekit: transcript event failed", exc_info=True)

    def on_metrics(self, ev: Any) -> None:
        """End of the user's speech names the speech that answers it: the user turn gets
        the same turn id as the agent turn (its span is still open here). Never raises."""
        metrics = getattr(ev, "metrics", None)
        if not isinstance(metrics, EOUMetrics) or not metrics.speech_id:
            return
        try:
            span = self.recorder.find_near(sc.SPAN_USER_TURN)
            if span is not None and span.is_recording():
                span.set_attribute(TURN_ID, metrics.speech_id)
                self.transcript.said_on(span, metrics.speech_id)
        except Exception:
            logger.debug("otel_livekit: turn id on the user turn failed", exc_info=True)

    def on_close(self, ev: Any) -> None:
        session = self._session()
        if session is None:
            return
        try:
            span = self.session_span()
            # a call the sampler dropped has no recording span: its context still names the trace
            ctx = (span or trace.get_current_span()).get_span_context()
            session_id, user_id = self.features.processor.call_ids(call_info(session), job_info())
            ids = {
                "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else "",
                "span_id": format(ctx.span_id, "016x") if ctx.is_valid else "",
                "session_id": session_id or "",
                "user_id": user_id or "",
            }
            sinks = self.features.sinks
            summary = getattr(self._inst(), "summary", None)
            emit(sinks, span, build(session, ids, self.transcript.lines, summary, sinks.wants_content))
        except Exception:
            logger.warning("otel_livekit: session report failed", exc_info=True)
        self.transcript = Transcript()


def attach(session: Any, inst: Any) -> _CallState | None:
    """Called once per session from its instrumentation, before ``session.start()``
    creates the ``agent_session`` span; the instrumentation hands it ``metrics_collected``
    (one subscriber per session). Never raises."""
    try:
        session_starting(session)
        features = installed().features
        if features is None:
            return None
        state = _CallState(features, inst, session)
        session.on("conversation_item_added", Listener(state.on_item))
        session.on("user_input_transcribed", Listener(state.on_transcribed))
        session.on("close", Listener(state.on_close))
        return state
    except Exception:
        logger.warning("otel_livekit: could not attach per-call features", exc_info=True)
        return None
