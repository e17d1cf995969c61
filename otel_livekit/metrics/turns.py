"""Per-turn latency state, keyed by LiveKit's ``speech_id``, bounded in size and age.

A turn's parts arrive as separate events: EOU (audio turns only), then LLM, then TTS; the
assistant message with LiveKit's ``e2e_latency`` comes last. Turns that never complete
(interrupted before audio, errors) are evicted, never kept for the whole call.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from opentelemetry.util.types import Attributes


@dataclass
class TurnState:
    speech_id: str
    created: float = field(default_factory=time.monotonic)
    eou_delay: float | None = None
    llm_ttft: float | None = None
    llm_attributes: Attributes = None
    tts_ttfb: float | None = None
    tts_attributes: Attributes = None
    total: float | None = None

    def parts_sum(self) -> float | None:
        if self.llm_ttft is None or self.tts_ttfb is None:
            return None
        return (self.eou_delay or 0.0) + self.llm_ttft + self.tts_ttfb


@dataclass
class Request:
    """An LLM or realtime request on the wall clock (Unix seconds), for the turn budget."""

    start: float
    end: float
    ttft: float
    speech_id: str | None
    attributes: Attributes
    realtime: bool = False
    cancelled: bool = False
    """Cut short (an interruption): on the path only of the turn it was cut in."""


@dataclass
class UserInput:
    """The user's side of the turn being answered: spoken (its last word, the endpointing
    wait, the hook) or typed (when the text came in)."""

    stopped_at: float | None = None
    text_at: float | None = None
    eou_delay: float | None = None
    hook_end: float | None = None
    hook_seconds: float | None = None


RECENT = 32
"""Requests and tool groups kept per session for the budget: a turn uses the few since the
user's last word; older ones fall off (bounded, whatever the call's length)."""


class TurnTracker:
    """One session's running state: its open turns (bounded), the recent requests and tool
    groups the turn budget is cut from, and its cost so far."""

    def __init__(self, max_turns: int = 64, max_age: float = 600.0) -> None:
        self.cost_usd = 0.0
        self.requests: deque[Request] = deque(maxlen=RECENT)
        self.tool_groups: deque[tuple[float, float]] = deque(maxlen=RECENT)
        self.user: UserInput | None = None
        self.heard_end_at: float | None = None
        """When the VAD last said the user stopped (not back-dated): the end of its silence."""
        self.answered: deque[str] = deque(maxlen=RECENT)
        """Speech ids whose reply message came (an interrupted speech without one is budgeted
        at its end)."""
        self.handoff = False
        """An agent hand-off since the last reply: the next reply is the new agent's first."""
        self._turns: OrderedDict[str, TurnState] = OrderedDict()
        self.max_turns = max_turns
        self.max_age = max_age
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._turns)

    def get(self, speech_id: str) -> TurnState:
        state = self._turns.get(speech_id)
        if state is None:
            self._evict()
            state = self._turns[speech_id] = TurnState(speech_id)
        return state

    def peek(self, speech_id: str) -> TurnState | None:
        return self._turns.get(speech_id)

    def pop(self, speech_id: str) -> TurnState | None:
        return self._turns.pop(speech_id, None)

    def _evict(self) -> None:
        now = time.monotonic()
        while self._turns:
            oldest = next(iter(self._turns.values()))
            if len(self._turns) < self.max_turns and now - oldest.created < self.max_age:
                break
            self._turns.popitem(last=False)
            self.evicted += 1
