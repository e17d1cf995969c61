#!/usr/bin/env bash
# Install everything the tests need (package + test deps in .venv, nginx, Arize Phoenix in
# its own venv) and run lint, types and the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
quiet_pip() { grep -v "^WARNING: Location 'file:" || true; }
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | quiet_pip
bash scripts/install-test-servers.sh

echo "==> ruff"; .venv/bin/ruff check otel_livekit tests bench examples
echo "==> mypy"; .venv/bin/mypy
echo "==> docs"; NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir .cache/site
echo "==> pytest"; .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
