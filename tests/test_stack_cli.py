"""``otel-livekit stack write DIR``: PyPI users get the repository's stack files, byte for
byte, from the wheel; thresholds can be overridden at write time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from servers import REPO_ROOT, prometheus_binary, require_or_skip

from otel_livekit.cli import main
from otel_livekit.cli.stack import PACKAGE_DIR, STACK_PATHS, THRESHOLDS_FILE, iter_files, packaged_root


def test_packaged_copy_equals_the_repository_files() -> None:
    """The canonical files are the repository's; the package's copy must not drift
    (refresh it with ``python -m otel_livekit.cli.stack sync .``)."""
    repo_files = list(iter_files(REPO_ROOT))
    assert repo_files == list(iter_files(packaged_root()))
    assert len(repo_files) >= 19
    for rel in repo_files:
        assert (packaged_root() / rel).read_bytes() == (REPO_ROOT / rel).read_bytes(), f"{rel} drifted"
    for entry in STACK_PATHS:
        assert not (packaged_root() / entry).is_symlink()


def test_stack_write_writes_every_file(tmp_path: Path) -> None:
    dest = tmp_path / "stack"
    result = CliRunner().invoke(main, ["stack", "write", str(dest)])
    assert result.exit_code == 0, result.output
    written = list(iter_files(dest))
    assert written == list(iter_files(REPO_ROOT))
    for rel in written:
        assert (dest / rel).read_bytes() == (REPO_ROOT / rel).read_bytes()
    # a second write keeps the user's edits unless --force
    (dest / "docker-compose.yml").write_text("# mine\n")
    again = CliRunner().invoke(main, ["stack", "write", str(dest)])
    assert again.exit_code != 0 and "--force" in again.output
    assert (dest / "docker-compose.yml").read_text() == "# mine\n"
    forced = CliRunner().invoke(main, ["stack", "write", str(dest), "--force"])
    assert forced.exit_code == 0
    assert (dest / "docker-compose.yml").read_bytes() == (REPO_ROOT / "docker-compose.yml").read_bytes()


def thresholds(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    rules = yaml.safe_load(path.read_text())["groups"][0]["rules"]
    return {r["record"]: (r["expr"], r.get("labels", {})) for r in rules}


def test_stack_write_overrides_thresholds(tmp_path: Path) -> None:
    dest = tmp_path / "stack"
    args = ["stack", "write", str(dest), "--set", "voice_agent:turn_latency_slo:objective=0.99",
            "--set", "voice_agent:turn_latency_slo:threshold_seconds=1"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    got, default = thresholds(dest / THRESHOLDS_FILE), thresholds(REPO_ROOT / THRESHOLDS_FILE)
    assert got["voice_agent:turn_latency_slo:objective"][0] == "vector(0.99)"
    assert got["voice_agent:turn_latency_slo:threshold_seconds"] == ("vector(1.0)", {"le": "1.0"})
    unchanged = set(default) - {"voice_agent:turn_latency_slo:objective",
                                "voice_agent:turn_latency_slo:threshold_seconds"}  # fmt: skip
    assert {k: got[k] for k in unchanged} == {k: default[k] for k in unchanged}
    promtool = prometheus_binary("promtool")
    require_or_skip("promtool (Debian prometheus)", promtool is not None)
    assert promtool is not None
    out = subprocess.run([promtool, "check", "rules", str(dest / THRESHOLDS_FILE)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_threshold_in_the_file_can_be_overridden(tmp_path: Path) -> None:
    """``--set`` knows every record of the thresholds file, and sets each one alone."""
    default = thresholds(REPO_ROOT / THRESHOLDS_FILE)
    for name in default:
        if name.endswith(":threshold_seconds"):
            continue  # a bucket bound, with its own test above
        dest = tmp_path / name.replace(":", "_")
        result = CliRunner().invoke(main, ["stack", "write", str(dest), "--set", f"{name}=0.25"])
        assert result.exit_code == 0, result.output
        got = thresholds(dest / THRESHOLDS_FILE)
        assert got[name][0] == "vector(0.25)"
        assert {k: v for k, v in got.items() if k != name} == {k: v for k, v in default.items() if k != name}


@pytest.mark.parametrize(("pair", "message"), [
    ("nope=1", "unknown threshold"),
    ("voice_agent:turn_latency_slo:threshold_seconds=1.3", "bucket bound"),
    ("voice_agent:turn_latency_slo:objective", "NAME=NUMBER"),
    ("voice_agent:turn_latency_slo:objective=95", "strictly between 0 and 1 (e.g. 0.95), got 95"),
    ("voice_agent:turn_latency_slo:objective=1", "strictly between 0 and 1"),
    ("otel_livekit:export_failure_ratio:threshold=1.5", "must be a ratio between 0 and 1, got 1.5"),
    ("voice_agent:unrecoverable_errors:threshold=-1", "must be a finite number >= 0, got -1"),
    ("voice_agent:pipeline_errors_per_turn:threshold=nan", "must be a finite number >= 0, got nan"),
])  # fmt: skip
def test_bad_overrides_fail_before_writing(tmp_path: Path, pair: str, message: str) -> None:
    result = CliRunner().invoke(main, ["stack", "write", str(tmp_path / "s"), "--set", pair])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "s").exists()


def test_the_wheel_carries_the_stack_files(tmp_path: Path) -> None:
    """Built the way PyPI's wheel is (setuptools, package data): every stack file inside."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "otel_livekit", src / "otel_livekit",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "-q", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for rel in iter_files(REPO_ROOT):
            member = f"otel_livekit/{PACKAGE_DIR}/{rel.as_posix()}"
            assert member in names, f"{member} missing from the wheel"
            assert zf.read(member) == (REPO_ROOT / rel).read_bytes()


def test_a_directory_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    """As root nothing is read-only by mode: a path under a regular file is the real case."""
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["stack", "write", str(tmp_path / "file" / "stack")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: cannot write the stack: DIRECTORY=")
    assert "is not a writable directory (Not a directory)" in result.output
    assert isinstance(result.exception, SystemExit)  # click's error, not a traceback
