"""Read an OTLP/JSON-lines file (the ``file`` backend's, or any OTLP tool's) into calls
and turns, from the span names and attributes LiveKit and otel_livekit write."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import semconv as sc

ATTR_E2E = "lk.e2e_latency"
ATTR_EOU = "lk.end_of_turn_delay"
ATTR_TRANSCRIPTION = "lk.transcription_delay"


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start: int
    """Unix nanoseconds."""
    end: int
    attrs: dict[str, Any]
    error: str | None
    """The status message (or exception) when the span's status is ERROR."""
    children: list[Span] = field(default_factory=list)

    def walk(self) -> Iterator[Span]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, name: str) -> list[Span]:
        return [s for s in self.walk() if s.name == name]

    def num(self, *keys: str) -> float | None:
        """The first of ``keys`` that holds a number."""
        for key in keys:
            value = self.attrs.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None


@dataclass
class Tool:
    name: str
    is_error: bool
    output: str | None
    seconds: float


@dataclass
class Turn:
    """One agent turn and the latency budget of the user turn it answers."""

    index: int
    span: Span
    user_text: str | None
    agent_text: str | None
    eou: float | None
    transcription: float | None
    llm_ttft: float | None
    tts_ttfb: float | None
    e2e: float | None
    remainder: float | None
    interrupted: bool
    tools: list[Tool]
    errors: list[str]
    tool_call_ttft: float | None = None
    """TTFT of the LLM requests that asked for the tools: part of the remainder, since the
    turn's LLM TTFT is the reply's (the request after the tools)."""
    budget: list[tuple[str, float]] = field(default_factory=list)
    """The turn budget's segments in the order they happened (``voice_agent.turn.budget``)."""
    budget_total: float | None = None
    dominant: str | None = None

    @property
    def anchor(self) -> str:
        return f"turn-{self.span.trace_id[:12]}-{self.index}"

    @property
    def parts(self) -> dict[str, float]:
        """Seconds per part of the budget (a part that came back, a second tool round, summed)."""
        out: dict[str, float] = {}
        for part, seconds in self.budget:
            out[part] = out.get(part, 0.0) + seconds
        return out

    @property
    def total(self) -> float | None:
        """The budget's total (the wait, text turns too); else LiveKit's e2e; else the sum of
        the known parts."""
        if self.budget_total is not None:
            return self.budget_total
        if self.e2e is not None:
            return self.e2e
        parts = [p for p in (self.eou, self.llm_ttft, self.tts_ttfb) if p is not None]
        return sum(parts) if parts else None


@dataclass
class Call:
    trace_id: str
    session: Span
    spans: list[Span]
    turns: list[Turn]
    user_turns: list[Span]
    service: str
    models: list[str]
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost: float | None

    @property
    def anchor(self) -> str:
        return f"call-{self.trace_id[:12]}"

    @property
    def interruptions(self) -> int:
        return sum(t.interrupted for t in self.turns)

    @property
    def errors(self) -> int:
        return sum(len(t.errors) for t in self.turns)


@dataclass
class TraceFile:
    calls: list[Call]
    metrics: dict[str, float]
    """Cumulative sums from the metrics lines, summed over series (latest per process)."""
    spans: int
    lines: int
    notes: list[str] = field(default_factory=list)
    """What was skipped while reading (a last line cut off mid-write)."""


def _value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return None


def _attrs(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items}


def _error(raw: dict[str, Any]) -> str | None:
    status = raw.get("status") or {}
    if status.get("code") not in (2, "STATUS_CODE_ERROR"):
        return None
    for event in raw.get("events", []):
        if event.get("name") == "exception":
            a = _attrs(event.get("attributes", []))
            return f"{a.get('exception.type', 'error')}: {a.get('exception.message', '')}"
    return str(status.get("message") or "error")


def read(path: str | Path) -> TraceFile:
    """Every span and metric sum of the file. A last line cut off mid-write (an agent killed
    while writing) is skipped with a note; anything else that is not OTLP/JSON, and a file
    with no span or metric in it, is an error."""
    spans: list[Span] = []
    services: dict[str, str] = {}
    latest_sums: dict[tuple[str, str, str], float] = {}
    lines = points = 0
    notes: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        raw_lines = [line for line in fh if line.strip()]
    for number, line in enumerate(raw_lines, 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if number == len(raw_lines) and not line.endswith("\n"):  # torn: the writer was killed
                notes.append(f"the last line (line {number}, {len(line.encode()):,} bytes) was cut off "
                             "and skipped: the agent probably stopped mid-write")  # fmt: skip
                continue
            raise ValueError(f"{path}: line {number} is not OTLP/JSON") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: line {number} is not OTLP/JSON")
        lines += 1
        _spans_of(obj, spans, services)
        points += _sums_of(obj, latest_sums)
    if not spans and not points:
        raise ValueError(f"{path}: no OTLP spans or metrics in it" + ("" if raw_lines else " (empty file)"))
    metrics: dict[str, float] = defaultdict(float)
    for (_, name, _), value in latest_sums.items():
        metrics[name] += value
    return TraceFile(_calls(spans, services), dict(metrics), len(spans), lines, notes)


def _spans_of(obj: dict[str, Any], spans: list[Span], services: dict[str, str]) -> None:
    for rs in obj.get("resourceSpans", []):
        resource = _attrs(rs.get("resource", {}).get("attributes", []))
        for ss in rs.get("scopeSpans", []):
            for raw in ss.get("spans", []):
                span = Span(
                    trace_id=raw["traceId"],
                    span_id=raw["spanId"],
                    parent_id=raw.get("parentSpanId", ""),
                    name=raw["name"],
                    start=int(raw["startTimeUnixNano"]),
                    end=int(raw["endTimeUnixNano"]),
                    attrs=_attrs(raw.get("attributes", [])),
                    error=_error(raw),
                )
                spans.append(span)
                services.setdefault(span.trace_id, str(resource.get("service.name", "")))


def _sums_of(obj: dict[str, Any], latest_sums: dict[tuple[str, str, str], float]) -> int:
    """Keeps each sum series' latest value; returns how many data points the line held."""
    points = 0
    for rm in obj.get("resourceMetrics", []):
        resource = _attrs(rm.get("resource", {}).get("attributes", []))
        instance = str(resource.get("service.instance.id", ""))
        for sm in rm.get("scopeMetrics", []):
            for metric in sm.get("metrics", []):
                points += sum(len(metric.get(kind, {}).get("dataPoints", []))
                              for kind in ("sum", "gauge", "histogram"))  # fmt: skip
                for point in metric.get("sum", {}).get("dataPoints", []):
                    value = float(point.get("asDouble", point.get("asInt", 0)))
                    series = json.dumps(point.get("attributes", []), sort_keys=True)
                    latest_sums[(instance, metric["name"], series)] = value
    return points


def _calls(spans: list[Span], services: dict[str, str]) -> list[Call]:
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    for s in spans:
        parent = by_id.get((s.trace_id, s.parent_id))
        if parent is not None:
            parent.children.append(s)
    for s in spans:
        s.children.sort(key=lambda c: c.start)
    calls = []
    for session in sorted((s for s in spans if s.name == sc.SPAN_AGENT_SESSION), key=lambda s: s.start):
        calls.append(_call(session, services.get(session.trace_id, "")))
    return calls


def _call(session: Span, service: str) -> Call:
    members = list(session.walk())
    agent_turns = [s for s in members if s.name == sc.SPAN_AGENT_TURN]
    turns = [_turn(i, s) for i, s in enumerate(agent_turns)]
    llm = [s for s in members if s.name == sc.SPAN_LLM_REQUEST]
    models = []
    for s in members:
        model = s.attrs.get(sc.GEN_AI_REQUEST_MODEL)
        provider = s.attrs.get(sc.GEN_AI_PROVIDER_NAME)
        label = f"{provider}/{model}" if provider else str(model)
        wanted = s.name in (sc.SPAN_LLM_REQUEST, sc.SPAN_TTS_REQUEST, sc.SPAN_USER_TURN)
        if model and wanted and label not in models:
            models.append(label)
    cost = session.num(sc.ATTR_SESSION_COST)
    if cost is None:
        costs = [c for s in members if (c := s.num(sc.ATTR_COST)) is not None]
        cost = sum(costs) if costs else None
    return Call(
        trace_id=session.trace_id,
        session=session,
        spans=members,
        turns=turns,
        user_turns=[s for s in members if s.name == sc.SPAN_USER_TURN],
        service=service,
        models=models,
        input_tokens=int(sum(s.num("gen_ai.usage.input_tokens") or 0 for s in llm)),
        output_tokens=int(sum(s.num("gen_ai.usage.output_tokens") or 0 for s in llm)),
        cached_tokens=int(sum(s.num("gen_ai.usage.input_cached_tokens") or 0 for s in llm)),
        cost=cost,
    )


def _turn(index: int, span: Span) -> Turn:
    def first(name: str, key: str) -> float | None:
        found = [n for s in span.find(name) if (n := s.num(key)) is not None]
        return found[0] if found else None

    eou = span.num(sc.ATTR_TURN_EOU, ATTR_EOU)
    llm_ttft = span.num(sc.ATTR_TURN_LLM_TTFT)
    if llm_ttft is None:
        llm_ttft = first("llm_node", "lk.response.ttft")
    tts_ttfb = span.num(sc.ATTR_TURN_TTS_TTFB)
    if tts_ttfb is None:
        tts_ttfb = first("tts_node", "lk.response.ttfb")
    e2e = span.num(ATTR_E2E)
    remainder = span.num(sc.ATTR_TURN_REMAINDER)
    if remainder is None and e2e is not None:
        remainder = max(0.0, e2e - sum(p or 0.0 for p in (eou, llm_ttft, tts_ttfb)))
    tools = [
        Tool(
            name=str(s.attrs.get("lk.function_tool.name") or s.attrs.get(sc.GEN_AI_TOOL_NAME) or "tool"),
            is_error=bool(s.attrs.get("lk.function_tool.is_error")),
            output=s.attrs.get("lk.pii.function_tool.output"),
            seconds=(s.end - s.start) / 1e9,
        )
        for s in span.find("function_tool")
    ]
    errors = [f"{s.name}: {s.error}{_recovery(span, s)}" for s in span.walk() if s.error]
    ttft_key = "gen_ai.response.time_to_first_chunk"
    deciding = [n for s in span.find("llm_request")[:-1] if (n := s.num(ttft_key)) is not None]
    user_text = span.attrs.get("lk.pii.user_input")
    agent_text = span.attrs.get("lk.pii.response.text")
    return Turn(
        index=index,
        span=span,
        user_text=str(user_text) if user_text else None,
        agent_text=str(agent_text) if agent_text else None,
        eou=eou,
        transcription=span.num(ATTR_TRANSCRIPTION),
        llm_ttft=llm_ttft,
        tts_ttfb=tts_ttfb,
        e2e=e2e,
        remainder=remainder,
        interrupted=bool(span.attrs.get("lk.interrupted")),
        tools=tools,
        errors=errors,
        tool_call_ttft=sum(deciding) if tools and deciding else None,
        budget=_budget(span),
        budget_total=span.num(f"{sc.ATTR_BUDGET}.total"),
        dominant=str(span.attrs.get(f"{sc.ATTR_BUDGET}.dominant") or "") or None,
    )


def _budget(span: Span) -> list[tuple[str, float]]:
    names = span.attrs.get(f"{sc.ATTR_BUDGET}.timeline.parts")
    seconds = span.attrs.get(f"{sc.ATTR_BUDGET}.timeline.seconds")
    if not isinstance(names, list) or not isinstance(seconds, list) or len(names) != len(seconds):
        return []
    return [(str(n), float(s)) for n, s in zip(names, seconds, strict=True)]


def _recovery(turn: Span, failed: Span) -> str:
    """A failed attempt followed by a successful retry under the same request."""
    parent = next((s for s in turn.walk() if s.span_id == failed.parent_id), None)
    if parent is not None and any(
        c.name == failed.name and not c.error and c.start > failed.start for c in parent.children
    ):
        return " (retried, recovered)"
    return ""
