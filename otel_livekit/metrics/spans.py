"""An index of LiveKit's open spans, so a metrics event can find the span it belongs to.

LiveKit emits ``metrics_collected`` while the request's span is still open but not
current (the current span is ``llm_node`` or ``tts_stream_adapter``). This processor keeps
the few span kinds we enrich, from start to end, bounded in size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .. import semconv as sc

WATCHED = frozenset(
    {sc.SPAN_AGENT_SESSION, sc.SPAN_AGENT_TURN, sc.SPAN_USER_TURN, sc.SPAN_LLM_REQUEST,
     sc.SPAN_TTS_REQUEST}
)  # fmt: skip


class SpanIndex(SpanProcessor):
    """Open spans by name: a lookup scans only the few open spans of the name it wants, and
    a name with none open (the common case for most events) costs a dict lookup."""

    def __init__(self, max_open: int = 4096) -> None:
        self._open: dict[str, OrderedDict[int, Span]] = {name: OrderedDict() for name in WATCHED}
        self._lock = threading.Lock()
        self._max_open = max_open

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        spans = self._open.get(span.name)
        if spans is None:
            return
        with self._lock:
            spans[span.context.span_id] = span
            if len(self) > self._max_open:  # spans never ended: forget the oldest
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        def started(spans: OrderedDict[int, Span]) -> int:
            return next(iter(spans.values())).start_time or 0

        oldest = min((spans for spans in self._open.values() if spans), key=started)
        oldest.popitem(last=False)

    def on_end(self, span: ReadableSpan) -> None:
        spans = self._open.get(span.name)
        if spans is None or span.context is None:
            return
        with self._lock:
            spans.pop(span.context.span_id, None)
        if span.name == sc.SPAN_AGENT_SESSION:
            self.forget_trace(span.context.trace_id)

    def __len__(self) -> int:
        return sum(len(spans) for spans in self._open.values())

    def find(self, name: str, match: Callable[[Span], bool]) -> Span | None:
        """The most recently started open span called ``name`` that ``match`` accepts."""
        spans = self._open.get(name)
        if not spans:
            return None
        with self._lock:
            candidates = list(spans.values())
        for span in reversed(candidates):
            if span.is_recording() and match(span):
                return span
        return None

    def find_with(self, name: str, key: str, value: object) -> Span | None:
        """The most recent open ``name`` span whose attribute ``key`` is ``value``."""
        return self.find(name, lambda s: (s.attributes or {}).get(key) == value)

    def find_near(self, name: str, attr: tuple[str, object] | None = None) -> Span | None:
        """An open ``name`` span in the current trace: the child of the current span if
        there is one, else the most recent (matching ``attr`` when given)."""
        if not self._open.get(name):
            return None
        current = trace.get_current_span().get_span_context()
        if not current.is_valid:
            return None

        def same_trace(span: Span) -> bool:
            if span.context.trace_id != current.trace_id:
                return False
            return attr is None or (span.attributes or {}).get(attr[0]) == attr[1]

        child = self.find(
            name, lambda s: same_trace(s) and s.parent is not None
            and s.parent.span_id == current.span_id
        )  # fmt: skip
        return child or self.find(name, same_trace)

    def forget_trace(self, trace_id: int) -> None:
        """A call ended (its agent_session span did): drop its spans that never ended
        (cancelled work), so nothing of the call stays in memory until the size bound pushes
        it out."""
        with self._lock:
            for spans in self._open.values():
                for span_id in [k for k, s in spans.items() if s.context.trace_id == trace_id]:
                    del spans[span_id]

    def shutdown(self) -> None:
        with self._lock:
            for spans in self._open.values():
                spans.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
