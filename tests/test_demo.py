"""``otel-livekit demo`` as a user runs it (a subprocess, short, seeded, sped up): the trace
file holds each planned call's span tree, ``report`` builds the page, and headless
Chromium renders the waterfall with the file's exact values and fetches nothing."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from servers import require_or_skip

from otel_livekit.cli.simulate import CONVERSATION, plan_calls

CALLS, TURNS, SEED, SPEED = 2, 3, 3, 8.0
CLI = [str(Path(sys.executable).with_name("otel-livekit"))]  # the installed entry point


def cli_env(**extra: str) -> dict[str, str]:
    import os

    prefixes = ("OTEL_", "LANGFUSE_", "PHOENIX_", "LIVEKIT_TELEMETRY_ALLOW_PII")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


def read_spans(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Spans per trace id, attributes flattened, straight from the OTLP/JSON lines."""
    traces: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                    traces.setdefault(s["traceId"], []).append(s)
    return traces


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [*CLI, "demo", "--calls", str(CALLS), "--concurrency", "2", "--turns", str(TURNS),
         "--seed", str(SEED), "--speed", str(SPEED), "--file", str(out / "calls.jsonl")],
        capture_output=True, text=True, timeout=180, cwd=out, env=cli_env(),
    )  # fmt: skip
    return out / "calls.jsonl", proc


def test_demo_exits_0_and_prints_the_report_path(demo_run: tuple[Path, Any]) -> None:
    path, proc = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"report: {path.with_suffix('.html').resolve()}"
    turn_lines = [line for line in proc.stdout.splitlines() if re.match(r"call \d turn \d: ", line)]
    assert len(turn_lines) == CALLS * TURNS
    assert "\x1b[" not in proc.stdout  # plain output when not a TTY


def _array(value: Any) -> list[Any]:
    return [next(iter(v.values())) for v in value["values"]]


def test_each_turn_line_is_the_turns_budget_from_the_file(demo_run: tuple[Path, Any]) -> None:
    """The live line shows the same budget the span carries (and the report draws): the
    parts in the order they happened, adding up to the wait, and the dominant part."""
    path, proc = demo_run
    budget = "voice_agent.turn.budget"
    expected = []
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for span in (s for ss in rs["scopeSpans"] for s in ss["spans"] if s["name"] == "agent_turn"):
                attrs = {a["key"]: a["value"] for a in span.get("attributes", [])}
                parts = _array(attrs[f"{budget}.timeline.parts"]["arrayValue"])
                seconds = _array(attrs[f"{budget}.timeline.seconds"]["arrayValue"])
                total = attrs[f"{budget}.total"]["doubleValue"]
                assert sum(seconds) == pytest.approx(total, abs=1e-9)
                steps = " → ".join(f"{p} {s:.3f}" for p, s in zip(parts, seconds, strict=True))
                dominant = attrs[f"{budget}.dominant"]["stringValue"]
                expected.append(f"{steps} = {total:.3f}s, mostly {dominant}")
    shown = [re.sub(r"^call \d turn \d: ", "", line).split(" [interrupted]")[0].split("   p50/p95")[0]
             for line in proc.stdout.splitlines() if re.match(r"call \d turn \d: ", line)]  # fmt: skip
    assert len(expected) == CALLS * TURNS
    assert sorted(shown) == sorted(expected)
    assert "Where the wait went" in proc.stdout


def _children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((s for s in spans if s.get("parentSpanId") == parent["spanId"]), key=_start)


def _start(span: dict[str, Any]) -> int:
    return int(span["startTimeUnixNano"])


def _descendants(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for child in _children(spans, parent):
        out.append(child)
        out.extend(_descendants(spans, child))
    return out


def test_trace_file_holds_each_planned_calls_span_tree(demo_run: tuple[Path, Any]) -> None:
    path, _ = demo_run
    traces = read_spans(path)
    assert len(traces) == CALLS
    by_lines = {}
    for spans in traces.values():
        roots = [s for s in spans if not s.get("parentSpanId")]
        assert [r["name"] for r in roots] == ["agent_session"]
        top = _children(spans, roots[0])
        users = [s["attrs"]["lk.pii.user_transcript"] for s in top if s["name"] == "user_turn"]
        by_lines[tuple(users)] = (roots[0], spans)
    for plan in plan_calls(CALLS, TURNS, SEED):
        expected_users = tuple(CONVERSATION[i][0] for i in plan.lines)
        assert expected_users in by_lines, (expected_users, list(by_lines))
        root, spans = by_lines[expected_users]
        agent_turns = [s for s in _children(spans, root) if s["name"] == "agent_turn"]
        assert len(agent_turns) == TURNS
        for turn, span in enumerate(agent_turns):
            below = _descendants(spans, span)
            names = Counter(s["name"] for s in below)
            assert names["llm_request"] == (2 if turn == plan.tool_turn else 1), (turn, names)
            assert names["tts_request"] >= 1
            assert names["function_tool"] == (1 if turn == plan.tool_turn else 0)
            assert span["attrs"]["lk.interrupted"] is (turn == plan.interrupt_turn)
            failed = [s for s in below if s.get("status", {}).get("code") == 2]
            assert [s["name"] for s in failed] == (["llm_request_run"] if turn == plan.error_turn else [])
            assert span["attrs"]["lk.pii.user_input"] == CONVERSATION[plan.lines[turn]][0]
            e2e = span["attrs"]["lk.e2e_latency"]
            parts = [span["attrs"][f"voice_agent.turn.{k}"] for k in
                     ("end_of_utterance_delay", "llm_ttft", "tts_ttfb", "remainder")]  # fmt: skip
            assert sum(parts) == pytest.approx(e2e, abs=1e-9)  # the budget adds up to LiveKit's e2e
    metrics_lines = [line for line in path.read_text().splitlines() if "resourceMetrics" in line]
    assert len(metrics_lines) == 1  # the collection at shutdown


def test_report_command_builds_the_page(demo_run: tuple[Path, Any], tmp_path: Path) -> None:
    path, _ = demo_run
    out = tmp_path / "page.html"
    proc = subprocess.run([*CLI, "report", str(path), "-o", str(out)], capture_output=True, text=True,
                          timeout=60, env=cli_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out.resolve())
    page = out.read_text()
    assert page.count('<li class="turn"') == CALLS * TURNS
    assert page.count('<section class="call"') == CALLS
    # the tool turn's wait names the tool-calling LLM request and the tool as parts of their own
    for spans in read_spans(path).values():
        tools = [s for s in spans if s["name"] == "function_tool"]
        if not tools:
            continue
        requests = sorted((s for s in spans if s["name"] == "llm_request"
                           and s["parentSpanId"] in {n["spanId"] for n in spans if n["name"] == "llm_node"}
                           and _start(s) < _start(tools[0])), key=_start)  # fmt: skip
        deciding = requests[-1]["attrs"]["gen_ai.response.time_to_first_chunk"]
        took = (int(tools[0]["endTimeUnixNano"]) - _start(tools[0])) / 1e9
        turn = next(s for s in spans if s["name"] == "agent_turn"
                    and _start(s) <= _start(tools[0]) <= int(s["endTimeUnixNano"]))  # fmt: skip
        prefix = "voice_agent.turn.budget."
        budget = {k[len(prefix) :]: v for k, v in turn["attrs"].items() if k.startswith(prefix)}
        assert budget["tool"] == pytest.approx(took, abs=0.005)
        assert budget["tool_llm"] >= deciding  # the whole deciding request, not only its TTFT
        for part in ("tool_llm", "tool", "llm_ttft", "tts_ttfb"):
            assert f'data-part="{part}" data-value="{budget[part]!r}"' in page
        assert "of the remainder" not in page  # the budget replaced the remainder's guesswork


# --- the page in a real browser ------------------------------------------------------------


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = chromium_binary()
    assert binary is not None
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


@pytest.fixture(scope="module")
def page(demo_run: tuple[Path, Any]) -> Path:
    require_or_skip("chromium (Debian package)", chromium_binary() is not None)
    path, proc = demo_run
    assert proc.returncode == 0
    return path.with_suffix(".html")


def test_screenshot_shows_the_waterfall(page: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000")
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    pixels = Counter({rgb: n for n, rgb in image.getcolors(maxcolors=1 << 24) or []})
    assert len(pixels) > 200, "a blank page"
    # each waterfall segment colour covers real area (not just a legend swatch)
    for name, rgb in (("eou", (0x8E, 0x6F, 0xC1)), ("llm", (0xE8, 0x89, 0x2B)), ("tts", (0x3B, 0x82, 0xC4))):
        assert pixels[rgb] > 1500, (name, pixels[rgb])


class _Values(HTMLParser):
    """Per rendered turn (call, turn) the values the page shows, and every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.turns: dict[tuple[int, int], dict[str, float]] = {}
        self.texts: dict[tuple[int, int], list[str]] = {}
        self.links: list[str] = []
        self.csp: str | None = None
        self._turn: tuple[int, int] | None = None
        self._key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = a.get("content")
        if tag == "li" and a.get("class") == "turn":
            self._turn = (int(a["data-call"] or 0), int(a["data-turn"] or 0))
            self.turns[self._turn] = {}
            self.texts[self._turn] = []
        if tag == "span" and a.get("class") == "v" and self._turn is not None:
            self._key = a["data-key"]
            self.turns[self._turn][a["data-key"] or ""] = float(a["data-value"] or "nan")

    def handle_data(self, data: str) -> None:
        if self._key and self._turn is not None:
            self.texts[self._turn].append(data.strip())
            self._key = None


FILE_KEYS = {
    "eou": "voice_agent.turn.end_of_utterance_delay",
    "transcription": "lk.transcription_delay",
    "llm_ttft": "voice_agent.turn.llm_ttft",
    "tts_ttfb": "voice_agent.turn.tts_ttfb",
    "remainder": "voice_agent.turn.remainder",
    "e2e": "lk.e2e_latency",
}


def test_rendered_dom_shows_each_turns_latencies_from_the_file(page: Path, tmp_path: Path) -> None:
    dom = chromium(page, tmp_path / "profile", "--dump-dom").stdout
    parsed = _Values()
    parsed.feed(dom)
    traces = read_spans(page.with_suffix(".jsonl"))
    roots = (next(s for s in spans if s["name"] == "agent_session") for spans in traces.values())
    sessions = sorted(roots, key=_start)
    expected: dict[tuple[int, int], dict[str, float]] = {}
    for call, root in enumerate(sessions, 1):
        spans = traces[root["traceId"]]
        turns = sorted((s for s in spans if s["name"] == "agent_turn"), key=_start)
        for turn, span in enumerate(turns, 1):
            expected[(call, turn)] = {k: span["attrs"][v] for k, v in FILE_KEYS.items()}
    assert len(expected) == CALLS * TURNS
    assert parsed.turns == expected  # exact floats, every turn of every call
    for key, values in expected.items():
        shown = " ".join(parsed.texts[key])
        assert f"e2e {values['e2e']:.3f}s" in shown
        assert f"LLM TTFT {values['llm_ttft']:.3f}s" in shown


def test_page_makes_no_request(page: Path, tmp_path: Path) -> None:
    html = page.read_text()
    parsed = _Values()
    parsed.feed(html)
    assert parsed.csp is not None and "default-src 'none'" in parsed.csp
    assert all(link.startswith("#") for link in parsed.links), parsed.links
    assert not re.search(r"url\(|@import|https?://", html.split("<body>", 1)[0])
    netlog = tmp_path / "netlog.json"
    chromium(page, tmp_path / "profile", f"--log-net-log={netlog}", "--dump-dom")
    log = json.loads(netlog.read_text())
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    from_page = [
        e["params"]["url"]
        for e in log["events"]
        if kinds[e["type"]] == "URL_REQUEST_START_JOB"
        and "url" in e.get("params", {})
        and e["params"].get("initiator") != "not an origin"  # chromium's own background fetches
    ]
    assert from_page == []


# --- with a backend the demo sends there instead ------------------------------------------


def test_demo_with_backend_phoenix_sends_the_calls_there(phoenix: Any, tmp_path: Path) -> None:
    env = cli_env(PHOENIX_COLLECTOR_ENDPOINT=phoenix.base_url, PHOENIX_PROJECT_NAME="demo-to-phoenix")
    proc = subprocess.run(
        [*CLI, "demo", "--calls", "2", "--turns", "2", "--seed", "5", "--speed", "10",
         "--backend", "phoenix"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "backend phoenix" in proc.stdout and "report:" not in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no trace file, no page
    spans = phoenix.spans("demo-to-phoenix", wait_for=40)
    names = Counter(s["name"] for s in spans)
    assert names["agent_session"] == 2
    assert names["agent_turn"] == 4
    assert names["user_turn"] == 4
    # a remote backend gets no transcripts unless the user allows it
    assert not any(k.startswith("lk.pii.") for s in spans for k in s["attributes"])


def test_demo_with_backend_otlp_sends_traces_and_metrics(tmp_path: Path) -> None:
    from otlp_receiver import OtlpReceiver

    with OtlpReceiver() as rx:
        env = cli_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.url)
        proc = subprocess.run(
            [*CLI, "demo", "--calls", "1", "--turns", "2", "--seed", "5", "--speed", "10"],
            capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "backend otlp" in proc.stdout  # inferred from OTEL_EXPORTER_OTLP_ENDPOINT
        names = Counter(s.name for _, s in rx.spans())
        assert (names["agent_session"], names["agent_turn"]) == (1, 2)
        metrics = {m.name: m for _, m in rx.metrics()}
        assert [p.as_int for p in metrics["voice_agent.sessions.started"].sum.data_points] == [1]
        assert sum(p.count for p in metrics["voice_agent.turn.e2e_latency"].histogram.data_points) == 2


def test_report_names_a_broken_line_and_handles_a_file_without_calls(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from otel_livekit.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": []}\nnot json\n')
    result = CliRunner().invoke(main, ["report", str(bad)])
    assert result.exit_code == 1
    assert "line 2 is not OTLP/JSON" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"resourceSpans": []}\n')
    result = CliRunner().invoke(main, ["report", str(empty)])
    assert result.exit_code == 1, result.output
    assert "no OTLP spans or metrics in it" in result.output and not (tmp_path / "empty.html").exists()


def test_demo_serves_prometheus_while_it_runs(tmp_path: Path) -> None:
    """With the endpoint on, a scrape during the run sees the calls so far."""
    import re
    import time
    import urllib.request

    from servers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "demo", "--calls", "2", "--concurrency", "1", "--turns", "2", "--seed", "5",
         "--speed", "10", "--no-report", "--prometheus-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=cli_env(),
    )  # fmt: skip
    started, seen = time.monotonic(), -1.0
    try:
        while time.monotonic() - started < 120 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            match = re.search(r"^voice_agent_sessions_started_total (\S+)$", body, re.M)
            turns = re.findall(r"^voice_agent_turn_latency_seconds_count\{[^}]*\} (\S+)$", body, re.M)
            if match and sum(float(t) for t in turns) >= 1:  # a call under way, a turn done
                seen = float(match.group(1))
                break
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert seen >= 1, "no scrape during the run saw a call"
    assert f"metrics: http://127.0.0.1:{port}/metrics" in out


def test_each_simulated_call_is_a_session_with_its_caller(demo_run: tuple[Path, Any]) -> None:
    """A simulated call has no room or participant: the demo names its session and caller,
    so a backend (Langfuse) lists one session per call, with its user, on every span."""
    path, proc = demo_run
    assert proc.returncode == 0
    sessions: dict[str, set[tuple[str, str]]] = {}
    for trace_id, spans in read_spans(path).items():
        ids = {(s["attrs"].get("session.id", ""), s["attrs"].get("user.id", "")) for s in spans}
        sessions[trace_id] = ids
    calls = [ids for ids in sessions.values() if any(sid for sid, _ in ids)]
    assert len(calls) == CALLS, sessions
    numbers = set()
    for ids in calls:
        ((session_id, user_id),) = ids  # every span of the call carries the same two ids
        match = re.fullmatch(r"demo-[0-9a-f]{6}-call-(\d+)", session_id)
        assert match and user_id == f"demo-caller-{match.group(1)}", (session_id, user_id)
        numbers.add(int(match.group(1)))
    assert numbers == set(range(1, CALLS + 1))
