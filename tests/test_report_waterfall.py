"""The report's turn waterfall as a person sees it: a real offline call (a slow
``on_user_turn_completed``, a slow tool, an avatar-like playback delay) through the file
backend, rendered by headless Chromium; in the screenshot the parts are bars in the order
they happened, each as wide as its seconds on the page's time axis."""

from __future__ import annotations

import asyncio
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import reset_otel_globals
from livekit.agents import Agent, function_tool
from livekit.agents.llm import ChatContext, ChatMessage
from servers import require_or_skip
from test_demo import chromium, chromium_binary

from otel_livekit import setup_tracing
from otel_livekit.cli.report import PART_COLORS, write_report
from otel_livekit.cli.tracefile import read
from otel_livekit.offline import OfflineLLM, OfflineSTT, OfflineTTS, run_offline_session

HOOK, TOOL, PLAYBACK = 0.25, 0.4, 0.15
# the reply's first sentence and the TTS's first byte, long enough to stay wide (>= 6 px) on a
# loaded machine: at the defaults (2 ms first-token pause, 30 ms) one came out at 5 px in CI
FIRST_TOKEN_PAUSE, TTFB = 0.08, 0.08
ORDER = ["vad_silence", "on_user_turn_completed", "tool_llm", "tool", "llm_ttft", "first_sentence",
         "tts_ttfb", "playback"]  # fmt: skip


@function_tool
async def lookup_weather(location: str) -> str:
    """Look up the weather.

    Args:
        location: the city
    """
    await asyncio.sleep(TOOL)
    return f"sunny in {location}"


class SlowHook(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="test", tools=[lookup_weather])

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        await asyncio.sleep(HOOK)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("waterfall") / "call.jsonl"
    reset_otel_globals()
    t = setup_tracing("file", otel_livekit_file_path=str(path))
    try:
        asyncio.run(run_offline_session(text_turns=(), audio_turns=1, stt_=OfflineSTT("what's the weather?"),
                                        llm_=OfflineLLM(first_token_pause=FIRST_TOKEN_PAUSE),
                                        tts_=OfflineTTS(ttfb=TTFB),
                                        agent=SlowHook(), playback_delay=PLAYBACK))  # fmt: skip
        assert t.force_flush()
    finally:
        reset_otel_globals()
    return write_report(path)


class _Bars(HTMLParser):
    """The budget waterfall's bars (part, seconds) and its pixels per second."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[tuple[str, float]] = []
        self.px_per_second = 0.0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg" and "budget" in (a.get("class") or ""):
            self.px_per_second = float(a["data-px-per-second"] or 0)
        if tag == "rect" and a.get("class") == "part":
            self.bars.append((a["data-part"] or "", float(a["data-seconds"] or "nan")))


def _bars(page: Path) -> _Bars:
    parsed = _Bars()
    parsed.feed(page.read_text())
    return parsed


def test_the_waterfall_holds_the_files_budget_in_order(page: Path) -> None:
    (call,) = read(page.with_suffix(".jsonl")).calls
    (turn,) = call.turns
    parsed = _bars(page)
    assert parsed.bars == turn.budget  # exact seconds, in the order they happened
    named = [p for p, s in parsed.bars if p != "residual" and s >= 0.005]  # not a few ms of scheduling
    assert named == ORDER
    seconds = dict(parsed.bars)
    assert seconds["on_user_turn_completed"] == pytest.approx(HOOK, abs=0.02)
    assert seconds["tool"] == pytest.approx(TOOL, abs=0.02)
    assert seconds["playback"] == pytest.approx(PLAYBACK, abs=0.02)
    assert seconds["tts_ttfb"] == pytest.approx(TTFB, abs=0.02)
    assert seconds["first_sentence"] >= FIRST_TOKEN_PAUSE
    assert sum(s for _, s in parsed.bars) == pytest.approx(turn.budget_total, abs=1e-9)
    # the call timeline has a seconds axis too: 0 s first, ticks in order, none past the call
    timeline = page.read_text().split('<svg class="timeline"', 1)[1].split("</svg>", 1)[0]
    ticks = [float(v) for v in re.findall(r'class="tick"[^>]*>([\d.]+) s<', timeline)]
    duration = (call.session.end - call.session.start) / 1e9
    assert ticks[0] == 0 and ticks == sorted(ticks) and len(ticks) >= 3 and ticks[-1] <= duration


RGB = tuple[int, int, int]


def _runs(row: list[RGB], colors: dict[RGB, str]) -> list[tuple[str, int, int]]:
    """(part, first x, width) for each run of one part's colour in a pixel row."""
    runs: list[tuple[str, int, int]] = []
    for x, rgb in enumerate(row):
        part = colors.get(rgb)
        if part is None:
            continue
        if runs and runs[-1][0] == part and runs[-1][1] + runs[-1][2] == x:
            runs[-1] = (part, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((part, x, 1))
    return runs


def _match(runs: list[tuple[str, int, int]], bars: list[tuple[str, float, float]]) -> list[int] | None:
    """Which bar each run draws, in order, or None when the row is not the waterfall.

    ``bars`` are (part, px, start px). A bar of 6 px or more must be drawn; one under 2 px
    cannot be; one in between (a residual of a few ms, more on a loaded machine) may or may
    not leave 3 pure-colour pixels after anti-aliasing, so it may be missing."""
    out, i = [], 0
    for part, _, _ in runs:
        while i < len(bars) and (bars[i][1] < 2 or (bars[i][0] != part and bars[i][1] < 6)):
            i += 1
        if i == len(bars) or bars[i][0] != part:
            return None
        out.append(i)
        i += 1
    if any(px >= 6 for _, px, _ in bars[i:]):
        return None
    return out


def test_the_screenshot_draws_each_part_as_wide_as_its_seconds(page: Path, tmp_path: Path) -> None:
    require_or_skip("chromium (Debian package)", chromium_binary() is not None)
    from PIL import Image

    parsed = _bars(page)
    bars, at = [], 0.0  # (part, px, where it starts in px)
    for part, seconds in parsed.bars:
        bars.append((part, seconds * parsed.px_per_second, at))
        at += seconds * parsed.px_per_second
    assert sum(px >= 6 for _, px, _ in bars) >= len(ORDER)  # the named parts are all wide
    shot = tmp_path / "shot.png"
    proc = chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1400",
                    "--force-device-scale-factor=1", "--hide-scrollbars")  # fmt: skip
    assert shot.exists(), proc.stderr[-2000:]
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    colors: dict[RGB, str] = {(int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)): p
                              for p, c in PART_COLORS.items()}  # fmt: skip
    data, (w, h) = image.tobytes(), image.size
    rows = []
    for y in range(h):
        row = [(data[i], data[i + 1], data[i + 2]) for i in range(y * w * 3, (y + 1) * w * 3, 3)]
        runs = [r for r in _runs(row, colors) if r[2] >= 3]
        matched = _match(runs, bars) if runs else None
        if matched is not None:
            rows.append((runs, matched))
    assert rows, "no pixel row shows the parts in the order they happened"
    drawn, matched = max(rows, key=lambda r: sum(run[2] for run in r[0]))  # the bars, not the legend
    assert len([r for r in rows if r[0] == drawn]) >= 10  # the 14 px tall bar, not a stray row
    first_x, first_at = drawn[0][1], bars[matched[0]][2]
    for (part, x, width), i in zip(drawn, matched, strict=True):
        _, px, start = bars[i]
        assert abs(width - px) <= 2, (part, width, px)
        assert abs(x - first_x - (start - first_at)) <= 2, (part, x - first_x, start - first_at)
