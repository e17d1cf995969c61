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
    def __init__(self, max_open: int = 4096) -> None:
        self._open: OrderedDict[int, Span] = OrderedDict()
        self._lock = threading.Lock()
        self._max_open = max_open

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        if span.name not in WATCHED:
            return
        with self._lock:
            self._open[span.context.span_id] = span
            if len(self._open) > self._max_open:  # spans never ended: forget the oldest
                self._open.popitem(last=False)

    def on_end(self, span: ReadableSpan) -> None:
        if span.name in WATCHED and span.context is not None:
            with self._lock:
                self._open.pop(span.context.span_id, None)
            if span.name == sc.SPAN_AGENT_SESSION:
                self.forget_trace(span.context.trace_id)

    def __len__(self) -> int:
        return len(self._open)

    def find(self, name: str, match: Callable[[Span], bool]) -> Span | None:
        """The most recently started open span called ``name`` that ``match`` accepts."""
        with self._lock:
            candidates = [s for s in self._open.values() if s.name == name]
        for span in reversed(candidates):
            if span.is_recording() and match(span):
                return span
        return None

    def find_near(self, name: str, attr: tuple[str, object] | None = None) -> Span | None:
        """An open ``name`` span in the current trace: the child of the current span if
        there is one, else the most recent (matching ``attr`` when given)."""
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
            for span_id in [k for k, s in self._open.items() if s.context.trace_id == trace_id]:
                del self._open[span_id]

    def shutdown(self) -> None:
        with self._lock:
            self._open.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
