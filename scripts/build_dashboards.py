# ruff: noqa: E501  (a table of PromQL strings reads better unwrapped)
"""Write grafana/dashboards/*.json: the three otel_livekit dashboards.

The JSON files are the canonical artifacts (provisioned by Grafana, shipped in the wheel);
this script is how they are edited. tests/test_stack_dashboards.py checks that the files
equal this script's output and runs every query against a real Prometheus.

    python scripts/build_dashboards.py            # rewrite the files
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from otel_livekit.metrics.budget import PARTS

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
PROM = {"type": "prometheus", "uid": "prometheus"}
SEL = 'job=~"$job"'
MODEL_SEL = 'job=~"$job", gen_ai_provider_name=~"$provider", gen_ai_request_model=~"$model"'

Panel = dict[str, Any]


def target(expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False,
           fmt: str = "time_series", ref: str = "A") -> dict[str, Any]:  # fmt: skip
    t: dict[str, Any] = {"datasource": PROM, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
                         "range": not instant, "instant": instant, "format": fmt}  # fmt: skip
    if exemplar:
        t["exemplar"] = True
    return t


def thresholds(*steps: tuple[float, str]) -> dict[str, Any]:
    return {"mode": "absolute",
            "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in steps]}  # fmt: skip


def panel(kind: str, title: str, targets: list[dict[str, Any]], *, unit: str = "short",
          description: str = "", w: int = 12, h: int = 8, steps: tuple[tuple[float, str], ...] = (),
          stack: bool = False, decimals: int | None = None) -> Panel:  # fmt: skip
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    defaults: dict[str, Any] = {"unit": unit, "thresholds": thresholds(*steps)}
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 30 if stack else 0,
                              "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                              "thresholdsStyle": {"mode": "line" if steps else "off"}}  # fmt: skip
    p: Panel = {"type": kind, "title": title, "description": description, "datasource": PROM,
                "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": []},
                "gridPos": {"w": w, "h": h}}  # fmt: skip
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "auto"}  # fmt: skip
    if kind == "heatmap":
        p["options"] = {"calculate": False, "yAxis": {"unit": unit}, "cellGap": 1,
                        "color": {"mode": "scheme", "scheme": "Oranges"}}  # fmt: skip
    if kind == "bargauge":
        p["options"] = {"orientation": "horizontal", "displayMode": "basic",
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}  # fmt: skip
    return p


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def variables(with_model: bool) -> list[dict[str, Any]]:
    def var(name: str, label: str, query: str) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": PROM,
                "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
                "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1}  # fmt: skip

    out = [var("job", "Agent (service)", "label_values(voice_agent_sessions_started_total, job)")]
    if with_model:
        out += [
            var("provider", "Provider",
                'label_values({__name__=~"voice_agent_.+", job=~"$job"}, gen_ai_provider_name)'),
            var("model", "Model",
                'label_values({__name__=~"voice_agent_.+", job=~"$job", '
                'gen_ai_provider_name=~"$provider"}, gen_ai_request_model)'),
        ]  # fmt: skip
    return out


def layout(panels: list[Panel]) -> list[Panel]:
    """Flow panels left to right, top to bottom; unique ids."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, row_h = x + w, max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return panels


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], *, with_model: bool
) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["otel-livekit", "voice"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "timezone": "browser",
        "templating": {"list": variables(with_model)},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["otel-livekit"], "asDropdown": True, "title": "otel-livekit"}],
        "panels": layout(panels),
    }  # fmt: skip


def grown(series: str, window: str) -> str:
    """What ``series`` counted in ``window``, including job processes born inside it (a
    LiveKit call runs in its own process, whose series appears with the call already
    counted; plain increase() would miss it). See prometheus/rules/voice-agent-recording.yml."""
    return (
        f"(increase({series}[{window}]) and {series} offset {window}) or "
        f"(max_over_time({series}[{window}]) unless {series} offset {window})"
    )


ZERO_IF_CALLS = f"0 * sum(job:voice_agent_sessions_started:rate5m{{{SEL}}})"
"""0 while the selected agents report calls, no data when they report nothing: a count
panel reads 0 on a healthy agent instead of "No data", and still goes blank when the agent
is gone (not a reassuring 0)."""


def in_range(metric: str, sel: str = SEL, by: str = "") -> str:
    return f"sum{f' by ({by})' if by else ''} ({grown(metric + '{' + sel + '}', '$__range')})"


def q(quantile: float, bucket: str, by: str = "", sel: str = SEL, window: str = "$__rate_interval") -> str:
    """A quantile from bucket counts in ``window`` (scale-free, so counts, not rates)."""
    return (f"histogram_quantile({quantile}, sum by (le{', ' + by if by else ''}) "
            f"({grown(bucket + '{' + sel + '}', window)}))")  # fmt: skip


LAT_STEPS = ((1.0, "yellow"), (1.5, "red"))
EXPORT_FAILURE_STEPS = ((0.01, "yellow"), (0.05, "red"))
"""Red at the VoiceAgentExportFailures default (otel_livekit:export_failure_ratio:threshold)."""
REC = "job:voice_agent_turn_latency_seconds_bucket:rate5m"


BUDGET = "voice_agent_turn_budget_seconds"
PART = "voice_agent_turn_part"
DOMINANT = "voice_agent_turn_dominant_part"
BUDGETED_TURNS = f'{BUDGET}_count{{{SEL}, {PART}="residual"}}'
"""Every budgeted turn records its residual (0 s when nothing is left): its count is the turns."""


def per_turn_by_part(window: str) -> str:
    """Seconds per turn spent in each part: the parts' sums over the turns, so the parts of
    the mean add up to the mean wait (where a per-part mean would not)."""
    return (f"sum by ({PART}) ({grown(BUDGET + '_sum{' + SEL + '}', window)}) "
            f"/ on () group_left sum({grown(BUDGETED_TURNS, window)})")  # fmt: skip


def where_the_time_goes() -> list[Panel]:
    """The turn budget (docs/latency.md): the wait cut into parts that add up to it."""
    slow = f"sum({grown('voice_agent_turn_slow_total{' + SEL + '}', '$__range')})"
    turns = f"sum({grown(BUDGETED_TURNS, '$__range')})"
    return [
        row("Where the time goes (the turn budget: parts that add up to the wait)"),
        panel("timeseries", "Wait per turn, by part (mean, stacked: adds up to the mean wait)", [
            target(per_turn_by_part("$__rate_interval"), f"{{{{{PART}}}}}"),
        ], unit="s", stack=True,
           description="From the user's last word (or text) to the agent's first audio: "
                       f"{', '.join(PARTS)}; each part's seconds over the turns."),
        panel("bargauge", "Wait per turn in range, by part (mean)", [
            target(per_turn_by_part("$__range"), f"{{{{{PART}}}}}", instant=True),
        ], unit="s", description="The bars add up to the mean wait of a turn in the range."),
        panel("bargauge", "p50 / p95 by part in range (percentiles do not add up)", [
            target(q(0.5, BUDGET + "_bucket", PART, window="$__range"), f"p50 {{{{{PART}}}}}", instant=True),
            target(q(0.95, BUDGET + "_bucket", PART, window="$__range"), f"p95 {{{{{PART}}}}}", instant=True),
        ], unit="s",
           description="Each part's own p50 and p95 over the turns that had it. Percentiles of parts "
                       "do not sum to a percentile of the wait, so they are not stacked."),
        panel("bargauge", "Slow turns in range, by dominant part", [
            target(f"{in_range('voice_agent_turn_slow_total', by=DOMINANT)} or on () (0 * {turns})",
                   f"{{{{{DOMINANT}}}}}", instant=True),
        ], w=8, decimals=0,
           description="Turns whose wait passed OTEL_LIVEKIT_SLOW_TURN_SECONDS (1.5 s by default), "
                       "by the part that took longest; 0 while the agents answer and none was slow."),
        panel("stat", "Slow turns in range (share)", [
            target(f"({slow} or 0 * {turns}) / {turns}", instant=True),
        ], unit="percentunit", w=4, steps=((0.05, "red"),),
           description="Slow turns (OTEL_LIVEKIT_SLOW_TURN_SECONDS) over budgeted turns."),
    ]  # fmt: skip


def voice_latency() -> dict[str, Any]:
    panels = [
        row("Turns in the selected range"),
        panel("stat", "Turns", [target(
            in_range("voice_agent_turn_latency_seconds_count"), instant=True)],
            w=6, h=4, decimals=0, description="Agent turns with a measured latency (replies to audio or text)."),
        panel("stat", "p95 turn latency", [target(
            q(0.95, "voice_agent_turn_latency_seconds_bucket", window="$__range"), instant=True)],
            unit="s", w=6, h=4, steps=LAT_STEPS,
            description="End-of-utterance delay + LLM time to first token + TTS time to first byte."),
        panel("stat", "p50 turn latency", [target(
            q(0.5, "voice_agent_turn_latency_seconds_bucket", window="$__range"), instant=True)],
            unit="s", w=6, h=4, steps=LAT_STEPS),
        panel("stat", "Slow turns (SLO, last hour)", [target(
            f"max(job:voice_agent_turn_latency_slow:ratio_rate1h{{{SEL}}})", instant=True)],
            unit="percentunit", w=6, h=4, steps=((0.05, "red"),),
            description="Share of turns slower than voice_agent:turn_latency_slo:threshold_seconds "
                        "(budget: 1 - objective, 5% by default)."),
        row("Turn latency over time"),
        panel("timeseries", "Turn latency p50 / p95 / p99", [
            target(f"histogram_quantile(0.5, sum by (le) ({REC}{{{SEL}}}))", "p50"),
            target(f"histogram_quantile(0.95, sum by (le) ({REC}{{{SEL}}}))", "p95"),
            target(f"histogram_quantile(0.99, sum by (le) ({REC}{{{SEL}}}))", "p99"),
            target("max(voice_agent:turn_latency_slo:threshold_seconds)", "SLO threshold"),
        ], unit="s", steps=LAT_STEPS, description="From the recording rules (5 m rate windows)."),
        panel("timeseries", "Turn latency p95 by input (exemplars link to the turn's trace)", [
            target(q(0.95, "voice_agent_turn_latency_seconds_bucket", "voice_agent_turn_input"),
                   "{{voice_agent_turn_input}}", exemplar=True),
        ], unit="s", steps=LAT_STEPS),
        panel("timeseries", "LiveKit e2e latency p95 vs turn latency p95", [
            target(q(0.95, "voice_agent_turn_e2e_latency_seconds_bucket"), "e2e (LiveKit)", exemplar=True),
            target(q(0.95, "voice_agent_turn_latency_seconds_bucket"), "turn latency"),
        ], unit="s", steps=LAT_STEPS),
        panel("heatmap", "Turn latency heatmap", [
            target(f"sum by (le) ({grown('voice_agent_turn_latency_seconds_bucket{' + SEL + '}', '$__rate_interval')})",
                   "{{le}}", fmt="heatmap"),
        ], unit="s", w=24),
        *where_the_time_goes(),
        row("Per provider and model"),
        panel("timeseries", "LLM time to first token p95 (turns), by model", [
            target(q(0.95, "voice_agent_turn_llm_ttft_seconds_bucket",
                     "gen_ai_provider_name, gen_ai_request_model", MODEL_SEL),
                   "{{gen_ai_provider_name}}/{{gen_ai_request_model}}", exemplar=True),
        ], unit="s", steps=((0.5, "yellow"), (1.0, "red"))),
        panel("timeseries", "TTS time to first byte p95 (every request), by model", [
            target(q(0.95, "voice_agent_tts_ttfb_seconds_bucket",
                     "gen_ai_provider_name, gen_ai_request_model", MODEL_SEL),
                   "{{gen_ai_provider_name}}/{{gen_ai_request_model}}", exemplar=True),
        ], unit="s", steps=((0.3, "yellow"), (0.6, "red"))),
        panel("timeseries", "LLM request duration p95, by model", [
            target(q(0.95, "gen_ai_client_operation_duration_seconds_bucket",
                     "gen_ai_provider_name, gen_ai_request_model", MODEL_SEL),
                   "{{gen_ai_provider_name}}/{{gen_ai_request_model}}"),
        ], unit="s"),
        panel("timeseries", "Transcription and end-of-utterance delay p95", [
            target(q(0.95, "voice_agent_turn_transcription_delay_seconds_bucket"), "transcription delay"),
            target(q(0.95, "voice_agent_turn_end_of_utterance_delay_seconds_bucket"), "end-of-utterance delay"),
        ], unit="s"),
        panel("heatmap", "LLM time to first token heatmap", [
            target(f"sum by (le) ({grown('voice_agent_turn_llm_ttft_seconds_bucket{' + MODEL_SEL + '}', '$__rate_interval')})",
                   "{{le}}", fmt="heatmap"),
        ], unit="s", w=24),
    ]  # fmt: skip
    return dashboard("otel-livekit-voice-latency", "Voice latency (otel_livekit)",
                     "Per-turn latency of LiveKit voice agents, its budget, and per-model stages.",
                     panels, with_model=True)  # fmt: skip


def tokens_cost() -> dict[str, Any]:
    tok = "job:voice_agent_tokens:rate5m"
    panels = [
        row("Selected range (cost is an estimate from the price table)"),
        panel("stat", "Tokens by type", [target(
            in_range("voice_agent_tokens_total", MODEL_SEL, "gen_ai_token_type"),
            "{{gen_ai_token_type}}", instant=True)], w=8, h=5, decimals=0),
        panel("stat", "Estimated cost (USD)", [target(
            in_range("voice_agent_cost_total", MODEL_SEL), instant=True)],
            unit="currencyUSD", w=8, h=5, decimals=4,
            description="An estimate: usage x the price table (otel_livekit prices.json or yours)."),
        panel("stat", "Estimated cost per call (USD)", [target(
            f"{in_range('voice_agent_cost_total', MODEL_SEL)} / {in_range('voice_agent_sessions_ended_total')}",
            instant=True)],
            unit="currencyUSD", w=8, h=5, decimals=4, description="Estimate: cost / calls ended."),
        row("Rates"),
        panel("timeseries", "Token rate by model and type", [
            target(f"sum by (gen_ai_request_model, gen_ai_token_type) ({tok}{{{MODEL_SEL}}})",
                   "{{gen_ai_request_model}} {{gen_ai_token_type}}"),
        ], unit="short", description="Tokens per second (recording rule, 5 m)."),
        panel("timeseries", "Cached share of LLM input tokens", [
            target(f'sum({tok}{{{MODEL_SEL}, gen_ai_token_type="cached_input"}}) / '
                   f'sum({tok}{{{MODEL_SEL}, gen_ai_token_type="input"}})', "cached share"),
        ], unit="percentunit"),
        panel("timeseries", "Estimated cost per hour by component (USD)", [
            target(f"sum by (voice_agent_component) (job:voice_agent_cost_usd:rate5m{{{MODEL_SEL}}}) * 3600",
                   "{{voice_agent_component}}"),
        ], unit="currencyUSD", stack=True, description="An estimate from the price table."),
        panel("timeseries", "TTS characters per second, by model", [
            target(f"sum by (gen_ai_provider_name, gen_ai_request_model) "
                   f"(job:voice_agent_tts_characters:rate5m{{{MODEL_SEL}}})",
                   "{{gen_ai_provider_name}}/{{gen_ai_request_model}}"),
        ], unit="short"),
        panel("bargauge", "STT audio minutes in range, by model", [target(
            f"{in_range('voice_agent_stt_audio_duration_seconds_total', MODEL_SEL, 'gen_ai_provider_name, gen_ai_request_model')} / 60",
            "{{gen_ai_provider_name}}/{{gen_ai_request_model}}", instant=True)], unit="m"),
        panel("bargauge", "TTS audio minutes in range, by model", [target(
            f"{in_range('voice_agent_tts_audio_duration_seconds_total', MODEL_SEL, 'gen_ai_provider_name, gen_ai_request_model')} / 60",
            "{{gen_ai_provider_name}}/{{gen_ai_request_model}}", instant=True)], unit="m"),
        panel("bargauge", "Estimated cost in range by model (USD)", [target(
            in_range("voice_agent_cost_total", MODEL_SEL, "voice_agent_component, gen_ai_provider_name, gen_ai_request_model"),
            "{{voice_agent_component}} {{gen_ai_provider_name}}/{{gen_ai_request_model}}", instant=True)],
            unit="currencyUSD", decimals=4),
        panel("timeseries", "LLM output tokens per second p50, by model", [
            target(q(0.5, "voice_agent_llm_tokens_per_second_bucket",
                     "gen_ai_provider_name, gen_ai_request_model", MODEL_SEL),
                   "{{gen_ai_provider_name}}/{{gen_ai_request_model}}"),
        ], unit="short"),
    ]  # fmt: skip
    return dashboard("otel-livekit-tokens-cost", "Tokens and cost (otel_livekit)",
                     "LLM tokens, TTS characters, STT audio and the estimated cost of LiveKit voice agents.",
                     panels, with_model=True)  # fmt: skip


def pipeline_health() -> dict[str, Any]:
    per_min = "* 60"
    panels = [
        row("Calls"),
        panel("stat", "Calls active", [target(f"sum(voice_agent_sessions_active{{{SEL}}})", instant=True)],
              w=6, h=4, decimals=0),
        panel("stat", "Calls started", [target(
            in_range("voice_agent_sessions_started_total"), instant=True)],
            w=6, h=4, decimals=0),
        panel("stat", "Tool errors", [target(
            f'{in_range("voice_agent_tool_errors_total")} or vector(0)', instant=True)],
            w=6, h=4, decimals=0, steps=((1, "red"),)),
        panel("stat", "Pipeline errors per turn (10 m)", [target(
            f"max(job:voice_agent_errors_per_turn:ratio_rate10m{{{SEL}}})", instant=True)],
            w=6, h=4, steps=((0.05, "red"),)),
        panel("timeseries", "Calls ended per minute, by close reason", [
            target(f"sum by (voice_agent_close_reason) (job:voice_agent_sessions_ended:rate5m{{{SEL}}}) {per_min}",
                   "{{voice_agent_close_reason}}"),
            target(f"sum(job:voice_agent_sessions_started:rate5m{{{SEL}}}) {per_min}", "started"),
        ], unit="short"),
        panel("timeseries", "Turns per minute, by input", [
            target(f"sum by (voice_agent_turn_input) "
                   f"(job:voice_agent_turn_latency_seconds_count:rate5m{{{SEL}}}) {per_min}",
                   "{{voice_agent_turn_input}}"),
        ], unit="short"),
        panel("timeseries", "Interruptions per minute, by kind (false = resumed)", [
            target(f"sum by (voice_agent_interruption_kind) (job:voice_agent_interruptions:rate5m{{{SEL}}}) {per_min}"
                   f" or {ZERO_IF_CALLS}", "{{voice_agent_interruption_kind}}"),
        ], unit="short"),
        panel("bargauge", "Tool calls and errors in range, by tool", [
            target(in_range("voice_agent_tool_calls_total", by="gen_ai_tool_name"),
                   "{{gen_ai_tool_name}} calls", instant=True),
            # every called tool shows its errors, 0 included
            target(f'{in_range("voice_agent_tool_errors_total", by="gen_ai_tool_name")} or '
                   f'0 * {in_range("voice_agent_tool_calls_total", by="gen_ai_tool_name")}',
                   "{{gen_ai_tool_name}} errors", instant=True),
        ], decimals=0),
        row("Errors and cancellations"),
        panel("timeseries", "Errors per minute, by component and recoverability", [
            target("sum by (voice_agent_component, voice_agent_error_recoverable) "
                   f"(job:voice_agent_errors:rate5m{{{SEL}}}) {per_min} or {ZERO_IF_CALLS}",
                   "{{voice_agent_component}} recoverable={{voice_agent_error_recoverable}}"),
        ], unit="short", steps=((1, "red"),)),
        panel("bargauge", "Cancelled requests in range, by component", [target(
            f'{in_range("voice_agent_requests_cancelled_total", MODEL_SEL, "voice_agent_component")} or vector(0)',
            "{{voice_agent_component}}", instant=True)], decimals=0),
        row("Session shape"),
        panel("stat", "Call duration p50 / p95 in range", [
            target(q(0.5, "voice_agent_session_duration_seconds_bucket", window="$__range"), "p50", instant=True),
            target(q(0.95, "voice_agent_session_duration_seconds_bucket", window="$__range"), "p95", instant=True),
        ], unit="s"),
        panel("stat", "Turns per call p50 / p95 in range", [
            target(q(0.5, "voice_agent_session_turns_bucket", window="$__range"), "p50", instant=True),
            target(q(0.95, "voice_agent_session_turns_bucket", window="$__range"), "p95", instant=True),
        ], unit="short"),
        row("Load"),
        panel("timeseries", "VAD inferences per second and mean inference time", [
            target(f"sum by (gen_ai_provider_name, gen_ai_request_model) (job:voice_agent_vad_inferences:rate5m{{{MODEL_SEL}}})",
                   "{{gen_ai_provider_name}}/{{gen_ai_request_model}} inferences/s"),
            target(f"sum ({grown('voice_agent_vad_inference_duration_seconds_sum{' + MODEL_SEL + '}', '$__rate_interval')}) / "
                   f"sum ({grown('voice_agent_vad_inference_duration_seconds_count{' + MODEL_SEL + '}', '$__rate_interval')})",
                   "mean inference (s)"),
        ], unit="short"),
        panel("timeseries", "LiveKit worker load (worker /metrics)", [
            target("max by (nodename) (lk_agents_worker_load)", "load {{nodename}}"),
            target("sum by (nodename) (lk_agents_active_job_count)", "active jobs {{nodename}}"),
            target("max by (nodename) (lk_agents_child_process_count)", "job processes {{nodename}}"),
        ], unit="short", steps=((0.7, "yellow"), (0.9, "red")),
           description="LiveKit's own worker gauges, scraped from the worker's prometheus_port "
                       "(no agent filter: they are per worker)."),
        row("Telemetry export, the agents' side (otel_livekit self-metrics)"),
        panel("stat", "Agent export failure ratio in range, by signal", [target(
            f"{in_range('otel_livekit_export_failures_total', by='otel_livekit_signal')} / "
            f"{in_range('otel_livekit_export_attempts_total', by='otel_livekit_signal')}",
            "{{otel_livekit_signal}}", instant=True)],
            unit="percentunit", w=8, h=4, decimals=1, steps=EXPORT_FAILURE_STEPS,
            description="Failed share of the agents' own export attempts (retries and spool replays "
                        "included); alert: VoiceAgentExportFailures."),
        panel("stat", "Agent export failed attempts in range, by signal", [target(
            in_range("otel_livekit_export_failures_total", by="otel_livekit_signal"),
            "{{otel_livekit_signal}}", instant=True)],
            w=8, h=4, decimals=0, steps=((1, "red"),)),
        panel("stat", "Items dropped for good in range, by signal", [target(
            in_range("otel_livekit_export_items_total", f'{SEL}, otel_livekit_export_outcome="dropped"',
                     "otel_livekit_signal"),
            "{{otel_livekit_signal}}", instant=True)],
            w=8, h=4, decimals=0, steps=((1, "red"),),
            description="Spans / metric points never delivered: failed or cut off at job end without "
                        "the spool, evicted from the full spool, rejected for good; alert: "
                        "VoiceAgentExportItemsDropped."),
        panel("timeseries", "Agent export attempts and failed attempts per second, by signal", [
            target(f"sum by (otel_livekit_signal) (job:otel_livekit_export_attempts:rate5m{{{SEL}}})",
                   "{{otel_livekit_signal}} attempts"),
            target(f"sum by (otel_livekit_signal) (job:otel_livekit_export_failures:rate5m{{{SEL}}})",
                   "{{otel_livekit_signal}} failed"),
        ], unit="reqps", description="Export HTTP attempts of the agents' own exporters "
                                     "(recording rules, 5 m)."),
        panel("timeseries", "Agent export failure ratio, by signal", [
            target(f"sum by (otel_livekit_signal) (job:otel_livekit_export_failures:rate5m{{{SEL}}}) / "
                   f"sum by (otel_livekit_signal) (job:otel_livekit_export_attempts:rate5m{{{SEL}}})",
                   "{{otel_livekit_signal}}"),
            target("max(otel_livekit:export_failure_ratio:threshold)", "alert threshold"),
        ], unit="percentunit", steps=EXPORT_FAILURE_STEPS),
        panel("timeseries", "Agent export items per second, by signal and outcome", [
            target("sum by (otel_livekit_signal, otel_livekit_export_outcome) "
                   f"(job:otel_livekit_export_items:rate5m{{{SEL}}})",
                   "{{otel_livekit_signal}} {{otel_livekit_export_outcome}}"),
        ], unit="suffix: items/s", w=24,
           description="delivered; spooled (on disk, the backend did not take them in time); replayed "
                       "(from the spool, later); dropped (for good)."),
        row("Telemetry export, the Collector's side (OTel Collector self-metrics)"),
        panel("timeseries", "Collector export failures per second, by exporter", [
            target("sum by (exporter) (rate(otelcol_exporter_send_failed_spans_total[$__rate_interval]))",
                   "{{exporter}} spans"),
            target("sum by (exporter) (rate(otelcol_exporter_send_failed_metric_points_total[$__rate_interval]))",
                   "{{exporter}} metric points"),
        ], unit="short", steps=((0.01, "red"),),
           description="Scraped from the Collector's own telemetry (:8888): what the Collector "
                       "failed to pass on; the agents' side is the row above."),
        panel("timeseries", "Collector items sent per second, by exporter", [
            target("sum by (exporter) (rate(otelcol_exporter_sent_spans_total[$__rate_interval]))",
                   "{{exporter}} spans"),
            target("sum by (exporter) (rate(otelcol_exporter_sent_metric_points_total[$__rate_interval]))",
                   "{{exporter}} metric points"),
            target("sum by (exporter) (otelcol_exporter_queue_size)", "{{exporter}} queue"),
        ], unit="short"),
    ]  # fmt: skip
    return dashboard("otel-livekit-pipeline-health", "Pipeline health (otel_livekit)",
                     "Calls, turns, interruptions, tools, errors, load and telemetry export of LiveKit "
                     "voice agents.", panels, with_model=True)  # fmt: skip


DASHBOARDS = {
    "voice-latency.json": voice_latency,
    "tokens-cost.json": tokens_cost,
    "pipeline-health.json": pipeline_health,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
