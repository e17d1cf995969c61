#!/usr/bin/env bash
# Install the real backends the integration tests run against:
#   - nginx (Debian nginx-light): Basic-auth front that mimics Langfuse's OTLP endpoint.
#   - Prometheus + promtool (Debian prometheus 2.42, extracted into the tools dir, no service).
#   - Arize Phoenix (PyPI) in its OWN virtualenv: an OTLP/HTTP trace store we can query.
# Idempotent and fast when everything is already there. Does not start any service.
set -euo pipefail

PHOENIX_VERSION="${OTEL_LIVEKIT_PHOENIX_VERSION:-20.26.1}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${OTEL_LIVEKIT_TOOLS_DIR:-$REPO/.cache/tools}"
PHOENIX_VENV="$TOOLS_DIR/phoenix"
PYTHON="${OTEL_LIVEKIT_TOOLS_PYTHON:-python3}"  # any Python >= 3.10 with venv

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

find_nginx() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}

# --- nginx -------------------------------------------------------------------
if [ -z "$(find_nginx)" ]; then
    echo "==> installing nginx-light (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # policy-rc.d exit 101 keeps the package's postinst from starting the system
    # service (it would grab port 80); removed again right after the install.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        added_policy=1
    fi
    status=0
    $SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null || status=$?
    if [ "$added_policy" -eq 1 ]; then
        $SUDO rm -f "$policy"
    fi
    [ "$status" -eq 0 ] || { echo "apt-get install nginx-light failed ($status)" >&2; exit "$status"; }
fi
NGINX_BIN="$(find_nginx)"
[ -n "$NGINX_BIN" ] || { echo "nginx still not found after install" >&2; exit 1; }

# --- libportaudio2: LiveKit's console mode (examples/agent.py console --text) needs it ---
if ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
    echo "==> installing libportaudio2 (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq --no-install-recommends libportaudio2 >/dev/null 2>&1 || {
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends libportaudio2 >/dev/null
    }
fi

# --- chromium: the HTML report is tested in a real headless browser -------------------
if ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
    }
fi

# --- Arize Phoenix (own venv) ---------------------------------------------------
if [ ! -x "$PHOENIX_VENV/bin/phoenix" ]; then
    echo "==> installing arize-phoenix==$PHOENIX_VERSION into $PHOENIX_VENV"
    mkdir -p "$TOOLS_DIR"
    rm -rf "$PHOENIX_VENV"
    "$PYTHON" -m venv "$PHOENIX_VENV"
    # The machine-wide pip config may list local file:// indexes that do not exist;
    # drop pip's per-package warnings about them (pipefail keeps pip's exit status).
    "$PHOENIX_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "arize-phoenix==$PHOENIX_VERSION" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
fi

# --- Prometheus + promtool and docker-compose (the stack tests) -------------------
bash "$REPO/scripts/install-prometheus.sh"

echo "chromium: $(command -v chromium) ($(chromium --version 2>/dev/null | head -1))"
echo "nginx:   $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'))"
echo "phoenix: $PHOENIX_VENV/bin/phoenix (arize-phoenix $("$PHOENIX_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("arize-phoenix"))'))"
echo "tests find Phoenix via OTEL_LIVEKIT_TOOLS_DIR=$TOOLS_DIR (or OTEL_LIVEKIT_PHOENIX=<binary>)"
