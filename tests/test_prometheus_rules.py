"""The recording and alert rules under prometheus/rules: valid (``promtool check rules``),
and every rule covered by a ``promtool test rules`` case that passes (input series that
must fire and series that must not, in prometheus/tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import REPO_ROOT, prometheus_binary, require_or_skip

RULES_DIR = REPO_ROOT / "prometheus" / "rules"
TESTS_DIR = REPO_ROOT / "prometheus" / "tests"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = prometheus_binary("promtool")
    require_or_skip("promtool (Debian prometheus)", found is not None)
    assert found is not None
    return found


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def test_rule_files_are_valid(promtool: str) -> None:
    out = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, test_file: Path) -> None:
    out = subprocess.run([promtool, "test", "rules", str(test_file)],
                         capture_output=True, text=True, check=False, cwd=TESTS_DIR)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_a_promtool_test() -> None:
    """Every recording rule is the expression (or part of it) of a promql_expr_test, and
    every alert has an alert_rule_test that expects it to fire and one that expects silence."""
    records = {r["record"] for r in rules() if "record" in r}
    alerts = {r["alert"] for r in rules() if "alert" in r}
    tested_exprs: list[str] = []
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        for case in doc["tests"]:
            tested_exprs += [t["expr"] for t in case.get("promql_expr_test", [])]
            for t in case.get("alert_rule_test", []):
                (firing if t["exp_alerts"] else silent).add(t["alertname"])
    names_in_tests = {n for e in tested_exprs for n in re.findall(r"[a-z_:]+:[a-z0-9_:]+", e)}
    assert records - names_in_tests == set(), "recording rules without a promtool test"
    assert alerts - firing == set(), "alerts never shown to fire"
    assert alerts - silent == set(), "alerts never shown to stay silent"


def test_every_alert_is_documented_and_thresholds_are_series() -> None:
    """Thresholds live in voice-agent-thresholds.yml (one overridable value each) and the
    docs' table (docs/stack.md) names every alert and threshold."""
    readme = (REPO_ROOT / "docs" / "stack.md").read_text()
    for rule in rules():
        name = rule.get("alert") or rule["record"]
        if "alert" in rule or name.endswith((":threshold", ":objective", ":threshold_seconds")):
            assert f"`{name}`" in readme, f"{name} is not in docs/stack.md"
    thresholds = yaml.safe_load((RULES_DIR / "voice-agent-thresholds.yml").read_text())
    for rule in thresholds["groups"][0]["rules"]:
        assert re.fullmatch(r"vector\([0-9.]+\)", rule["expr"]), rule


def test_slo_threshold_is_a_bucket_bound_of_the_turn_latency_histogram() -> None:
    """The SLO selects the bucket whose ``le`` equals the threshold: it must exist."""
    from otel_livekit.metrics.catalogue import BY_NAME

    (rule,) = [r for r in rules() if r.get("record") == "voice_agent:turn_latency_slo:threshold_seconds"]
    seconds = float(re.fullmatch(r"vector\(([0-9.]+)\)", rule["expr"]).group(1))  # type: ignore[union-attr]
    assert float(rule["labels"]["le"]) == seconds
    assert seconds in (BY_NAME["voice_agent.turn.latency"].buckets or ())
    # as the exposition writes it (prometheus_client's float formatting)
    from prometheus_client.utils import floatToGoString

    assert rule["labels"]["le"] == floatToGoString(seconds)


def test_promtool_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: loosen the objective and the burn-rate tests fail."""
    broken = tmp_path / "rules"
    shutil.copytree(RULES_DIR, broken)
    shutil.copytree(TESTS_DIR, tmp_path / "tests")
    path = broken / "voice-agent-thresholds.yml"
    path.write_text(path.read_text().replace("vector(0.95)", "vector(0.5)"))
    out = subprocess.run([promtool, "test", "rules", "voice-agent-alerts.test.yml"],
                         capture_output=True, text=True, check=False, cwd=tmp_path / "tests")  # fmt: skip
    assert out.returncode != 0
    assert "VoiceAgentTurnLatencyBudgetSlowBurn" in out.stdout + out.stderr


@pytest.mark.parametrize("le", ["2", "2.0"])
def test_the_slo_bucket_matches_either_le_format(promtool: str, tmp_path: Path, le: str) -> None:
    """`stack write --set …threshold_seconds=2` records le="2.0"; the Collector's exporters
    write le="2", prometheus-client le="2.0". The burn-rate alert fires on both."""
    from click.testing import CliRunner

    from otel_livekit.cli import main

    stack = tmp_path / "stack"
    result = CliRunner().invoke(main, ["stack", "write", str(stack), "--set",
                                       "voice_agent:turn_latency_slo:threshold_seconds=2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert 'le: "2.0"' in (stack / "prometheus/rules/voice-agent-thresholds.yml").read_text()
    bucket = f'voice_agent_turn_latency_seconds_bucket{{job="burning",instance="p1",le="{le}"}}'
    count = 'voice_agent_turn_latency_seconds_count{job="burning",instance="p1"}'
    ratio = "job:voice_agent_turn_latency_slow:ratio_rate1h"
    names = ("voice-agent-thresholds.yml", "voice-agent-recording.yml", "voice-agent-alerts.yml")
    case = {
        "interval": "1m",
        "input_series": [{"series": bucket, "values": "0x100"}, {"series": count, "values": "0+60x100"}],
        "promql_expr_test": [{"expr": ratio, "eval_time": "60m",
                              "exp_samples": [{"labels": f'{ratio}{{job="burning"}}', "value": 1}]}],
    }
    test = {"rule_files": [f"../rules/{n}" for n in names], "evaluation_interval": "1m", "tests": [case]}
    path = stack / "prometheus/tests/le-format.test.yml"
    path.write_text(yaml.safe_dump(test))
    out = subprocess.run([promtool, "test", "rules", path.name], capture_output=True, text=True,
                         check=False, cwd=path.parent)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_waits_and_has_a_runbook_section() -> None:
    """No alert fires on one evaluation (each has a `for:`), and each runbook_url names a
    section of docs/alerts.md."""
    page = (REPO_ROOT / "docs" / "alerts.md").read_text()
    anchors = {line[3:].strip().lower() for line in page.splitlines() if line.startswith("## ")}
    alerts = [r for r in rules() if "alert" in r]
    assert len(alerts) >= 10
    for rule in alerts:
        assert rule.get("for"), f"{rule['alert']} has no for:"
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/alerts.md#{rule['alert'].lower()}", url
        assert rule["alert"].lower() in anchors, f"{rule['alert']} has no section in docs/alerts.md"
        assert rule["annotations"].get("description"), f"{rule['alert']} has no description"
