"""Span profiles per destination: ``full`` (every span LiveKit makes) or ``lean`` (what a
person reads in Langfuse).

A lean destination keeps the session, user turns, agent turns, the LLM / realtime / TTS / STT
generations, tool calls and any span that failed, and drops LiveKit's plumbing: retries'
inner ``*_run`` spans, nodes, stream adapters, ``agent_speaking`` and lifecycle spans. Nothing
it drops is lost:

- a kept span whose parent was dropped is re-parented to its nearest kept ancestor (the
  parents of dropped spans are remembered at ``on_start``, since a child is often exported
  before its parent ends), so the tree has no orphans;
- a dropped span's numbers (attributes the kept span does not already have) are moved onto
  its nearest kept ancestor, and a failed dropped attempt becomes an event there;
- the session span's one-event-per-change ``agent_state_changed`` / ``user_state_changed``
  become a summary: changes and seconds per state.

Only spans of LiveKit's tracer are dropped; your own spans are always kept.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, StatusCode

from ..export.delivery.health import ExportHealth
from ..gil import PER_GIL_HOLD, let_the_loop_in

logger = logging.getLogger("otel_livekit")

PROFILES = ("lean", "full")
LEAN_KEEP = frozenset({
    "agent_session", "user_turn", "agent_turn", "llm_request", "tts_request", "stt_request",
    "function_tool", "realtime_inference", "agent_handoff",
})  # fmt: skip
LIVEKIT_SCOPES = frozenset({"livekit-agents"})
STATE_EVENTS = {"agent_state_changed": "agent", "user_state_changed": "user"}
MAX_REMEMBERED = 50_000  # dropped spans' parents / pending carries: bounded, oldest first out


def dropped_in_lean(name: str, scope: str) -> bool:
    """LiveKit's plumbing, known from the name when the span starts."""
    return scope in LIVEKIT_SCOPES and name not in LEAN_KEEP


class _Bounded(OrderedDict[int, Any]):
    def put(self, key: int, value: Any) -> None:
        self[key] = value
        if len(self) > MAX_REMEMBERED:
            self.popitem(last=False)


class SpanLineage(SpanProcessor):
    """One per process, only when a destination is lean: at ``on_start`` (a dict store on
    the loop) it notes each span a lean view drops and that span's parent, so a kept span
    exported while its dropped parent is still open is re-parented to the right ancestor."""

    def __init__(self) -> None:
        self._dropped = _Bounded()  # dropped span id → its parent's SpanContext (or None)
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        if span.context is not None and dropped_in_lean(span.name, scope):
            with self._lock:
                self._dropped.put(span.context.span_id, span.parent)

    def dropped(self, span_id: int) -> bool:
        with self._lock:
            return span_id in self._dropped

    def kept_ancestor(self, parent: SpanContext | None) -> SpanContext | None:
        with self._lock:
            for _ in range(64):
                if parent is None or parent.span_id not in self._dropped:
                    return parent
                parent = self._dropped[parent.span_id]
        return parent

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class LeanExporter(SpanExporter):
    """The lean view of every batch, on the export thread; then the destination's chain."""

    def __init__(self, inner: SpanExporter, lineage: SpanLineage, health: ExportHealth | None = None) -> None:
        self.inner = inner
        self.lineage = lineage
        self.health = health
        self._carry = _Bounded()  # kept span id → (attributes, events) moved onto it

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            views = self._lean(spans)
        except Exception:  # never fail the batch over the view
            logger.debug("otel_livekit: lean view failed; the batch goes as it is", exc_info=True)
            views = list(spans)
        return self.inner.export(views) if views else SpanExportResult.SUCCESS

    def _lean(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        kept: list[ReadableSpan] = []
        for i, span in enumerate(spans):  # children end (and are batched) before their parents
            if i and i % PER_GIL_HOLD == 0:
                let_the_loop_in()
            if span.context is not None and self.lineage.dropped(span.context.span_id):
                self._move_onto_ancestor(span)
            else:
                kept.append(span)
        if self.health is not None and len(kept) < len(spans):
            self.health.leave_out(len(spans) - len(kept))
        return [self._view(span) for span in kept]

    def _move_onto_ancestor(self, span: ReadableSpan) -> None:
        target = self.lineage.kept_ancestor(span.parent)
        if target is None:
            return
        carried: tuple[dict[str, Any], list[Event]] = self._carry.get(target.span_id) or ({}, [])
        attrs, events = carried
        for key, value in (span.attributes or {}).items():
            attrs.setdefault(key, value)
        if span.status.status_code is StatusCode.ERROR:
            events.append(Event(f"{span.name} failed", {"error.message": span.status.description or ""},
                                timestamp=span.end_time))  # fmt: skip
        self._carry.put(target.span_id, (attrs, events))

    def _view(self, span: ReadableSpan) -> ReadableSpan:
        if span.context is None:
            return span
        parent = self.lineage.kept_ancestor(span.parent)
        carried = self._carry.pop(span.context.span_id, None)
        attrs: dict[str, Any] = dict(span.attributes or {})
        events = list(span.events)
        if carried:
            for key, value in carried[0].items():
                attrs.setdefault(key, value)
            events.extend(carried[1])
        if any(e.name in STATE_EVENTS for e in events):
            attrs.update(state_summary(events, span.end_time))
            events = [e for e in events if e.name not in STATE_EVENTS]
        if parent is span.parent and not carried and len(events) == len(span.events):
            return span
        return ReadableSpan(
            name=span.name, context=span.context, parent=parent, resource=span.resource,
            attributes=attrs, events=events, links=span.links, kind=span.kind, status=span.status,
            start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )  # fmt: skip

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def state_summary(events: Sequence[Event], end_time: int | None) -> dict[str, Any]:
    """Changes and seconds per state, from the state-change events (each names the new state)."""
    out: dict[str, Any] = {}
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for kind in STATE_EVENTS.values():
        changes = [e for e in events if STATE_EVENTS.get(e.name) == kind]
        if not changes:
            continue
        for event, after in zip(changes, [*changes[1:], None], strict=True):
            state = str((event.attributes or {}).get("lk.new_state", "unknown"))
            counts[f"{kind}.{state}"] += 1
            until = after.timestamp if after is not None else (end_time or event.timestamp)
            seconds[f"{kind}.{state}"] += max(0, until - event.timestamp) / 1e9
    for key, n in counts.items():
        kind, state = key.split(".", 1)
        out[f"voice_agent.session.{kind}_state.{state}.changes"] = n
        out[f"voice_agent.session.{kind}_state.{state}.seconds"] = round(seconds[key], 3)
    return out
