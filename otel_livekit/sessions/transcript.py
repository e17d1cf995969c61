"""User and agent utterances as span events on their turns, with turn id, time and the
interrupted flag; the text sits in a content attribute the per-destination rules strip."""

from __future__ import annotations

import time
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
    heard_on_user_turn: bool = False
    """The user's last words already sit on their ``user_turn``: the chat item that follows
    adds the line to the report, not a second event."""

    pending: list[tuple[str, int]] = field(default_factory=list)
    """Final transcripts of the open user turn, stamped once its turn id is known."""

    def heard(self, ev: Any, user_turn: Span | None) -> None:
        if user_turn is None or not user_turn.is_recording() or not getattr(ev, "transcript", ""):
            return
        self.pending.append((str(ev.transcript), time.time_ns()))
        if turn := (user_turn.attributes or {}).get(TURN_ID):
            self.said_on(user_turn, str(turn))

    def said_on(self, user_turn: Span, turn_id: str) -> None:
        """The end of the user's turn named it: the words heard in it go on its span."""
        pending, self.pending = self.pending, []
        for text, at in pending:
            event: dict[str, Any] = {ATTR_ROLE: "user", ATTR_INTERRUPTED: False, ATTR_TEXT: text,
                                     TURN_ID: turn_id}  # fmt: skip
            user_turn.add_event(EVENT_TRANSCRIPT, event, timestamp=at)
            self.heard_on_user_turn = True

    def add(self, item: Any, session_span: Span | None, user_turn: Span | None = None) -> None:
        """On the span where it happened: the user's words on the open ``user_turn`` (a
        spoken turn), the agent's on the current span (its ``agent_turn``)."""
        if getattr(item, "type", None) != "message" or item.role not in ("user", "assistant"):
            return
        current = trace.get_current_span()
        span: Any = current if current.is_recording() else session_span
        if item.role == "user" and user_turn is not None and user_turn.is_recording():
            span = user_turn
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
        if item.role == "user" and self.heard_on_user_turn:
            self.heard_on_user_turn = False  # a spoken turn: already on its user_turn
            return
        if item.role == "user":
            self.pending.clear()  # never stamped (no end of turn): the chat item carries them
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
