"""Attaching to an ``AgentSession``: its events become KPIs, turn completions and a usage
summary at the end. ``setup_tracing()`` does it for every session (it wraps
``AgentSession.start``); ``instrument_session()`` is the same for one session by hand."""

from __future__ import annotations

import functools
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession
from opentelemetry import metrics, trace

from .. import semconv as sc
from ..installation import Installation, installed
from ..metrics.budget import TurnBudget
from ..metrics.catalogue import METER_NAME
from ..metrics.instruments import Instruments
from ..metrics.pricing import load_prices
from ..metrics.recorder import Recorder
from ..metrics.turns import TurnTracker
from .features import attach as attach_call_features
from .listeners import Listener

logger = logging.getLogger("otel_livekit")

MAX_BUDGETS = 500
"""Turn budgets kept per call for its report (a long call keeps its first 500)."""

_ERROR_COMPONENTS = {
    "llm_error": "llm", "stt_error": "stt", "tts_error": "tts",
    "realtime_model_error": "realtime", "interruption_detection_error": "interruption",
}  # fmt: skip


@dataclass
class SessionSummary:
    """One call, at its end: LiveKit's own ``session.usage`` plus what we add to it."""

    close_reason: str
    duration: float
    agent_turns: int
    interruptions: int
    usage: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    turn_budgets: list[dict[str, Any]] = field(default_factory=list)
    """Each budgeted turn's wait, part by part, in the order the turns ended."""


class SessionInstrumentation:
    """Per-session state: LiveKit can run several sessions in one process."""

    def __init__(self, session: AgentSession[Any], recorder: Recorder) -> None:
        # weak: this object is the value of a WeakKeyDictionary keyed by the session, so a
        # strong reference here would keep every closed call (and its transcript) alive
        self._session = weakref.ref(session)
        self.recorder = recorder
        self.turns = TurnTracker()
        self.started = time.monotonic()
        self.agent_turns = 0
        self.interruptions = 0
        self.summary: SessionSummary | None = None
        self.call: Any = None  # the per-call features' state (sessions/features.py), if on
        self.budgets: list[dict[str, Any]] = []  # bounded (MAX_BUDGETS), for the report
        handlers = {  # local: a dict of bound methods on self would be a reference cycle
            "conversation_item_added": self._on_item,
            "agent_false_interruption": self._on_false_interruption,
            "function_tools_executed": self._on_tools,
            "speech_created": self._on_speech,
            "user_state_changed": self._on_user_state,
            "error": self._on_error,
            "close": self._on_close,
        }
        # rtc.EventEmitter.on: AgentSession.on warns that metrics_collected is deprecated,
        # yet it is still the only source of VAD health and cancelled requests
        # — the one subscriber per session: the per-call features hear it from here
        rtc.EventEmitter.on(session, "metrics_collected", self._safe(self._on_metrics))  # type: ignore[arg-type]
        for name, handler in handlers.items():
            session.on(name, self._safe(handler))  # type: ignore[arg-type]
        recorder.add("voice_agent.sessions.started", 1)
        recorder.instruments.counter("voice_agent.sessions.active").add(1)
        self.call = attach_call_features(session, self)  # sessions/: call ids, transcript, report

    def _safe(self, handler: Any) -> Any:
        return Listener(handler, self._failed)

    def _failed(self, name: str) -> None:
        self.recorder.once.warn(name, "otel_livekit: %s failed", name, exc_info=True)

    def _on_metrics(self, ev: Any) -> None:
        self.recorder.record(getattr(ev, "metrics", ev), self.turns)
        if self.call is not None:
            self.call.on_metrics(ev)

    def _on_item(self, ev: Any) -> None:
        item = ev.item
        kind = getattr(item, "type", None)
        if kind == "agent_handoff" and getattr(item, "old_agent_id", None):
            self.turns.handoff = True  # the next reply is the new agent's first
            return
        if kind != "message":
            return
        if item.role == "user":
            self.recorder.user_input(item.metrics or {}, item.created_at, self.turns)
            return
        if item.role != "assistant":
            return
        self.agent_turns += 1
        if item.interrupted:
            self._interrupted("interrupted")
        # LiveKit adds the reply inside its agent_turn span: that span names the speech
        span = trace.get_current_span()
        attrs = getattr(span, "attributes", None) or {}
        speech_id = attrs.get(sc.LK_SPEECH_ID)
        turn_span: Any = span if speech_id else None
        if not speech_id:  # no tracing: the speech playing now is the one this reply ends
            speech_id = getattr(getattr(self.session, "current_speech", None), "id", None)
        self._keep(self.recorder.finish_turn(
            str(speech_id) if speech_id else None, item.metrics or {}, self.turns, turn_span,
            created_at=item.created_at, interrupted=bool(item.interrupted), session=self.session,
        ))  # fmt: skip

    def _on_user_state(self, ev: Any) -> None:
        """speaking -> listening is emitted as the VAD reports the end of speech; the event's
        ``created_at`` is back-dated to the user's last word, so the clock now is when the
        VAD's silence ended."""
        if ev.new_state == "listening" and ev.old_state == "speaking":
            self.turns.heard_end_at = time.time()

    def _keep(self, budget: TurnBudget | None) -> None:
        if budget is not None and len(self.budgets) < MAX_BUDGETS:
            self.budgets.append(budget.as_dict())

    def _on_speech(self, ev: Any) -> None:
        handle = ev.speech_handle
        handle.add_done_callback(self._safe(self._on_speech_done))

    def _on_speech_done(self, handle: Any) -> None:
        """A reply cut before it said anything adds no message: its budget ends here."""
        speech_id = handle.id
        if not handle.interrupted or speech_id in self.turns.answered:
            return
        span = self.recorder.span_with(sc.SPAN_AGENT_TURN, sc.LK_SPEECH_ID, speech_id)
        self._keep(self.recorder.finish_turn(speech_id, {}, self.turns, span, created_at=time.time(),
                                             interrupted=True, session=self.session))  # fmt: skip

    def _interrupted(self, kind: str) -> None:
        self.interruptions += 1
        self.recorder.add("voice_agent.interruptions", 1, {sc.INTERRUPTION_KIND: kind})

    def _on_false_interruption(self, ev: Any) -> None:
        self._interrupted("false")

    def _on_tools(self, ev: Any) -> None:
        self.recorder.tool_group([c.created_at for c in ev.function_calls],
                                 [o.created_at for o in ev.function_call_outputs], self.turns)  # fmt: skip
        for call, output in zip(ev.function_calls, ev.function_call_outputs, strict=False):
            attrs = {sc.GEN_AI_TOOL_NAME: call.name}
            self.recorder.add("voice_agent.tool.calls", 1, attrs)
            if getattr(output, "is_error", False):
                self.recorder.add("voice_agent.tool.errors", 1, attrs)

    def _on_error(self, ev: Any) -> None:
        error = ev.error
        component = _ERROR_COMPONENTS.get(getattr(error, "type", ""), "other")
        cause = getattr(error, "error", error)
        self.recorder.add("voice_agent.errors", 1, {
            sc.COMPONENT: component,
            sc.ERROR_RECOVERABLE: str(bool(getattr(error, "recoverable", False))).lower(),
            sc.ERROR_TYPE: type(cause).__name__,
        })  # fmt: skip

    @property
    def session(self) -> AgentSession[Any] | None:
        """The session, while anything else still holds it."""
        return self._session()

    def _on_close(self, ev: Any) -> None:
        reason = getattr(getattr(ev, "reason", None), "value", None) or str(ev.reason)
        duration = time.monotonic() - self.started
        r = self.recorder
        r.add("voice_agent.sessions.ended", 1, {sc.CLOSE_REASON: reason})
        r.instruments.counter("voice_agent.sessions.active").add(-1)
        r.hist("voice_agent.session.duration", duration, {sc.CLOSE_REASON: reason})
        r.hist("voice_agent.session.turns", self.agent_turns)
        self.summary = self._summarize(reason, duration)
        r.annotate(r.find_near(sc.SPAN_AGENT_SESSION), {
            sc.ATTR_SESSION_TURNS: self.agent_turns, sc.ATTR_SESSION_COST: self.summary.cost_usd,
        })  # fmt: skip
        logger.info("otel_livekit: session ended: %s", self.summary)
        self.turns = TurnTracker()  # free what never completed

    def _summarize(self, reason: str, duration: float) -> SessionSummary:
        """LiveKit's usage as it counts it; the cost as the recorder priced each event (the
        same figures as ``voice_agent.cost``, never priced a second time)."""
        session = self.session
        usage = list(session.usage.model_usage) if session is not None else []
        cost = self.turns.cost_usd
        return SessionSummary(
            close_reason=reason,
            duration=duration,
            agent_turns=self.agent_turns,
            interruptions=self.interruptions,
            usage=[u.model_dump() for u in usage],
            cost_usd=cost,
            turn_budgets=list(self.budgets),
        )


def instrument_session(
    session: AgentSession[Any], recorder: Recorder | None = None
) -> SessionInstrumentation:
    """Attach to one session (idempotent). ``setup_tracing()`` already does this for every
    session it sees start; call it yourself only with ``OTEL_LIVEKIT_INSTRUMENT_SESSIONS=false``."""
    sessions = installed().sessions
    existing: SessionInstrumentation | None = sessions.get(session)
    if existing is not None:
        return existing
    inst = sessions[session] = SessionInstrumentation(session, recorder or default_recorder())
    return inst


def instrumentation_of(session: AgentSession[Any]) -> SessionInstrumentation | None:
    found: SessionInstrumentation | None = installed().sessions.get(session)
    return found


def default_recorder() -> Recorder:
    """The recorder setup_tracing() installed; without it, one on the global meter (no span
    enrichment, shipped prices)."""
    process = installed()
    with process.lock:
        if process.recorder is None:
            process.recorder = Recorder(Instruments(metrics.get_meter(METER_NAME)),
                                        load_prices(None, os.environ))  # fmt: skip
        recorder: Recorder = process.recorder
        return recorder


def install(installation: Installation, recorder: Recorder, *, auto: bool) -> None:
    """Hand the recorder down; with ``auto``, instrument every session that starts. Both
    are taken back by ``installation.uninstall()``."""
    installation.recorder = recorder
    installation.add("session recorder", lambda: setattr(installation, "recorder", None))
    installation.add("sample drainer", recorder.instruments.pending.close)
    if auto:
        install_auto_instrumentation(installation, recorder)


def install_auto_instrumentation(installation: Installation, recorder: Recorder) -> None:
    """Wrap ``AgentSession.start`` so every session is instrumented before it starts."""
    if installation.original_start is not None:
        return
    original = installation.original_start = AgentSession.start

    @functools.wraps(original)
    async def start(self: AgentSession[Any], *args: Any, **kwargs: Any) -> Any:
        try:
            instrument_session(self, recorder)
        except Exception:
            logger.warning("otel_livekit: could not instrument the session", exc_info=True)
        return await original(self, *args, **kwargs)

    AgentSession.start = start  # type: ignore[method-assign]
    installation.add("AgentSession.start patch", lambda: uninstall_auto_instrumentation(installation))


def uninstall_auto_instrumentation(installation: Installation) -> None:
    if installation.original_start is not None:
        AgentSession.start = installation.original_start  # type: ignore[method-assign]
        installation.original_start = None
