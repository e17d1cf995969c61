"""Content rules per destination: conversation content (prompts, replies, transcripts, tool
arguments and results) leaves the process only where the user opted in.

Applied in-process, per destination, on a copy of each finished span (the span LiveKit
hands every processor is never touched). Default: no content anywhere, as the OpenTelemetry
GenAI conventions advise; their ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
switch is honoured beside ``OTEL_LIVEKIT_CONTENT``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from livekit.agents.telemetry import pii
from opentelemetry import context as context_api
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from .. import environment_variables as ev
from ..errors import ConfigurationError
from ..gil import PER_GIL_HOLD, let_the_loop_in
from .langfuse import LF_INPUT, LF_OUTPUT, observation_attributes

logger = logging.getLogger("otel_livekit")

EXTRA_CONTENT_ATTRIBUTES = frozenset({LF_INPUT, LF_OUTPUT, "input.value", "output.value"})
"""Content keys LiveKit's own list misses (ours, Langfuse's and OpenInference's)."""

REDACTED = "[content withheld]"

EXCEPTION_TEXT = frozenset({"exception.message", "exception.stacktrace"})
"""Free text an exception carries (it may quote the caller): withheld where content is."""


@functools.lru_cache(maxsize=4096)
def is_content_attribute(key: str) -> bool:
    """LiveKit's rule (an ``x.pii.y`` segment, the GenAI content keys) plus ours. Cached:
    the export thread asks it of every key of every span, and the keys are few."""
    return pii.is_pii_attribute(key) or key in EXTRA_CONTENT_ATTRIBUTES


@dataclass(frozen=True)
class ContentRule:
    """What one destination may receive: content in span attributes, in span events."""

    attributes: bool = False
    events: bool = False

    @property
    def any(self) -> bool:
        return self.attributes or self.events


NO_CONTENT = ContentRule()
ALL = "all"

_GENAI_KINDS: Mapping[str, ContentRule | None] = {
    "NO_CONTENT": None,
    "FALSE": None,
    "SPAN_ONLY": ContentRule(attributes=True),
    "EVENT_ONLY": ContentRule(events=True),
    "SPAN_AND_EVENT": ContentRule(attributes=True, events=True),
    "TRUE": ContentRule(attributes=True, events=True),
}


@dataclass(frozen=True)
class ContentPolicy:
    """Which destinations receive content (``ALL`` in ``destinations`` means every one)
    and of what kind; ``decided_by`` names the setting for the startup log line."""

    destinations: frozenset[str]
    kind: ContentRule
    decided_by: str

    def rule(self, destination: str) -> ContentRule:
        if ALL in self.destinations or destination in self.destinations:
            return self.kind
        return NO_CONTENT

    def check(self, known: Sequence[str]) -> None:
        unknown = sorted(self.destinations - {ALL, *known})
        if unknown:
            raise ConfigurationError(
                f"{ev.OTEL_LIVEKIT_CONTENT} names unknown destination(s) {', '.join(unknown)}; "
                f"this setup has: {', '.join(known)} (or 'all', 'none')"
            )

    def describe(self, destinations: Sequence[str]) -> str:
        given = [d for d in destinations if self.rule(d).any]
        withheld = [d for d in destinations if not self.rule(d).any]
        switch = f"{ev.OTEL_LIVEKIT_CONTENT} / {ev.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT}"
        if not given:
            return (
                "conversation content (prompts, replies, transcripts, tool payloads) goes to "
                f"no destination (default; opt in per destination with {switch})"
            )
        kinds = "+".join(k for k, on in (("attributes", self.kind.attributes),
                                         ("events", self.kind.events)) if on)  # fmt: skip
        return (
            f"conversation content ({kinds}) goes to {', '.join(given)}; withheld from "
            f"{', '.join(withheld) or 'nothing'} (set by {self.decided_by}; switch: {switch})"
        )


def parse_destinations(raw: str | bool | Sequence[str], var: str) -> frozenset[str]:
    if isinstance(raw, bool):
        return frozenset({ALL}) if raw else frozenset()
    items = [raw] if isinstance(raw, str) else list(raw)
    names = {p.strip().lower() for item in items for p in item.split(",") if p.strip()}
    if "*" in names:
        names = (names - {"*"}) | {ALL}
    if "none" in names:
        if len(names) > 1:
            raise ConfigurationError(f"{var}: 'none' cannot be combined with other destinations")
        return frozenset()
    return frozenset(names)


def resolve_policy(
    content: str | bool | Sequence[str] | None,
    allow_pii: bool | None,
    env: Mapping[str, str],
) -> ContentPolicy:
    """argument > ``OTEL_LIVEKIT_CONTENT`` > ``allow_pii`` / ``OTEL_LIVEKIT_ALLOW_PII``
    (the older all-or-nothing switch) > the GenAI switch > no content."""
    genai_raw = env.get(ev.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, "").strip()
    genai_kind: ContentRule | None = None
    if genai_raw:
        key = genai_raw.upper()
        if key not in _GENAI_KINDS:
            raise ConfigurationError(
                f"{ev.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT} must be one of "
                f"{', '.join(k for k in _GENAI_KINDS if k not in ('TRUE', 'FALSE'))}, got {genai_raw!r}"
            )
        genai_kind = _GENAI_KINDS[key]
    kind = genai_kind or ContentRule(attributes=True, events=True)

    if content is not None:
        return ContentPolicy(parse_destinations(content, "content="), kind, "content=")
    if raw := env.get(ev.OTEL_LIVEKIT_CONTENT, "").strip():
        return ContentPolicy(parse_destinations(raw, ev.OTEL_LIVEKIT_CONTENT), kind, ev.OTEL_LIVEKIT_CONTENT)
    if allow_pii is not None:
        return ContentPolicy(parse_destinations(allow_pii, "allow_pii="), kind, "allow_pii=")
    if raw := env.get(ev.OTEL_LIVEKIT_ALLOW_PII, "").strip():
        allowed = ev.flag(raw, ev.OTEL_LIVEKIT_ALLOW_PII) is True  # raw is not blank here
        return ContentPolicy(parse_destinations(allowed, ""), kind, ev.OTEL_LIVEKIT_ALLOW_PII)
    if genai_kind is not None:
        return ContentPolicy(
            frozenset({ALL}), genai_kind, ev.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
        )
    return default_policy()


def default_policy() -> ContentPolicy:
    """No content anywhere: the package default, and what a bad content setting falls back to."""
    return ContentPolicy(frozenset(), NO_CONTENT, "default")


# --- the per-destination view of a span -------------------------------------------------


def filter_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Content and exception text out, order kept: LiveKit's filter decides each withheld
    key (it puts a stand-in where the exception message was), ours drop whole."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if not _withheld(key):
            out[key] = value
        elif key not in EXTRA_CONTENT_ATTRIBUTES:
            out.update(pii.filter_attributes({key: value}))
    return out


@functools.lru_cache(maxsize=4096)
def _withheld(key: str) -> bool:
    """What a span view withholds: content, and exception text (LiveKit's span filter did
    the latter before we turned it off; log records keep it, as they always did)."""
    return is_content_attribute(key) or key in EXCEPTION_TEXT


def _events(events: Sequence[Event]) -> list[Event]:
    kept: list[Event] = []
    for e in events:
        if e.name in pii.PII_EVENT_NAMES:
            continue
        attrs = e.attributes or {}
        if any(_withheld(k) for k in attrs):
            kept.append(Event(e.name, filter_attributes(attrs), e.timestamp))
        else:
            kept.append(e)
    return kept


def destination_view(span: ReadableSpan, rule: ContentRule, langfuse: bool) -> ReadableSpan:
    """The span as one destination may see it; ``span`` itself when nothing changes."""
    attributes: Mapping[str, Any] = span.attributes or {}
    extra = observation_attributes(span, with_content=rule.attributes) if langfuse else {}
    strip_attrs = not rule.attributes and any(_withheld(k) for k in attributes)
    strip_events = not rule.events and any(
        e.name in pii.PII_EVENT_NAMES or any(_withheld(k) for k in (e.attributes or {}))
        for e in span.events
    )
    redact_status = (
        not rule.attributes and span.status.status_code is StatusCode.ERROR and bool(span.status.description)
    )
    if not (extra or strip_attrs or strip_events or redact_status):
        return span
    new_attrs = {**attributes, **extra}
    if not rule.attributes:
        new_attrs = filter_attributes(new_attrs)
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=new_attrs,
        events=_events(span.events) if not rule.events else span.events,
        links=span.links,
        kind=span.kind,
        status=Status(StatusCode.ERROR, REDACTED) if redact_status else span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def span_view(rule: ContentRule, langfuse: bool) -> Callable[[ReadableSpan], ReadableSpan | None]:
    """One destination's view as a function of the span (``None``: the span is dropped)."""
    return functools.partial(_safe_view, rule=rule, langfuse=langfuse)


def _safe_view(span: ReadableSpan, rule: ContentRule, langfuse: bool) -> ReadableSpan | None:
    try:
        return destination_view(span, rule, langfuse)
    except Exception:
        logger.debug("otel_livekit: content filter failed; span dropped", exc_info=True)
        return None  # never let content through by accident


class DestinationExporter(SpanExporter):
    """Wraps one destination's exporter; runs on the export thread, not the agent's loop.
    (An OTLP backend with the full profile applies its view at span end instead, where the
    span is written to bytes: ``export.delivery.health.wire_view``.)"""

    def __init__(self, inner: SpanExporter, rule: ContentRule, langfuse: bool = False) -> None:
        self.inner = inner
        self.rule = rule
        self.langfuse = langfuse

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        views = []
        for i, span in enumerate(spans):
            if i and i % PER_GIL_HOLD == 0:  # 512 views in one go would hold the GIL 5 ms
                let_the_loop_in()
            if (view := _safe_view(span, self.rule, self.langfuse)) is not None:
                views.append(view)
        return self.inner.export(views)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class DestinationProcessor(SpanProcessor):
    """Wraps a user-supplied processor: it sees the filtered copy at ``on_end``."""

    def __init__(self, inner: SpanProcessor, rule: ContentRule, langfuse: bool = False) -> None:
        self.inner = inner
        self.rule = rule
        self.langfuse = langfuse

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        view = _safe_view(span, self.rule, self.langfuse)
        if view is not None:
            self.inner.on_end(view)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class GuardedTracerProvider(TracerProvider):
    """Our provider: a span processor added to it after set-up (by the agent's code or a
    library, behind our back) sees spans through the ``processors`` content rule, as the
    ones passed to ``setup_tracing`` do.

    That guard is what lets LiveKit skip its own content filter on the event loop (we hand
    it ``allow_pii=True``): every destination of ours strips content off the loop anyway.
    Processors LiveKit's telemetry package adds itself are left alone — LiveKit Cloud's
    exporter gets what the project's setting allows, as before."""

    _guard: Callable[[SpanProcessor], SpanProcessor] | None = None

    def guard_later_processors(self, wrap: Callable[[SpanProcessor], SpanProcessor]) -> None:
        self._guard = wrap

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        wrap = self._guard
        if wrap is not None and not _called_from_livekit_telemetry():
            span_processor = wrap(span_processor)
        super().add_span_processor(span_processor)


def _called_from_livekit_telemetry() -> bool:
    frame = inspect.currentframe()  # None on an interpreter that keeps no frames: guard all
    try:
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        name = caller.f_globals.get("__name__", "") if caller is not None else ""  # who added it
        return isinstance(name, str) and name.startswith("livekit.agents.telemetry")
    finally:
        del frame  # a frame kept in its own locals is a reference cycle
