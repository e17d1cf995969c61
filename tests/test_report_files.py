"""``otel-livekit report`` on the files a real agent leaves: one killed mid-write is reported
from its good lines with a note; an empty file or one without OTLP content is an error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import reset_otel_globals

from otel_livekit import setup_tracing
from otel_livekit.cli import main
from otel_livekit.cli.tracefile import read
from otel_livekit.offline import run_offline_session


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real offline calls through the file backend: several span lines, then metrics."""
    path = tmp_path_factory.mktemp("files") / "calls.jsonl"
    reset_otel_globals()
    t = setup_tracing("file", otel_livekit_file_path=str(path))
    for room in ("room-a", "room-b"):
        asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=1, room_name=room))
        assert t.force_flush()
    reset_otel_globals()
    assert len(path.read_text().splitlines()) >= 3
    return path


def _report(path: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["report", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_a_file_cut_off_mid_line_is_reported_from_its_good_lines(trace_file: Path, tmp_path: Path) -> None:
    lines = trace_file.read_text().splitlines(keepends=True)
    whole = tmp_path / "whole.jsonl"
    whole.write_text("".join(lines[:-1]))  # what the agent had finished writing
    torn = tmp_path / "torn.jsonl"
    torn.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    expected, got = read(whole), read(torn)
    assert [len(c.turns) for c in got.calls] == [len(c.turns) for c in expected.calls]
    assert got.spans == expected.spans and got.lines == expected.lines == len(lines) - 1
    (note,) = got.notes
    assert f"line {len(lines)}" in note and "cut off" in note
    code, out, err = _report(torn)
    assert code == 0, out + err
    assert f"note: {note}" in err
    assert note in (tmp_path / "torn.html").read_text()
    assert read(trace_file).notes == []


def test_a_broken_line_inside_the_file_is_an_error_naming_it(trace_file: Path, tmp_path: Path) -> None:
    lines = trace_file.read_text().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + lines[1][:40] + "\n" + "".join(lines[2:]))
    code, out, err = _report(broken)
    assert code == 1 and "line 2 is not OTLP/JSON" in out + err
    assert not (tmp_path / "broken.html").exists()


@pytest.mark.parametrize("content", ["", "\n  \n", '{"foo": 1}\n{"bar": []}\n', '{"resourceSpans": []}\n'],
                         ids=["empty", "blank", "other-json", "no-spans"])
def test_a_file_without_otlp_content_is_an_error(content: str, tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    code, out, err = _report(path)
    assert code == 1
    assert "no OTLP spans or metrics in it" in out + err
    assert not (tmp_path / "x.html").exists()
