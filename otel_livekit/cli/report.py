"""``otel-livekit report FILE``: one self-contained HTML page from an OTLP/JSON-lines file.

Server-rendered HTML and SVG with inline CSS and no script: the page makes no request
(its Content-Security-Policy forbids every fetch), so it can be mailed or archived.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from html import escape
from importlib import resources
from pathlib import Path

import click

from ..metrics.budget import PARTS
from .tracefile import Call, TraceFile, Turn, read

COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("eou", "end of utterance", "#8e6fc1"),
    ("transcription", "transcription", "#c2b3e3"),
    ("llm_ttft", "LLM TTFT", "#e8892b"),
    ("tts_ttfb", "TTS TTFB", "#3b82c4"),
    ("remainder", "remainder", "#9aa3ad"),
    ("e2e", "e2e", "#2e7d4f"),
)
_COLOR = {key: color for key, _, color in COMPONENTS}
_LABEL = {key: label for key, label, _ in COMPONENTS}
PART_COLORS: dict[str, str] = dict(zip(PARTS, (
    "#5b3f96", "#8e6fc1", "#c0548a", "#f2b66d", "#9a5b13", "#e8892b", "#c4561b", "#d9b92e", "#3b82c4",
    "#2f9e8f", "#9aa3ad"), strict=True))  # fmt: skip
"""A colour per part of the turn budget (``metrics.budget.PARTS``, in the order they happen)."""
WATERFALL_WIDTH, WATERFALL_LEFT = 460, 4


def write_report(source: str | Path, output: str | Path | None = None) -> Path:
    """Read ``source`` and write the page next to it (``.html``) or to ``output``."""
    data = read(source)
    out = Path(output) if output else Path(source).with_suffix(".html")
    out.write_text(render(data, str(source)), encoding="utf-8")
    return out


@click.command("report")
@click.argument("trace_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the page (default: TRACE_FILE with .html).",
)
def report_command(trace_file: str, output: str | None) -> None:
    """Turn an OTLP/JSON-lines trace file into one self-contained HTML page."""
    try:
        data = read(trace_file)
        out = Path(output) if output else Path(trace_file).with_suffix(".html")
        out.write_text(render(data, trace_file), encoding="utf-8")
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"cannot read {trace_file}: {exc}") from None
    for note in data.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(str(out.resolve()))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (what the demo's live line shows too)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _value(turn: Turn, key: str) -> float | None:
    value: float | None = getattr(turn, key)
    return value


def render(data: TraceFile, source: str) -> str:
    turns = [t for c in data.calls for t in c.turns]
    totals = [t.total for t in turns if t.total is not None]
    scale = max(1.0, math.ceil(max(totals, default=1.0) * 2) / 2)
    template = resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>otel-livekit report: {escape(Path(source).name)}</title>",
        f"<style>{template}</style></head><body>",
        "<header><h1>Voice agent calls</h1>",
        f'<p class="meta">{escape(source)} · {len(data.calls)} calls · {len(turns)} agent turns · '
        f"{data.spans} spans in {data.lines} lines · generated "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC</p>",
        *(f'<p class="note">{escape(note)}</p>' for note in data.notes),
        _legend(),
        "</header>",
    ]
    if not data.calls:
        parts.append('<p class="empty">No <code>agent_session</code> span in this file.</p>')
    else:
        parts += [_overview(data, turns), _distributions(turns), _slowest(data.calls)]
        parts += [_call(i, call, scale) for i, call in enumerate(data.calls, 1)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _legend() -> str:
    def key(label: str, color: str) -> str:
        return f'<span class="key"><i style="background:{color}"></i>{escape(label)}</span>'

    items = "".join(key(label, color) for _, label, color in COMPONENTS)
    parts = "".join(key(part, color) for part, color in PART_COLORS.items())
    return f'<p class="legend">{items}</p><p class="legend">where the wait went: {parts}</p>'


def _overview(data: TraceFile, turns: list[Turn]) -> str:
    cost = sum(c.cost or 0.0 for c in data.calls)
    rows = [
        ("calls", str(len(data.calls))),
        ("agent turns", str(len(turns))),
        ("interruptions", str(sum(t.interrupted for t in turns))),
        ("tool calls", str(sum(len(t.tools) for t in turns))),
        ("errors", str(sum(len(t.errors) for t in turns))),
        ("LLM tokens in / out", f"{sum(c.input_tokens for c in data.calls)} / "
                                f"{sum(c.output_tokens for c in data.calls)}"),
        ("estimated cost", f"${cost:.4f}"),
    ]  # fmt: skip
    cells = "".join(f"<div><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in rows)
    metric_rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{value:.6g}</td></tr>"
        for name, value in sorted(data.metrics.items())
        if name.startswith("voice_agent.") and value
    )
    metrics = (
        f'<details><summary>Counters from the metrics lines</summary><table class="metrics">'
        f"{metric_rows}</table></details>"
        if metric_rows
        else ""
    )
    return f'<section id="overview"><div class="stats">{cells}</div>{metrics}</section>'


def _distributions(turns: list[Turn]) -> str:
    """Per component: every turn as a dot on a shared axis, p50 and p95 marked."""
    series = {key: [v for t in turns if (v := _value(t, key)) is not None] for key, _, _ in COMPONENTS}
    top = max((max(v) for v in series.values() if v), default=1.0)
    axis = max(0.5, math.ceil(top * 4) / 4)
    width, left = 640, 130
    rows: list[str] = []
    table: list[str] = []
    for key, label, color in COMPONENTS:
        values = series[key]
        if not values:
            continue
        y = 14 + 22 * len(rows)
        dots = "".join(
            f'<circle cx="{left + v / axis * (width - left - 10):.1f}" cy="{y}" r="3.2" fill="{color}" '
            f'fill-opacity="0.55"><title>{label} {v:.3f} s</title></circle>'
            for v in values
        )
        marks = ""
        for q, dash in ((50, ""), (95, ' stroke-dasharray="3 2"')):
            x = left + percentile(values, q) / axis * (width - left - 10)
            marks += f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 8}" y2="{y + 8}" stroke="#222"{dash}/>'
        rows.append(f'<text x="0" y="{y + 4}" class="lbl">{escape(label)}</text>{dots}{marks}')
        table.append(
            f"<tr><td>{escape(label)}</td><td>{len(values)}</td><td>{percentile(values, 50):.3f}</td>"
            f"<td>{percentile(values, 95):.3f}</td><td>{max(values):.3f}</td></tr>"
        )
    height = 22 * len(rows) + 24
    ticks = ""
    steps = 5
    for i in range(steps + 1):
        x = left + i / steps * (width - left - 10)
        ticks += (
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{height - 16}" stroke="#e3e6ea"/>'
            f'<text x="{x:.1f}" y="{height - 4}" class="tick">{axis * i / steps:.2f}s</text>'
        )
    svg = (
        f'<svg class="dist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="latency distributions">{ticks}{"".join(rows)}</svg>'
    )
    return (
        '<section id="distributions"><h2>Latency per component, all calls</h2>'
        '<p class="hint">One dot per turn; solid line p50, dashed p95. Seconds.</p>'
        f'<div class="row">{svg}<table class="pct"><tr><th>component</th><th>n</th><th>p50</th>'
        f"<th>p95</th><th>max</th></tr>{''.join(table)}</table></div>{_by_model(turns)}</section>"
    )


def _by_model(turns: list[Turn]) -> str:
    groups: dict[tuple[str, str], list[float]] = {}
    for t in turns:
        parts = (("llm_request", "LLM TTFT", t.llm_ttft), ("tts_request", "TTS TTFB", t.tts_ttfb))
        for name, key, value in parts:
            spans = t.span.find(name)
            if value is None or not spans:
                continue
            attrs = spans[0].attrs
            model = f"{attrs.get('gen_ai.provider.name', '?')}/{attrs.get('gen_ai.request.model', '?')}"
            groups.setdefault((key, model), []).append(value)
    if not groups:
        return ""
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(m)}</td><td>{len(v)}</td><td>{percentile(v, 50):.3f}</td>"
        f"<td>{percentile(v, 95):.3f}</td></tr>"
        for (k, m), v in sorted(groups.items())
    )
    return (
        '<h3>By provider/model</h3><table class="pct"><tr><th>part</th><th>model</th><th>n</th>'
        f"<th>p50</th><th>p95</th></tr>{rows}</table>"
    )


def _slowest(calls: list[Call], n: int = 10) -> str:
    ranked = sorted(
        ((t, i, c) for i, c in enumerate(calls, 1) for t in c.turns if t.total is not None),
        key=lambda x: -(x[0].total or 0.0),
    )[:n]
    rows = "".join(
        f'<tr><td><a href="#{t.anchor}">call {i} · turn {t.index + 1}</a></td>'
        f"<td>{_fmt(t.total)}</td><td>{_fmt(t.eou)}</td><td>{_fmt(t.llm_ttft)}</td>"
        f"<td>{_fmt(t.tts_ttfb)}</td><td>{_fmt(t.remainder)}</td>"
        f"<td>{escape(_mostly(t))}</td><td>{escape(_flags(t))}</td></tr>"
        for t, i, c in ranked
    )
    return (
        '<section id="slowest"><h2>Slowest turns</h2><table class="pct"><tr><th>turn</th><th>e2e</th>'
        "<th>end of utterance</th><th>LLM TTFT</th><th>TTS TTFB</th><th>remainder</th>"
        "<th>mostly</th><th></th></tr>"
        f"{rows}</table></section>"
    )


def _mostly(t: Turn) -> str:
    """The part that took most of the wait, and how long."""
    if not t.dominant or t.dominant not in t.parts:
        return ""
    return f"{t.dominant} {t.parts[t.dominant]:.3f}"


def _flags(t: Turn) -> str:
    flags = []
    if t.tools:
        flags.append("tool: " + ", ".join(x.name for x in t.tools))
    if t.interrupted:
        flags.append("interrupted")
    if t.errors:
        flags.append(f"{len(t.errors)} error(s)")
    return " · ".join(flags)


def _call(number: int, call: Call, scale: float) -> str:
    start = dt.datetime.fromtimestamp(call.session.start / 1e9, dt.timezone.utc)
    duration = (call.session.end - call.session.start) / 1e9
    facts = [
        f"trace <code>{escape(call.trace_id)}</code>",
        f"{start:%Y-%m-%d %H:%M:%S} UTC",
        f"{duration:.1f} s",
        f"{len(call.turns)} agent turns",
        f"{call.interruptions} interrupted",
        f"{call.errors} errors",
        f"tokens in {call.input_tokens} (cached {call.cached_tokens}) / out {call.output_tokens}",
        f"estimated cost ${call.cost:.5f}" if call.cost is not None else "cost unknown",
    ]
    models = " · ".join(escape(m) for m in call.models)
    turns = "".join(_turn(number, t, scale) for t in call.turns)
    return (
        f'<section class="call" id="{call.anchor}"><h2>Call {number}'
        f"{' · ' + escape(call.service) if call.service else ''}</h2>"
        f'<p class="meta">{" · ".join(facts)}</p><p class="models">{models}</p>'
        f'{_timeline(call)}<ol class="turns">{turns}</ol></section>'
    )


def _timeline(call: Call) -> str:
    """The whole call: the user's turns above, the agent's below, tools and errors in place."""
    t0, t1 = call.session.start, max(call.session.end, call.session.start + 1)
    width, left = 900, 50

    def x(ns: int) -> float:
        return left + (ns - t0) / (t1 - t0) * (width - left - 6)

    shapes = [
        '<text x="0" y="17" class="lbl">user</text><text x="0" y="41" class="lbl">agent</text>',
        f'<line x1="{left}" x2="{width - 6}" y1="66" y2="66" stroke="#888"/>',
    ]
    for sec in _ticks((t1 - t0) / 1e9):  # seconds from the call's start
        at = x(t0 + int(sec * 1e9))
        shapes.append(
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="66" y2="70" stroke="#888"/>'
            f'<text class="tick" x="{at:.1f}" y="80"{_anchor(at, width)}>{sec:g} s</text>'
        )
    for s in call.user_turns:
        text = escape(str(s.attrs.get("lk.pii.user_transcript") or "user turn"))
        shapes.append(
            f'<rect x="{x(s.start):.1f}" y="7" width="{max(1.5, x(s.end) - x(s.start)):.1f}" height="14" '
            f'rx="2" fill="#6aa84f"><title>{text}</title></rect>'
        )
    for t in call.turns:
        s = t.span
        stroke = ' stroke="#c62828" stroke-width="2"' if t.interrupted else ""
        shapes.append(
            f'<a href="#{t.anchor}"><rect x="{x(s.start):.1f}" y="31" '
            f'width="{max(1.5, x(s.end) - x(s.start)):.1f}" height="14" rx="2" fill="#3b82c4"{stroke}>'
            f"<title>turn {t.index + 1}: {_fmt(t.total)} s"
            f"{' (interrupted)' if t.interrupted else ''}</title></rect></a>"
        )
        for tool in s.find("function_tool"):
            shapes.append(
                f'<path d="M{x(tool.start):.1f} 52 l5 8 h-10 z" fill="#e8892b"><title>tool '
                f"{escape(str(tool.attrs.get('lk.function_tool.name', '')))}</title></path>"
            )
        for err in (e for e in s.walk() if e.error):
            cx = x(err.start)
            shapes.append(
                f'<path d="M{cx - 4:.1f} 52 l8 8 M{cx + 4:.1f} 52 l-8 8" stroke="#c62828" stroke-width="2">'
                f"<title>{escape(err.name)}: {escape(err.error or '')}</title></path>"
            )
    return (
        f'<svg class="timeline" viewBox="0 0 {width} 84" width="{width}" height="84" role="img" '
        f'aria-label="call timeline">{"".join(shapes)}</svg>'
    )


def _turn(call_number: int, t: Turn, scale: float) -> str:
    said = []
    if t.user_text:
        said.append(f'<p class="user">{escape(t.user_text)}</p>')
    if t.agent_text:
        said.append(f'<p class="agent">{escape(t.agent_text)}</p>')
    if not said:
        said.append('<p class="nocontent">content not recorded (allow_pii off)</p>')
    for tool in t.tools:
        state = "failed" if tool.is_error else "ok"
        out = f" → {escape(str(tool.output))}" if tool.output else ""
        said.append(f'<p class="tool {state}">tool <b>{escape(tool.name)}</b> {state}{out}</p>')
    if t.interrupted:
        said.append('<p class="interrupted">interrupted by the user</p>')
    for err in t.errors:
        said.append(f'<p class="error">{escape(err)}</p>')
    values = "".join(
        f'<span class="v" data-key="{key}" data-value="{v!r}">'
        f'<i style="background:{_COLOR[key]}"></i>{escape(_LABEL[key])} {v:.3f}s</span>'
        for key in ("eou", "transcription", "llm_ttft", "tts_ttfb", "remainder", "e2e")
        if (v := _value(t, key)) is not None
    )
    if t.budget:
        values += "".join(
            f'<span class="p" data-part="{escape(part)}" data-value="{seconds!r}">'
            f'<i style="background:{PART_COLORS.get(part, "#666")}"></i>{escape(part)} {seconds:.3f}s</span>'
            for part, seconds in t.parts.items()
        )
        values += f'<span class="t">wait {_fmt(t.budget_total)}s, mostly {escape(t.dominant or "")}</span>'
    elif t.tools and t.remainder is not None:
        spent = sum(x.seconds for x in t.tools)
        owned = f"tools {spent:.3f}s"
        if t.tool_call_ttft is not None:
            owned = f"LLM TTFT of the tool call {t.tool_call_ttft:.3f}s, " + owned
        values += f'<span class="t">of the remainder: {owned}</span>'
    return (
        f'<li class="turn" id="{t.anchor}" data-call="{call_number}" data-turn="{t.index + 1}">'
        f'<div class="said">{"".join(said)}</div>'
        f'<div class="budget">{_waterfall(t, scale)}<div class="values">{values}</div></div></li>'
    )


def _anchor(x: float, width: float) -> str:
    """A tick's label inside the picture: from its tick at the left edge, up to it at the right."""
    if x < 12:
        return ' style="text-anchor: start"'
    return ' style="text-anchor: end"' if x > width - 12 else ""


def _ticks(scale: float) -> list[float]:
    """At most nine round ticks from 0 to ``scale`` seconds (1-2-5 steps, any call length)."""
    steps = (m * 10.0**e for e in range(-1, 7) for m in (1, 2, 5))
    step = next((s for s in steps if scale / s <= 8), scale)
    return [round(i * step, 6) for i in range(int(scale / step + 1e-9) + 1)]


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.3g} s"


def _budget_waterfall(t: Turn, scale: float) -> str:
    """The wait in the order it happened, on a time axis (one scale for the page): each part
    a bar at its offset, as wide as its seconds, the residual too; the transcription delay is
    a thin line over the endpointing wait, not a part."""
    width, left = WATERFALL_WIDTH, WATERFALL_LEFT
    pps = (width - left - 4) / scale
    shapes, at = [], 0.0
    for part, seconds in t.budget:
        x, w = left + at * pps, seconds * pps
        color = PART_COLORS.get(part, "#666")
        shapes.append(
            f'<rect class="part" data-part="{escape(part)}" data-seconds="{seconds!r}" x="{x:.2f}" y="6" '
            f'width="{w:.2f}" height="14" fill="{color}" shape-rendering="crispEdges">'
            f"<title>{escape(part)} {seconds:.3f} s</title></rect>"
        )
        if w >= 9 * len(part) * 0.6:  # the label fits its bar
            label = escape(part.replace("_", " "))
            shapes.append(f'<text class="plbl" x="{x + 2:.1f}" y="31">{label}</text>')
        at += seconds
    if t.transcription is not None:
        end = left + min(t.transcription, scale) * pps
        shapes.append(
            f'<line class="transcription" x1="{left}" x2="{end:.2f}" y1="2.5" y2="2.5" '
            f'stroke="{_COLOR["transcription"]}" stroke-width="3"><title>transcription '
            f"{t.transcription:.3f} s (inside the endpointing wait)</title></line>"
        )
    axis = ""
    for s in _ticks(scale):
        x = left + s * pps
        axis += f'<line x1="{x:.1f}" x2="{x:.1f}" y1="36" y2="40" stroke="#888"/>'
        axis += f'<text class="tick" x="{x:.1f}" y="51"{_anchor(x, width)}>{_seconds(s)}</text>'
    return (
        f'<svg class="waterfall budget" viewBox="0 0 {width} 56" width="{width}" height="56" role="img" '
        f'data-px-per-second="{pps!r}" data-x0="{left}" aria-label="where the wait went">'
        f'<line x1="{left}" x2="{width - 4}" y1="36" y2="36" stroke="#888"/>{axis}{"".join(shapes)}</svg>'
    )


def _waterfall(t: Turn, scale: float) -> str:
    """End of utterance, then LLM TTFT, then TTS TTFB, then the rest up to e2e; the
    transcription delay runs inside the end-of-utterance wait (a file without the budget)."""
    if t.budget:
        return _budget_waterfall(t, scale)
    width, left = WATERFALL_WIDTH, WATERFALL_LEFT
    px: Callable[[float], float] = lambda s: s / scale * (width - left - 4)  # noqa: E731
    bars = []
    at = 0.0
    rows = (("eou", 2, 10), ("transcription", 14, 6), ("llm_ttft", 22, 10), ("tts_ttfb", 34, 10),
            ("remainder", 46, 10))  # fmt: skip
    for key, y, h in rows:
        value = _value(t, key)
        if value is None:
            continue
        start = 0.0 if key == "transcription" else at
        bars.append(
            f'<rect class="seg" data-key="{key}" x="{left + px(start):.1f}" y="{y}" '
            f'width="{max(1.0, px(value)):.1f}" height="{h}" fill="{_COLOR[key]}">'
            f"<title>{escape(_LABEL[key])} {value:.3f} s</title></rect>"
        )
        if key != "transcription":
            at += value
    if t.tools and t.remainder is not None:  # time owned by the tool call, inside the remainder
        at -= t.remainder
        parts = (("tool-call", t.tool_call_ttft or 0.0, _COLOR["llm_ttft"], ' stroke-dasharray="3 2"',
                  "LLM TTFT of the tool call"),
                 ("tools", sum(x.seconds for x in t.tools), "#9a5b13", "", "tools"))  # fmt: skip
        used = 0.0
        for cls, wanted, color, dash, label in parts:
            seconds = min(wanted, t.remainder - used)
            if seconds <= 0:
                continue
            used += seconds
            bars.append(
                f'<rect class="{cls}" x="{left + px(at):.1f}" y="47" width="{max(1.0, px(seconds)):.1f}" '
                f'height="8" fill="none" stroke="{color}" stroke-width="2"{dash}>'
                f"<title>{label} {seconds:.3f} s</title></rect>"
            )
            at += seconds
    if t.e2e is not None:
        x = left + px(t.e2e)
        bars.append(
            f'<line class="e2e" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="58" '
            f'stroke="{_COLOR["e2e"]}" stroke-width="2"/>'
        )
    grid = "".join(
        f'<line x1="{left + px(s):.1f}" x2="{left + px(s):.1f}" y1="0" y2="58" stroke="#eef0f2"/>'
        for s in [i * 0.5 for i in range(int(scale / 0.5) + 1)]
    )
    return (
        f'<svg class="waterfall" viewBox="0 0 {width} 60" width="{width}" height="60" role="img" '
        f'aria-label="turn latency waterfall">{grid}{"".join(bars)}</svg>'
    )
