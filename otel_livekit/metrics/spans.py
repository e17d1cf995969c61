"""An index of LiveKit's open spans, so a metrics event can find the span it belongs to.

LiveKit emits ``metrics_collected`` while the request's span is still open but not
current (the current span is ``llm_node`` or ``tts_stream_adapter``). This processor keeps
the few span kinds we enrich, from start to end, bounded in size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .. import semconv as sc

WATCHED = frozenset(
    {sc.SPAN_AGENT_SESSION, sc.SPAN_AGENT_TURN, sc.SPAN_USER_TURN, sc.SPAN_LLM_REQUEST,
     sc.SPAN_TTS_REQUEST}
)  # fmt: skip


class SpanIndex(SpanProcessor):
    """Open spans by name and, within a name, by trace: a lookup near the current span
    scans only its own call's few spans, however many calls the process runs (a scan of
    every open call's spans made each event's cost grow with the calls beside it)."""

    def __init__(self, max_open: int = 4096) -> None:
        self._open: dict[str, OrderedDict[int, Span]] = {name: OrderedDict() for name in WATCHED}
        self._by_trace: dict[str, dict[int, dict[int, Span]]] = {name: {} for name in WATCHED}
        self._lock = threading.Lock()
        self._max_open = max_open

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        spans = self._open.get(span.name)
        if spans is None:
            return
        ctx = span.context
        with self._lock:
            spans[ctx.span_id] = span
            self._by_trace[span.name].setdefault(ctx.trace_id, {})[ctx.span_id] = span
            if len(self) > self._max_open:  # spans never ended: forget the oldest
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        def started(spans: OrderedDict[int, Span]) -> int:
            return next(iter(spans.values())).start_time or 0

        oldest = min((spans for spans in self._open.values() if spans), key=started)
        _, span = oldest.popitem(last=False)
        self._unlink(span.name, span.context.trace_id, span.context.span_id)

    def _unlink(self, name: str, trace_id: int, span_id: int) -> None:
        traces = self._by_trace[name]
        spans = traces.get(trace_id)
        if spans is not None:
            spans.pop(span_id, None)
            if not spans:
                del traces[trace_id]

    def on_end(self, span: ReadableSpan) -> None:
        spans = self._open.get(span.name)
        if spans is None or span.context is None:
            return
        ctx = span.context
        with self._lock:
            spans.pop(ctx.span_id, None)
            self._unlink(span.name, ctx.trace_id, ctx.span_id)
        if span.name == sc.SPAN_AGENT_SESSION:
            self.forget_trace(ctx.trace_id)

    def __len__(self) -> int:
        return sum(len(spans) for spans in self._open.values())

    def find(self, name: str, match: Callable[[Span], bool], trace_id: int | None = None) -> Span | None:
        """The most recently started open span called ``name`` (in trace ``trace_id`` when
        given) that ``match`` accepts."""
        with self._lock:
            if trace_id is None:
                spans: Mapping[int, Span] | None = self._open.get(name)
            else:
                spans = self._by_trace.get(name, {}).get(trace_id)
            if not spans:
                return None
            candidates = list(spans.values())
        for span in reversed(candidates):
            if span.is_recording() and match(span):
                return span
        return None

    def find_with(self, name: str, key: str, value: object) -> Span | None:
        """The most recent open ``name`` span whose attribute ``key`` is ``value``: looked
        for in the current call's trace first (where the event's span almost always is)."""

        def match(s: Span) -> bool:
            return (s.attributes or {}).get(key) == value

        current = trace.get_current_span().get_span_context()
        if current.is_valid and (span := self.find(name, match, current.trace_id)) is not None:
            return span
        return self.find(name, match)

    def find_near(self, name: str, attr: tuple[str, object] | None = None) -> Span | None:
        """An open ``name`` span in the current trace: the child of the current span if
        there is one, else the most recent (matching ``attr`` when given)."""
        current = trace.get_current_span().get_span_context()
        if not current.is_valid:
            return None
        trace_id, parent_id = current.trace_id, current.span_id

        def matching(span: Span) -> bool:
            return attr is None or (span.attributes or {}).get(attr[0]) == attr[1]

        def child(span: Span) -> bool:
            return span.parent is not None and span.parent.span_id == parent_id and matching(span)

        return self.find(name, child, trace_id) or self.find(name, matching, trace_id)

    def forget_trace(self, trace_id: int) -> None:
        """A call ended (its agent_session span did): drop its spans that never ended
        (cancelled work), so nothing of the call stays in memory until the size bound pushes
        it out."""
        with self._lock:
            for name, traces in self._by_trace.items():
                for span_id in traces.pop(trace_id, {}):
                    self._open[name].pop(span_id, None)

    def shutdown(self) -> None:
        with self._lock:
            for spans in self._open.values():
                spans.clear()
            for traces in self._by_trace.values():
                traces.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
