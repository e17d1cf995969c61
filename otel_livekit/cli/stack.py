"""The Collector + Prometheus + Grafana + Jaeger stack's files, shipped in the wheel.

The canonical files live at the repository's top level (``docker-compose.yml``,
``collector-config/``, ``prometheus/``, ``grafana/``); ``stack_files/`` inside the package is
a byte-for-byte copy (``python -m otel_livekit.cli.stack sync REPO`` refreshes it, a test checks
it) so that users who installed from PyPI get them with ``otel-livekit stack write DIR``.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

from ..errors import ConfigurationError
from ..metrics.buckets import LATENCY_SECONDS
from ..writable import writable_directory

STACK_PATHS: tuple[str, ...] = (
    "docker-compose.yml",
    ".env.example",
    "collector-config",
    "prometheus/prometheus.yml",
    "prometheus/rules",
    "prometheus/tests",
    "grafana/provisioning",
    "grafana/dashboards",
)
"""What ``stack write`` writes, relative to the stack directory (the repository root)."""

PACKAGE_DIR = "stack_files"
THRESHOLDS_FILE = "prometheus/rules/voice-agent-thresholds.yml"
SLO_SECONDS = "voice_agent:turn_latency_slo:threshold_seconds"
THRESHOLDS: tuple[str, ...] = (
    SLO_SECONDS,
    "voice_agent:turn_latency_slo:objective",
    "voice_agent:pipeline_errors_per_turn:threshold",
    "voice_agent:unrecoverable_errors:threshold",
    "otelcol:export_failure_ratio:threshold",
    "otel_livekit:export_failure_ratio:threshold",
    "otel_livekit:export_dropped_items:threshold",
)
"""The alert thresholds ``--set`` can override (record names in THRESHOLDS_FILE)."""

_RANGES: dict[str, tuple[float, float, str]] = {
    "voice_agent:turn_latency_slo:objective": (0.0, 1.0, "a fraction strictly between 0 and 1 (e.g. 0.95)"),
    "otelcol:export_failure_ratio:threshold": (0.0, 1.0, "a ratio between 0 and 1"),
    "otel_livekit:export_failure_ratio:threshold": (0.0, 1.0, "a ratio between 0 and 1"),
}
"""Valid ranges beyond "a finite number >= 0"; the objective excludes both ends."""


def _check_value(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise StackError(f"{name} must be a finite number >= 0, got {value:g}")
    if name in _RANGES:
        low, high, what = _RANGES[name]
        inside = low < value < high if name.endswith(":objective") else low <= value <= high
        if not inside:
            raise StackError(f"{name} must be {what}, got {value:g}")


class StackError(ValueError):
    """A bad ``stack write`` request (existing files, unknown threshold, bad value)."""


def packaged_root() -> Path:
    """The stack files inside the installed package."""
    return Path(str(resources.files("otel_livekit").joinpath(PACKAGE_DIR)))


def iter_files(root: Path) -> Iterator[Path]:
    """Every stack file under ``root``, relative to it, in a stable order."""
    for entry in STACK_PATHS:
        path = root / entry
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and "__pycache__" not in found.parts:
                    yield found.relative_to(root)
        else:
            yield Path(entry)


def override_thresholds(text: str, overrides: Mapping[str, float]) -> str:
    """The thresholds file with ``overrides`` (record name -> value) applied."""
    for name, value in overrides.items():
        if name not in THRESHOLDS:
            raise StackError(f"unknown threshold {name!r}; known: {', '.join(THRESHOLDS)}")
        _check_value(name, value)
        if name == SLO_SECONDS and value not in LATENCY_SECONDS:
            raise StackError(f"{name} must be a bucket bound of voice_agent.turn.latency: {LATENCY_SECONDS}")
        literal = repr(float(value)) if name == SLO_SECONDS else f"{value:g}"
        pattern = re.compile(rf"(- record: {re.escape(name)}\n\s+expr: vector\()[^)]*(\))")
        text, count = pattern.subn(rf"\g<1>{literal}\g<2>", text)
        if count != 1:
            raise StackError(f"{name} not found once in {THRESHOLDS_FILE}")
        if name == SLO_SECONDS:
            text = re.sub(r'(\n\s+le: )"[^"]*"', rf'\1"{literal}"', text, count=1)
    return text


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``NAME=VALUE`` strings (the CLI's ``--set``) as a mapping."""
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise StackError(f"--set expects NAME=NUMBER, got {pair!r}")
    return out


def write(dest: Path, *, force: bool = False, overrides: Mapping[str, float] | None = None,
          source: Path | None = None) -> list[Path]:  # fmt: skip
    """Copy the stack into ``dest``; returns the files written. Existing files are kept
    unless ``force`` (nothing is written then)."""
    root = source or packaged_root()
    files = list(iter_files(root))
    if not force:
        clash = [f for f in files if (dest / f).exists()]
        if clash:
            raise StackError(
                f"{len(clash)} files exist in {dest} (e.g. {clash[0]}); pass --force to overwrite"
            )
    thresholds = override_thresholds((root / THRESHOLDS_FILE).read_text(), overrides or {})
    try:
        writable_directory(dest, "DIRECTORY")
    except ConfigurationError as err:
        raise StackError(f"cannot write the stack: {err}") from None
    written = []
    for rel in files:
        target = dest / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if str(rel) == THRESHOLDS_FILE:
                target.write_text(thresholds)
            else:
                shutil.copyfile(root / rel, target)
        except OSError as err:
            raise StackError(f"cannot write {target}: {err.strerror or type(err).__name__}") from None
        written.append(target)
    return written


def sync(repo: Path) -> list[Path]:
    """Refresh the package's copy from the repository's canonical files (a dev step)."""
    package = repo / "otel_livekit" / PACKAGE_DIR
    shutil.rmtree(package, ignore_errors=True)
    return write(package, source=repo)


if __name__ == "__main__":
    if sys.argv[1:2] == ["sync"]:
        for path in sync(Path(sys.argv[2] if len(sys.argv) > 2 else ".").resolve()):
            print(path)
    else:
        sys.exit("usage: python -m otel_livekit.cli.stack sync [REPO]")
