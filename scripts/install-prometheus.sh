#!/usr/bin/env bash
# Install what the stack tests need (called by install-test-servers.sh; idempotent, fast
# when present):
#   - Prometheus + promtool from Debian's `prometheus` package, unpacked (not installed)
#     under $TOOLS_DIR/prometheus: a static binary, no system service, no root needed
#     beyond apt's download.
#   - Debian's `docker-compose` (1.29.2) to validate docker-compose.yml without an engine.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${OTEL_LIVEKIT_TOOLS_DIR:-$REPO/.cache/tools}"
PROM_DIR="$TOOLS_DIR/prometheus"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if [ ! -x "$PROM_DIR/usr/bin/prometheus" ] || [ ! -x "$PROM_DIR/usr/bin/promtool" ]; then
    echo "==> unpacking Debian's prometheus into $PROM_DIR"
    download="$(mktemp -d)"
    chmod 777 "$download"  # apt downloads as the unprivileged _apt user
    (cd "$download" && apt-get download -qq prometheus 2>/dev/null) || {
        $SUDO apt-get update -qq
        (cd "$download" && apt-get download -qq prometheus)
    }
    mkdir -p "$PROM_DIR"
    dpkg-deb -x "$download"/prometheus_*.deb "$PROM_DIR"
    rm -rf "$download"
fi

if ! command -v docker-compose >/dev/null 2>&1; then
    echo "==> installing docker-compose (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 || {
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    }
fi

echo "prometheus: $PROM_DIR/usr/bin/prometheus ($("$PROM_DIR/usr/bin/prometheus" --version 2>&1 | head -1))"
echo "docker-compose: $(command -v docker-compose) ($(docker-compose version --short 2>/dev/null))"
