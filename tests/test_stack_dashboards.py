"""Every panel and variable query of the three Grafana dashboards, run against a real
Prometheus that scraped real offline calls (with the stack's recording rules loaded), and
the key panels' values equal to what the calls produced.

Grafana's macros and variables are substituted as Grafana does with "All" selected: the
dashboard range is [a scrape after a warm-up call, a scrape after the counted calls], so
``$__range`` is that span; ``$__rate_interval`` is max($__interval + scrape, 4 x scrape);
a variable's "All" is its ``allValue`` (``.*``). Stat panels (``instant``) are evaluated at
the range's end, time-series panels as range queries over it, as Grafana runs them.
"""

from __future__ import annotations

import json
import math
import re
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import REPO_ROOT, prometheus_binary, require_or_skip
from stack_harness import (
    JOB,
    SCRAPE_SECONDS,
    TURNS_PER_CALL,
    WORKER_JOB,
    PackageEndpoint,
    SdkReaderEndpoint,
    StackRun,
    finite_values,
    healthy_call,
    scraped_calls,
)

DASHBOARD_DIR = REPO_ROOT / "grafana" / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
COLLECTOR_ONLY = re.compile(r"\botelcol_")
"""Queries on the OTel Collector's own metrics: no Collector runs here (see the README),
so they are checked for validity only."""


@pytest.fixture(scope="module", params=["collector-names", "package-endpoint"])
def stack(request: pytest.FixtureRequest) -> Iterator[StackRun]:
    """The same calls scraped two ways: through the OTel SDK's Prometheus reader (the names
    the Collector path produces) and through the package's own /metrics endpoint."""
    require_or_skip("prometheus (Debian package)", prometheus_binary() is not None)
    endpoint = SdkReaderEndpoint() if request.param == "collector-names" else PackageEndpoint()
    with scraped_calls(endpoint, counted_calls=2) as run:
        yield run


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def variable_values(doc: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["allValue"] for v in doc["templating"]["list"]}


def render(expr: str, run: StackRun, variables: dict[str, str]) -> str:
    """Substitute Grafana's macros and the variables' "All" values."""
    scrape = SCRAPE_SECONDS
    interval = max(run.range_ms / 1000 / 1000, scrape)  # range / maxDataPoints (1000), >= scrape
    rate_interval = max(interval + scrape, 4 * scrape)
    out = (expr.replace("$__rate_interval", f"{rate_interval:g}s")
           .replace("$__range", f"{run.range_ms}ms").replace("$__interval", f"{interval:g}s"))  # fmt: skip
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        out = out.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in out, f"unsubstituted macro or variable in {out!r}"
    return out


def run_target(run: StackRun, target: dict[str, Any], variables: dict[str, str]) -> list[dict[str, Any]]:
    expr = render(target["expr"], run, variables)
    if target.get("instant"):
        return run.prom.query(expr, at=run.t_end)
    return run.prom.query_range(expr, run.t_first, run.t_end, SCRAPE_SECONDS)


def all_targets() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, p["title"], t)
            for path in DASHBOARDS for p in panels(load(path)) for t in p["targets"]]  # fmt: skip


@pytest.mark.parametrize(("dashboard", "title", "target"), all_targets(),
                         ids=[f"{d}:{t}:{x['refId']}" for d, t, x in all_targets()])  # fmt: skip
def test_every_panel_query_returns_data(
    stack: StackRun, dashboard: str, title: str, target: dict[str, Any]
) -> None:
    variables = variable_values(load(DASHBOARD_DIR / dashboard))
    result = run_target(stack, target, variables)  # a query Prometheus rejects raises here
    if COLLECTOR_ONLY.search(target["expr"]):
        return
    assert finite_values(result), f"{title}: no data for {target['expr']}"


def test_every_variable_query_returns_values(stack: StackRun) -> None:
    for path in DASHBOARDS:
        doc = load(path)
        variables = variable_values(doc)
        for var in doc["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
            assert m, var["query"]
            values = stack.prom.label_values(m.group(2), render(m.group(1), stack, variables))
            assert values, f"{path.name}: variable {var['name']} has no values"
            if var["name"] == "job":
                assert JOB in values and WORKER_JOB not in values
            if var["name"] == "provider":
                assert {"openai", "fake-tts-co", "fake-stt-co"} <= set(values)


def stat(run: StackRun, dashboard: str, title: str) -> list[dict[str, Any]]:
    doc = load(DASHBOARD_DIR / f"{dashboard}.json")
    (panel,) = [p for p in panels(doc) if p["title"] == title]
    (target,) = panel["targets"]
    return run_target(run, target, variable_values(doc))


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float:
    """Prometheus 2.42's histogram_quantile on (upper bound, cumulative count) pairs."""
    total = cumulative[-1][1]
    rank = q * total
    i = next(i for i, (_, c) in enumerate(cumulative) if c >= rank)
    if i == len(cumulative) - 1:
        return cumulative[-2][0]
    start, prev = cumulative[i - 1] if i > 0 else (0.0, 0.0)
    end, count = cumulative[i]
    return start + (end - start) * ((rank - prev) / (count - prev))


def counted_buckets(run: StackRun, name: str, **attrs: str) -> list[tuple[float, float]]:
    """Cumulative bucket counts of the counted calls only (after - before), summed over series."""

    def buckets(points: Any) -> list[int]:
        total: list[int] = []
        for p in points.matching(name, **attrs):
            total = [a + b for a, b in zip(total or [0] * len(p.bucket_counts), p.bucket_counts, strict=True)]
        return total

    (bounds,) = {tuple(p.explicit_bounds) for p in run.after.matching(name, **attrs)}
    after, before = buckets(run.after), buckets(run.before)
    diff = [a - b for a, b in zip(after, before or [0] * len(after), strict=True)]
    cumulative, acc = [], 0
    for upper, n in zip([*bounds, float("inf")], diff, strict=True):
        acc += n
        cumulative.append((upper, float(acc)))
    return cumulative


def test_turn_count_equals_the_calls_turns(stack: StackRun) -> None:
    (sample,) = stat(stack, "voice-latency", "Turns")
    expected = stack.after.count("voice_agent.turn.latency") - stack.before.count("voice_agent.turn.latency")
    assert expected == stack.calls * TURNS_PER_CALL
    assert float(sample["value"][1]) == expected


def test_p95_turn_latency_equals_the_quantile_of_the_calls_histogram(stack: StackRun) -> None:
    (sample,) = stat(stack, "voice-latency", "p95 turn latency")
    cumulative = counted_buckets(stack, "voice_agent.turn.latency")
    assert float(sample["value"][1]) == histogram_quantile(0.95, cumulative)
    assert 0.2 < float(sample["value"][1]) < 2.0  # LLM TTFT alone is 0.2 s


BUDGET, PART, DOMINANT = "voice_agent.turn.budget", "voice_agent.turn.part", "voice_agent.turn.dominant_part"


def counted(run: StackRun, name: str, **attrs: str) -> float:
    """What the counted calls added to a counter (or a histogram's sum)."""
    return run.after.value(name, **attrs) - run.before.value(name, **attrs)


def budget_parts(run: StackRun) -> set[str]:
    return {str(p.attributes[PART]) for p in run.after.matching(BUDGET)}


def test_wait_per_turn_by_part_equals_the_calls_budget(stack: StackRun) -> None:
    """Each part's seconds over the turns; the bars add up to the mean wait."""
    turns = stack.after.count(BUDGET, **{PART: "residual"}) - stack.before.count(BUDGET, **{PART: "residual"})
    assert turns == stack.calls * TURNS_PER_CALL  # every reply got a budget (say() has none)
    got = {s["metric"]["voice_agent_turn_part"]: float(s["value"][1])
           for s in stat(stack, "voice-latency", "Wait per turn in range, by part (mean)")}  # fmt: skip
    assert set(got) == budget_parts(stack) >= {"vad_silence", "tool_llm", "tool", "llm_ttft", "tts_ttfb"}
    for part, value in got.items():
        assert value == pytest.approx(counted(stack, BUDGET, **{PART: part}) / turns, rel=1e-9), part
    assert sum(got.values()) == pytest.approx(counted(stack, BUDGET) / turns, rel=1e-9)


def test_part_percentiles_equal_the_quantiles_of_the_calls_histogram(stack: StackRun) -> None:
    doc = load(DASHBOARD_DIR / "voice-latency.json")
    title = "p50 / p95 by part in range (percentiles do not add up)"
    (panel,) = [p for p in panels(doc) if p["title"] == title]
    # a part only the warm-up call had (a few-ms endpointing on a loaded machine) has no
    # observation in the range: no quantile (NaN), as Grafana shows it
    def observed(part: str) -> int:
        return stack.after.count(BUDGET, **{PART: part}) - stack.before.count(BUDGET, **{PART: part})

    counted_parts = {part for part in budget_parts(stack) if observed(part) > 0}
    for quantile, target in zip((0.5, 0.95), panel["targets"], strict=True):
        got = {s["metric"]["voice_agent_turn_part"]: float(s["value"][1])
               for s in run_target(stack, target, variable_values(doc))}  # fmt: skip
        assert counted_parts <= set(got) <= budget_parts(stack)
        for part, value in got.items():
            if part not in counted_parts:
                assert math.isnan(value), part
                continue
            expected = histogram_quantile(quantile, counted_buckets(stack, BUDGET, **{PART: part}))
            assert value == pytest.approx(expected, rel=1e-9), (quantile, part)


def test_slow_turns_by_dominant_part_equal_the_calls_counter(stack: StackRun) -> None:
    name = "voice_agent.turn.slow"
    got = {s["metric"]["voice_agent_turn_dominant_part"]: float(s["value"][1])
           for s in stat(stack, "voice-latency", "Slow turns in range, by dominant part")}  # fmt: skip
    expected = {str(p.attributes[DOMINANT]): counted(stack, name, **{DOMINANT: str(p.attributes[DOMINANT])})
                for p in stack.after.matching(name)}  # fmt: skip
    assert got == expected and sum(got.values()) > 0
    turns = stack.calls * TURNS_PER_CALL
    assert 0 < sum(got.values()) < turns  # SLOW_TURN_SECONDS splits the calls' turns
    (share,) = stat(stack, "voice-latency", "Slow turns in range (share)")
    assert float(share["value"][1]) == pytest.approx(sum(got.values()) / turns, rel=1e-12)


def test_token_totals_equal_the_calls_tokens(stack: StackRun) -> None:
    """Including the second model's series, born inside the range."""
    born = {"gen_ai.request.model": "fake-gpt-mini"}
    assert not stack.before.matching("voice_agent.tokens", **born)
    assert stack.after.value("voice_agent.tokens", **born) > 0
    got = {s["metric"]["gen_ai_token_type"]: float(s["value"][1])
           for s in stat(stack, "tokens-cost", "Tokens by type")}  # fmt: skip
    expected = {}
    for token_type in got:
        attrs = {"gen_ai.token.type": token_type}
        expected[token_type] = (stack.after.value("voice_agent.tokens", **attrs)
                                - stack.before.value("voice_agent.tokens", **attrs))  # fmt: skip
    assert got == expected
    # OfflineLLM: 40 prompt (5 cached), 8 completion tokens per request
    llm_requests = expected["input"] / 40
    assert llm_requests == int(llm_requests) > 0
    assert expected["output"] == 8 * llm_requests and expected["cached_input"] == 5 * llm_requests


def test_cost_equals_the_calls_cost(stack: StackRun) -> None:
    (sample,) = stat(stack, "tokens-cost", "Estimated cost (USD)")
    expected = stack.after.value("voice_agent.cost") - stack.before.value("voice_agent.cost")
    assert expected > 0
    assert float(sample["value"][1]) == pytest.approx(expected, rel=1e-12)
    (per_call,) = stat(stack, "tokens-cost", "Estimated cost per call (USD)")
    assert float(per_call["value"][1]) == pytest.approx(expected / stack.calls, rel=1e-12)


def test_calls_and_tool_errors(stack: StackRun) -> None:
    (started,) = stat(stack, "pipeline-health", "Calls started")
    assert float(started["value"][1]) == stack.calls
    (tool_errors,) = stat(stack, "pipeline-health", "Tool errors")
    assert float(tool_errors["value"][1]) == stack.calls  # book_flight fails once per call


def test_agent_export_health_equals_what_the_destinations_saw(stack: StackRun) -> None:
    """Two named span destinations took every span of the counted calls: one delivered all,
    the other (a closed port) failed every export, so each span is delivered once and
    dropped once, and some but not all attempts failed."""
    signal = {"otel_livekit.signal": "traces"}

    def counted(name: str, **attrs: str) -> float:
        return stack.after.value(name, **signal, **attrs) - stack.before.value(name, **signal, **attrs)

    assert stack.spans > 0
    for outcome, expected in (("dropped", stack.spans), ("delivered", stack.spans),
                              ("spooled", 0), ("replayed", 0)):  # fmt: skip
        assert counted("otel_livekit.export.items", **{"otel_livekit.export.outcome": outcome}) == expected
    (dropped,) = stat(stack, "pipeline-health", "Items dropped for good in range, by signal")
    assert dropped["metric"] == {"otel_livekit_signal": "traces"}
    assert float(dropped["value"][1]) == stack.spans
    failures, attempts = counted("otel_livekit.export.failures"), counted("otel_livekit.export.attempts")
    assert 0 < failures < attempts
    (failed,) = stat(stack, "pipeline-health", "Agent export failed attempts in range, by signal")
    assert float(failed["value"][1]) == failures
    (ratio,) = stat(stack, "pipeline-health", "Agent export failure ratio in range, by signal")
    assert float(ratio["value"][1]) == pytest.approx(failures / attempts, rel=1e-12)


def test_collector_only_queries_are_few_and_named(stack: StackRun) -> None:
    """Only the Collector self-metric panels go unproven here; docs/stack.md lists them."""
    readme = (REPO_ROOT / "docs" / "stack.md").read_text()
    only = {title for _, title, t in all_targets() if COLLECTOR_ONLY.search(t["expr"])}
    assert only == {"Collector export failures per second, by exporter",
                    "Collector items sent per second, by exporter"}  # fmt: skip
    for title in only:
        assert title in readme


def test_dashboard_files_are_the_generators_output() -> None:
    rendered = runpy.run_path(str(REPO_ROOT / "scripts" / "build_dashboards.py"))["render"]()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"{path.name}: run scripts/build_dashboards.py"


def test_every_metric_name_in_the_stack_is_one_prometheus_stored(stack: StackRun) -> None:
    """The names in rules, promtool tests and dashboards are the ones the OTel→Prometheus
    rules produced from the catalogue for the real calls (not typed by hand)."""
    stored = set(stack.prom.api("label/__name__/values", {})) | set(stack.prom.api("labels", {}))
    texts = [p.read_text() for p in (REPO_ROOT / "prometheus").rglob("*.yml")]
    texts += [p.read_text() for p in DASHBOARDS]
    used = set()
    for text in texts:
        text = re.sub(r"[\w]*:[\w:]+", " ", text)  # recording rule names (level:metric:ops)
        text = re.sub(r"- name: .*", " ", text)  # rule group names
        used |= set(re.findall(r"\b((?:voice_agent|gen_ai|lk_agents|otel_livekit)_[a-z0-9_]+)", text))
    assert len(used) > 30
    missing = sorted(name for name in used if name not in stored)
    assert missing == [], f"metric or label names no real call produced: {missing}"


ZERO_PANELS = (
    ("pipeline-health", "Tool errors"),
    ("pipeline-health", "Interruptions per minute, by kind (false = resumed)"),
    ("pipeline-health", "Errors per minute, by component and recoverability"),
    ("pipeline-health", "Cancelled requests in range, by component"),
    ("voice-latency", "Slow turns in range, by dominant part"),
    ("voice-latency", "Slow turns in range (share)"),
)


@pytest.fixture(scope="module")
def healthy() -> Iterator[StackRun]:
    """Calls with nothing wrong, through the package's own /metrics; no turn is slow at the
    default threshold (1.5 s)."""
    require_or_skip("prometheus (Debian package)", prometheus_binary() is not None)
    with scraped_calls(PackageEndpoint(), counted_calls=1, call=healthy_call, slow_turn_seconds=1.5) as run:
        yield run


@pytest.mark.parametrize(("dashboard", "title"), ZERO_PANELS)
def test_count_panels_read_0_on_a_healthy_agent(healthy: StackRun, dashboard: str, title: str) -> None:
    """Counters that exist only after their first event: the panel says 0, not "No data"."""
    doc = load(DASHBOARD_DIR / f"{dashboard}.json")
    (panel,) = [p for p in panels(doc) if p["title"] == title]
    variables = variable_values(doc)
    values = [v for t in panel["targets"] for v in finite_values(run_target(healthy, t, variables))]
    assert values and set(values) == {0.0}, (title, values)


def test_pipeline_health_filters_by_provider_and_model() -> None:
    doc = load(DASHBOARD_DIR / "pipeline-health.json")
    assert [v["name"] for v in doc["templating"]["list"]] == ["job", "provider", "model"]
    filtered = {p["title"] for p in panels(doc) for t in p["targets"]
                if 'gen_ai_request_model=~"$model"' in t["expr"]}  # fmt: skip
    assert {"VAD inferences per second and mean inference time",
            "Cancelled requests in range, by component"} <= filtered  # fmt: skip
