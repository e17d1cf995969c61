"""Where a turn's silence went: the critical path from the user's last word (or text input)
to the agent's first audio, cut into named parts that add up to the wait.

Each source (the VAD's silence, endpointing, the ``on_user_turn_completed`` hook,
tool-calling LLM requests, tools, the reply's LLM, its first sentence, TTS, playback) gives
an interval on the wall clock. ``walk`` goes through them in the order they started with a
cursor from the start of the wait: a part counts only the time after the cursor (so overlaps
are never counted twice, and preemptive generation counts only what is left after the end of
turn), and any time nothing accounts for is the ``residual``. The parts telescope: they sum
to the wait by construction, to the float.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("otel_livekit")

# the parts, in the order they happen on a spoken turn with tools
VAD_SILENCE = "vad_silence"
ENDPOINTING = "endpointing"
ON_USER_TURN_COMPLETED = "on_user_turn_completed"
TOOL_LLM = "tool_llm"
TOOL = "tool"
LLM_TTFT = "llm_ttft"
REALTIME_TTFT = "realtime_ttft"
FIRST_SENTENCE = "first_sentence"
TTS_TTFB = "tts_ttfb"
PLAYBACK = "playback"
RESIDUAL = "residual"

PARTS: tuple[str, ...] = (VAD_SILENCE, ENDPOINTING, ON_USER_TURN_COMPLETED, TOOL_LLM, TOOL,
                          LLM_TTFT, REALTIME_TTFT, FIRST_SENTENCE, TTS_TTFB, PLAYBACK, RESIDUAL)  # fmt: skip
"""Every part name: the values of the histogram's ``voice_agent.turn.part`` attribute."""

PART_DESCRIPTIONS: dict[str, str] = {
    VAD_SILENCE: "the user's last word to the VAD's end of speech (the silence it waits for, "
    "min_silence_duration, and its inference)",
    ENDPOINTING: "the VAD's end of speech to the end-of-turn decision: the endpointing delay and "
    "the turn detector, which run together (without a VAD event, from the user's last word)",
    ON_USER_TURN_COMPLETED: "your Agent.on_user_turn_completed hook",
    TOOL_LLM: "LLM requests that asked for tools, until the tools started (every round)",
    TOOL: "tool executions (a parallel group counts once, first start to last end)",
    LLM_TTFT: "the reply's LLM request: start to first token",
    REALTIME_TTFT: "realtime model: start of the response to its first audio",
    FIRST_SENTENCE: "first token to the first sentence handed to TTS (llm_node_ttfs - ttft)",
    TTS_TTFB: "the first sentence to the first synthesized audio",
    PLAYBACK: "first audio frame to playback start (avatar or audio output)",
    RESIDUAL: "what no part accounts for: scheduling, agent switch, gaps between steps",
}


@dataclass(frozen=True)
class Interval:
    """One source's time on the wall clock (Unix seconds)."""

    part: str
    start: float
    end: float
    attributes: dict[str, Any] | None = None
    """The provider/model of the part, where it has one."""


@dataclass(frozen=True)
class Segment:
    part: str
    seconds: float


@dataclass
class TurnBudget:
    """One turn's wait, part by part; what the per-turn hook receives."""

    speech_id: str | None
    total: float
    """Seconds from the user's last word (or text input) to the agent's first audio; LiveKit's
    ``e2e_latency`` when it measured it."""
    parts: dict[str, float]
    """Seconds per part (every tool round summed); they add up to ``total``."""
    timeline: list[Segment]
    """The parts in the order they happened, rounds apart, gaps as ``residual``."""
    turn_input: str
    """``audio``, ``text`` or ``realtime``."""
    interrupted: bool = False
    """The reply was cut before its first audio: ``total`` runs up to the interruption."""
    handoff: bool = False
    """The first reply of a new agent: LiveKit measured no e2e; computed here."""
    slo_seconds: float | None = None
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Provider/model per part, where the part has one."""
    session: Any = None
    """The ``AgentSession`` the turn belongs to (for a hook that acts on it)."""
    span: Any = None
    """LiveKit's ``agent_turn`` span (for a hook that tags it)."""

    @property
    def dominant(self) -> str:
        """The part that took the most time."""
        return max(self.parts.items(), key=lambda kv: kv[1])[0] if self.parts else RESIDUAL

    @property
    def slow(self) -> bool:
        return self.slo_seconds is not None and self.total > self.slo_seconds

    def as_dict(self) -> dict[str, Any]:
        """The budget in the session report (no content, no ids beyond the turn's)."""
        return {
            "turn_id": self.speech_id, "input": self.turn_input, "total": self.total,
            "dominant": self.dominant, "slow": self.slow, "interrupted": self.interrupted,
            "handoff": self.handoff, "parts": dict(self.parts),
            "timeline": [[s.part, s.seconds] for s in self.timeline],
        }  # fmt: skip


USER_PARTS = frozenset({VAD_SILENCE, ENDPOINTING})

MIN_PART = 0.001
"""A part shorter than this (an empty hook, playback without an avatar) is named nowhere: its
time joins the residual, so every turn does not list a row of zeros."""


def walk(start: float, end: float, intervals: Iterable[Interval]) -> tuple[list[Segment], dict[str, float]]:
    """The critical path from ``start`` to ``end``: chronological, non-overlapping segments
    (gaps named ``residual``) and the seconds per part. The user's parts (the VAD's silence,
    endpointing) go first: until the turn is decided, work started early (preemptive
    generation) is hidden behind them, not on the path."""
    timeline: list[Segment] = []
    cursor = start
    for iv in sorted(intervals, key=lambda i: (i.part not in USER_PARTS, i.start, i.end)):
        s, e = max(iv.start, cursor), min(iv.end, end)
        if e <= s:
            continue
        if s > cursor:
            timeline.append(Segment(RESIDUAL, s - cursor))
        timeline.append(Segment(iv.part if e - s >= MIN_PART else RESIDUAL, e - s))
        cursor = e
    if end > cursor:
        timeline.append(Segment(RESIDUAL, end - cursor))
    merged: list[Segment] = []  # neighbours of the same part (a split endpointing) join
    for seg in timeline:
        if merged and merged[-1].part == seg.part:
            merged[-1] = Segment(seg.part, merged[-1].seconds + seg.seconds)
        else:
            merged.append(seg)
    parts: dict[str, float] = {}
    for seg in merged:
        parts[seg.part] = parts.get(seg.part, 0.0) + seg.seconds
    parts.setdefault(RESIDUAL, 0.0)
    return merged, parts


Listener = Callable[[TurnBudget], Any]
_listeners: list[Listener] = []


def on_turn_budget(callback: Listener) -> Callable[[], None]:
    """Call ``callback(budget)`` on the agent's event loop as each turn's budget is known
    (when its first audio starts, or at the interruption): log it, tag the trace, switch
    to a faster model. Keep it quick; what it raises is logged once, never seen by the
    agent. Returns a function that removes the callback."""
    _listeners.append(callback)

    def remove() -> None:
        if callback in _listeners:
            _listeners.remove(callback)

    return remove


_failed: set[int] = set()


def notify(budget: TurnBudget) -> None:
    for callback in tuple(_listeners):
        try:
            callback(budget)
        except Exception:
            if id(callback) not in _failed:
                _failed.add(id(callback))
                logger.warning("otel_livekit: the on_turn_budget callback %r failed", callback,
                               exc_info=True)  # fmt: skip


def markdown_table() -> str:
    """docs/latency.md's table of parts."""
    rows = ["| part | what it is |", "|---|---|"]
    rows += [f"| `{part}` | {PART_DESCRIPTIONS[part]} |" for part in PARTS]
    return "\n".join(rows) + "\n"


def timeline_attributes(timeline: Sequence[Segment]) -> tuple[list[str], list[float]]:
    return [s.part for s in timeline], [s.seconds for s in timeline]
