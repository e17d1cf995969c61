"""The README's tables follow the code: every backend and its variables are documented."""

from __future__ import annotations

from pathlib import Path

from otel_livekit import environment_variables as ev
from otel_livekit.export.backends import BACKENDS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_backend_and_its_variables_are_in_the_readme() -> None:
    for backend in BACKENDS.values():
        row = next((line for line in README.splitlines() if line.startswith(f"| `{backend.name}` |")), None)
        assert row is not None, f"backend {backend.name} missing from README"
        for var in backend.env_vars:
            assert f"`{var.rstrip('*')}`" in row, (backend.name, var)


def test_every_variable_the_package_reads_is_declared_and_documented() -> None:
    """Every OTEL_*/PROMETHEUS_* name in the package's source is in config.SETTINGS, and
    docs/configuration.md's table is the one generated from SETTINGS."""
    import re

    from otel_livekit.config import SETTINGS, settings_markdown

    package = Path(__file__).resolve().parents[1] / "otel_livekit"
    source = "\n".join(p.read_text() for p in package.rglob("*.py"))
    used = set(re.findall(r"\"((?:OTEL|PROMETHEUS)_[A-Z_]+)\"", source))
    declared = {s.variable for s in SETTINGS}
    assert used - declared == set(), "declare these in otel_livekit/config.py SETTINGS"
    assert {v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str)} <= declared | {
        "LIVEKIT_TELEMETRY_ALLOW_PII"
    }
    docs = (package.parent / "docs" / "configuration.md").read_text()
    start = docs.index("\n", docs.index("<!-- settings:start")) + 1
    assert docs[start : docs.index("<!-- settings:end -->")] == settings_markdown(), (
        "run `otel-livekit settings` into docs/configuration.md"
    )


def test_readme_has_the_two_setup_commands() -> None:
    assert "otel-livekit demo" in README
    assert "bash scripts/test.sh" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def test_readme_catalogue_is_the_catalogue() -> None:
    from otel_livekit.metrics.catalogue import markdown_table

    start = README.index("<!-- catalogue:start")
    start = README.index("\n", start) + 1
    end = README.index("<!-- catalogue:end -->")
    assert README[start:end] == markdown_table(), "run `otel-livekit catalogue` into README"
