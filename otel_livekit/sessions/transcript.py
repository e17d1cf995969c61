"""User and agent utterances as span events on their turns, with turn id, time and the
interrupted flag; the text sits in a content attribute the per-destination rules strip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Span

from .. import semconv as sc
from .langfuse import TURN_ID

EVENT_TRANSCRIPT = "voice_agent.transcript"
ATTR_ROLE = "voice_agent.transcript.role"
ATTR_INTERRUPTED = "voice_agent.transcript.interrupted"
ATTR_ITEM_ID = "voice_agent.transcript.item_id"
ATTR_TEXT = "voice_agent.pii.transcript.text"
"""Content: a ``pii`` segment, so LiveKit's rule and ours both withhold it."""

MAX_LINES = 500


@dataclass
class Transcript:
    """One call's utterances, for the session report (bounded)."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    def add(self, item: Any, session_span: Span | None) -> None:
        if getattr(item, "type", None) != "message" or item.role not in ("user", "assistant"):
            return
        current = trace.get_current_span()
        span: Any = current if current.is_recording() else session_span
        attrs = getattr(span, "attributes", None) or {}
        turn = attrs.get(TURN_ID) or attrs.get(sc.LK_SPEECH_ID)
        line: dict[str, Any] = {
            "role": item.role,
            "created_at": item.created_at,
            "interrupted": bool(item.interrupted),
            "turn_id": str(turn) if turn else None,
            "item_id": item.id,
            "text": item.text_content or "",
        }
        if len(self.lines) < MAX_LINES:
            self.lines.append(line)
        if span is None or not span.is_recording():
            return
        event: dict[str, Any] = {
            ATTR_ROLE: item.role,
            ATTR_INTERRUPTED: line["interrupted"],
            ATTR_ITEM_ID: item.id,
            ATTR_TEXT: line["text"],
        }
        if turn:
            event[TURN_ID] = str(turn)
        span.add_event(EVENT_TRANSCRIPT, event, timestamp=int(item.created_at * 1e9))
