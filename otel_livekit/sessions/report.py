"""The session report at session end: LiveKit's ``SessionReport`` (ids, timings, usage,
close reason, events, transcript when content is allowed) plus the trace id, exported as
an OTLP log record and a span event on the call's ``agent_session`` span, and optionally
written as JSON or handed to a callback."""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import get_job_context
from livekit.agents.voice.report import SessionReport
from opentelemetry import trace
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.sdk.trace import Span

from .content import NO_CONTENT, ContentRule

logger = logging.getLogger("otel_livekit")

EVENT_REPORT = "voice_agent.session.report"
ATTR_REPORT = "voice_agent.session.report"
ATTR_REPORT_CONTENT = "voice_agent.pii.session.report"
"""The report with chat history, events and transcript: content, stripped per destination."""

ReportCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ReportSinks:
    report_dir: Path | None = None
    callback: ReportCallback | None = None
    report_rule: ContentRule = NO_CONTENT
    log: Logger | None = None
    logs_rule: ContentRule = NO_CONTENT
    span_content: bool = False
    """A span destination takes content in events: the span event carries the full report too."""

    @property
    def wants_content(self) -> bool:
        """Whether any sink takes the report with content; if none does, the chat history and
        events are never serialised (a 100-turn call's are ~0.6 MB of JSON, ~35 ms on the
        event loop at close when built and dropped)."""
        to_report = self.report_dir is not None or self.callback is not None
        return (
            self.span_content
            or (self.log is not None and self.logs_rule.any)
            or (to_report and self.report_rule.any)
        )


class Report:
    """One session's report with and without content; each serialised at most once, when a
    sink first asks for it."""

    def __init__(self, bare: dict[str, Any], full: dict[str, Any] | None) -> None:
        self.bare = bare
        self.full = full

    @functools.cached_property
    def bare_json(self) -> str:
        return json.dumps(self.bare, default=str)

    @functools.cached_property
    def full_json(self) -> str:
        return json.dumps(self.full, default=str)

    def body_for(self, rule: ContentRule) -> dict[str, Any]:
        """What a sink under ``rule`` gets: with content when it takes it (then it was built)."""
        return self.full if rule.any and self.full is not None else self.bare

    def json_for(self, rule: ContentRule) -> str:
        return self.bare_json if self.body_for(rule) is self.bare else self.full_json


def livekit_report(session: Any) -> Any:
    """LiveKit's own report: the job's when inside one, else built the same way. (Imported
    with this module: a job process that imported it first at its call's end paid ~3 ms on
    the event loop.)"""
    ctx = get_job_context(required=False)
    if ctx is not None:
        try:
            return ctx.make_session_report(session)
        except Exception:  # e.g. the recorder is still recording
            logger.debug("otel_livekit: make_session_report failed", exc_info=True)
    started = getattr(session, "_started_at", None)
    report = SessionReport(
        job_id="", room_id="", room="",
        options=session.options,
        events=list(getattr(session, "_recorded_events", [])),
        chat_history=session.history.copy(),
        model_usage=session.usage.model_usage,
        started_at=started,
    )  # fmt: skip
    if started:
        report.duration = report.timestamp - started
    return report


_CONTENT_KEYS = ("chat_history", "events")
"""What ``SessionReport.to_dict(include_chat_history=False, include_events=False)`` omits."""


def build(session: Any, ids: dict[str, str], transcript: list[dict[str, Any]], summary: Any,
          content: bool = True) -> Report:  # fmt: skip
    """Runs on the event loop at the session's close: LiveKit's report read once (``to_dict``
    with chat history and events only when ``content``), no JSON made here."""
    sr = livekit_report(session)
    full: dict[str, Any] | None = None
    if content:
        full = sr.to_dict()
        bare = {k: v for k, v in full.items() if k not in _CONTENT_KEYS}
        events = full.get("events", [])
        bare["events"] = [{"type": e.get("type"), "created_at": e.get("created_at")} for e in events]
    else:  # the same keys, in the same order, without serialising what is left out
        bare = sr.to_dict(include_chat_history=False, include_events=False)
        bare["events"] = [{"type": e.type, "created_at": e.created_at}
                          for e in sr.events if e.type != "metrics_collected"]  # fmt: skip
    for d in (full, bare):
        if d is None:
            continue
        d.update(ids)
        if summary is not None:
            d["cost_usd"] = summary.cost_usd
            d["agent_turns"] = summary.agent_turns
            d["interruptions"] = summary.interruptions
            d["turn_budgets"] = summary.turn_budgets
    bare["turns"] = [{k: v for k, v in line.items() if k != "text"} for line in transcript]
    rows = bare["turns"]
    if full is not None:
        full["transcript"] = transcript
        rows = [*rows, *transcript]
    budgets = {b["turn_id"]: b for b in getattr(summary, "turn_budgets", []) if b.get("turn_id")}
    for row in rows:  # the agent's line carries its turn's wait
        if row.get("role") == "assistant" and row.get("turn_id") in budgets:
            row["budget"] = budgets[row["turn_id"]]
    return Report(bare, full)


def emit(sinks: ReportSinks, span: Span | None, report: Report) -> None:
    """Never raises; file writing runs off the event loop."""
    for step in (_span_event, _log_record, _file, _callback):
        try:
            step(sinks, span, report)
        except Exception:
            logger.warning("otel_livekit: session report %s failed", step.__name__, exc_info=True)


def _span_event(sinks: ReportSinks, span: Span | None, report: Report) -> None:
    if span is None or not span.is_recording():
        return
    attributes = {
        ATTR_REPORT: report.bare_json,
        "voice_agent.close_reason": str(report.bare.get("close_reason", "")),
    }
    if sinks.span_content and report.full is not None:  # else every destination would strip it
        attributes[ATTR_REPORT_CONTENT] = report.full_json
    span.add_event(EVENT_REPORT, attributes)


def _log_record(sinks: ReportSinks, span: Span | None, report: Report) -> None:
    if sinks.log is None:
        return
    bare = report.bare
    ctx = trace.set_span_in_context(span) if span is not None else None
    sinks.log.emit(
        context=ctx,
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body=report.json_for(sinks.logs_rule),
        event_name=EVENT_REPORT,
        attributes={k: v for k, v in bare.items() if k in ("session_id", "user_id", "trace_id", "job_id")},
    )


def _safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value)[:80] or "session"


def _file(sinks: ReportSinks, span: Span | None, report: Report) -> None:
    if sinks.report_dir is None:
        return
    bare, body = report.bare, report.body_for(sinks.report_rule)
    path = sinks.report_dir / f"{_safe_name(str(bare.get('session_id', '')))}-{bare.get('trace_id', '')}.json"

    def write() -> None:
        try:
            sinks.report_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            tmp = path.with_suffix(".tmp")
            # indented: the pure-Python encoder, which lets the loop have the GIL between steps
            tmp.write_text(json.dumps(body, indent=2, default=str))
            tmp.replace(path)
        except Exception:
            logger.warning("otel_livekit: could not write the session report to %s", path, exc_info=True)

    threading.Thread(target=write, name="otel_livekit-report", daemon=False).start()


def _callback(sinks: ReportSinks, span: Span | None, report: Report) -> None:
    if sinks.callback is not None:  # a plain JSON dict, as in the file
        sinks.callback(json.loads(report.json_for(sinks.report_rule)))
