"""Who a call is: its session id, user id, trace name, tags and metadata.

Held per ``AgentSession`` in a weak mapping (a closed session is freed) and per trace id
in a bounded table, so a span processor can stamp them on every span of the call.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from livekit.agents import AgentSession, get_job_context


@dataclass
class CallInfo:
    """Trace-level attributes of one call. ``None`` fields are looked up lazily (the user
    joins after the session starts) from the session, held weakly."""

    session_id: str | None = None
    user_id: str | None = None
    trace_name: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    session_ref: weakref.ReferenceType[AgentSession[Any]] | None = None
    version: int = 0
    """Bumped by every ``set_call_attributes``: spans started afterwards see the change."""

    def resolve_user(self) -> str | None:
        if self.user_id is None and self.session_ref is not None:
            session = self.session_ref()
            if session is not None:
                self.user_id = _linked_identity(session)
        return self.user_id


_by_session: weakref.WeakKeyDictionary[AgentSession[Any], CallInfo] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def call_info(session: AgentSession[Any]) -> CallInfo:
    with _lock:
        info = _by_session.get(session)
        if info is None:
            info = _by_session[session] = CallInfo(session_ref=weakref.ref(session))
        return info


def set_call_attributes(
    session: AgentSession[Any],
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    trace_name: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Override who this call is (before ``session.start()`` so every span carries it;
    later calls apply to the spans that start afterwards)."""
    info = call_info(session)
    info.version += 1
    if session_id is not None:
        info.session_id = session_id
    if user_id is not None:
        info.user_id = user_id
    if trace_name is not None:
        info.trace_name = trace_name
    if tags is not None:
        info.tags = tuple(tags)
    if metadata:
        info.metadata.update({str(k): str(v) for k, v in metadata.items()})


_starting: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar(
    "otel_livekit_starting_call", default=None
)


def session_starting(session: AgentSession[Any]) -> None:
    """Called from the session's ``start`` (same task): the next ``agent_session`` span
    started in this context belongs to this session."""
    _starting.set(call_info(session))


def take_starting() -> CallInfo | None:
    info = _starting.get()
    if info is not None:
        _starting.set(None)
    return info


T = TypeVar("T")


class CallTable(Generic[T]):
    """trace id (or job id) → call state, bounded: the oldest are forgotten first."""

    def __init__(self, max_calls: int = 1024) -> None:
        self._calls: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_calls

    def put(self, trace_id: Hashable, info: T) -> None:
        with self._lock:
            self._calls[trace_id] = info
            self._calls.move_to_end(trace_id)
            while len(self._calls) > self._max:
                self._calls.popitem(last=False)

    def get(self, trace_id: Hashable) -> T | None:
        with self._lock:
            return self._calls.get(trace_id)

    def __len__(self) -> int:
        return len(self._calls)


def _linked_identity(session: AgentSession[Any]) -> str | None:
    try:
        participant = session.room_io.linked_participant
    except Exception:  # not started with a room
        return None
    return participant.identity if participant is not None else None


def job_info() -> dict[str, str]:
    """Room name, job id and agent name of the current job, when inside one."""
    try:
        ctx = get_job_context(required=False)
    except Exception:
        return {}
    if ctx is None:
        return {}
    out: dict[str, str] = {}
    room = getattr(getattr(ctx, "job", None), "room", None)
    if name := (getattr(room, "name", "") or getattr(ctx.room, "name", "")):
        out["room"] = name
    if job_id := getattr(ctx.job, "id", ""):
        out["job_id"] = job_id
    if agent := getattr(ctx.job, "agent_name", ""):
        out["agent_name"] = agent
    return out
