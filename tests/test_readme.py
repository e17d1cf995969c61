"""The README and the docs follow the code: the generated tables are regenerated and
compared, every backend and variable is documented, every snippet compiles, and the site
builds strictly (scripts/test.sh runs ``mkdocs build --strict``)."""

from __future__ import annotations

from pathlib import Path

from otel_livekit import environment_variables as ev
from otel_livekit.export.destinations.backends import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_every_backend_and_its_variables_are_in_getting_started() -> None:
    page = (DOCS / "getting-started.md").read_text()
    for backend in BACKENDS.values():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{backend.name}` |")), None)
        assert row is not None, f"backend {backend.name} missing from docs/getting-started.md"
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


def test_docs_catalogue_is_the_catalogue() -> None:
    from otel_livekit.metrics.catalogue import markdown_table

    page = (DOCS / "metrics.md").read_text()
    start = page.index("\n", page.index("<!-- catalogue:start")) + 1
    end = page.index("<!-- catalogue:end -->")
    assert page[start:end] == markdown_table(), "run `otel-livekit catalogue` into docs/metrics.md"


def test_docs_budget_parts_are_the_budgets() -> None:
    from otel_livekit.metrics.budget import markdown_table

    page = (DOCS / "latency.md").read_text()
    start = page.index("\n", page.index("<!-- budget-parts:start")) + 1
    assert page[start : page.index("<!-- budget-parts:end -->")] == markdown_table()


def test_readme_is_short_and_every_page_is_in_the_site() -> None:
    import yaml

    assert len(README.splitlines()) <= 150
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str):
            listed.add(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(site["nav"])
    assert {p.name for p in DOCS.glob("*.md")} == listed


def test_every_python_snippet_in_the_docs_compiles() -> None:
    import re

    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    snippets = [(page.name, m.group(1)) for page in pages
                for m in re.finditer(r"```python\n(.*?)```", page.read_text(), re.S)]  # fmt: skip
    assert len(snippets) >= 5
    for name, code in snippets:  # an included file (pymdownx.snippets) is compiled as included
        code = re.sub(r'^--8<-- "([^"]+)"$', lambda m: (ROOT / m.group(1)).read_text(), code, flags=re.M)
        compile(code, name, "exec")


def test_supported_versions_are_the_ones_tested() -> None:
    """The table in docs/index.md names the versions this suite runs against."""
    import platform
    import re
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    import otel_livekit

    page = (DOCS / "index.md").read_text()
    rows = {name: spec for name, spec in re.findall(
        r"^\| (livekit-agents|opentelemetry-sdk|Python) \| [^|]+ \| `([^`]+)`", page, re.M)}  # fmt: skip
    assert set(rows) == {"livekit-agents", "opentelemetry-sdk", "Python"}, rows
    installed = {name: version(name) for name in ("livekit-agents", "opentelemetry-sdk")}
    installed["Python"] = platform.python_version()
    for name, tested in installed.items():
        assert tested in SpecifierSet(rows[name]), (name, tested, rows[name])
    assert otel_livekit.__version__ == version("otel_livekit")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{otel_livekit.__version__}]" in changelog


def test_the_readme_quickstart_is_the_tested_example() -> None:
    """Every line of the README's entrypoint skeleton is in examples/agent.py, which
    tests/test_job_process.py runs in a real JobContext (the docs include the file itself)."""
    import re

    example = (ROOT / "examples" / "agent.py").read_text()
    (quickstart,) = [m.group(1) for m in re.finditer(r"```python\n(.*?)```", README, re.S)
                     if "setup_tracing" in m.group(1)]  # fmt: skip
    skeleton = [line.split("#")[0].strip() for line in quickstart.splitlines()]
    skeleton = [line for line in skeleton if line and "..." not in line and "MyAgent" not in line]
    assert len(skeleton) >= 7
    for line in skeleton:
        if line.startswith("setup_tracing("):
            line = "setup_tracing("
        assert line in example, line
    assert '--8<-- "examples/agent.py"' in (DOCS / "getting-started.md").read_text()
