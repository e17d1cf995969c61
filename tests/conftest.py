"""Shared fixtures: a clean OTel global state per test, and the real backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.util._once import Once
from servers import (
    NginxBasicAuth,
    PhoenixServer,
    nginx_binary,
    phoenix_binary,
    require_or_skip,
)

import otel_livekit.telemetry as telemetry_module
from otel_livekit.installation import installed

os.environ.setdefault("LIVEKIT_TELEMETRY_ALLOW_PII", "1")

_TEST_TOOL_VARIABLES = frozenset(
    {
        "OTEL_LIVEKIT_TOOLS_DIR",
        "OTEL_LIVEKIT_PHOENIX",
        "OTEL_LIVEKIT_PROMETHEUS_DIR",
    }
)
"""Where the test servers are (tests/servers.py), not settings of the package: kept."""

_OUR_ENV_PREFIXES = (
    "OTEL_",
    "LANGFUSE_",
    "HONEYCOMB_",
    "GRAFANA_CLOUD_",
    "DD_",
    "NEW_RELIC_",
    "PHOENIX_",
    "PROMETHEUS_MULTIPROC_DIR",  # would turn the Prometheus sink on in every test
)


def reset_otel_globals() -> None:
    """The OTel globals are set-once per process; tests need a fresh one each (as OTel's
    own test utilities do). Proxy meters/tracers created earlier re-bind on the next set."""
    current = telemetry_module.current()
    if current is not None:
        current.shutdown(timeout=1.0)
    process = installed()
    process.uninstall()  # what a failed or disabled setup left, if anything
    process.recorder = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No backend variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith(_OUR_ENV_PREFIXES) and key not in _TEST_TOOL_VARIABLES:
            monkeypatch.delenv(key)
    # each test its own outage spool: nothing spooled by one test is replayed into another
    monkeypatch.setenv("OTEL_LIVEKIT_SPOOL_DIR", str(tmp_path / "spool"))
    # and its own instance slots: no test continues another's counters
    # (beside tmp_path, which some tests expect to stay empty)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path.with_name(tmp_path.name + "-cache")))
    # exports to receivers a test already closed give up quickly, not after the 10 s default
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    reset_otel_globals()
    yield
    reset_otel_globals()


@pytest.fixture(scope="session")
def phoenix() -> Iterator[PhoenixServer]:
    require_or_skip("Arize Phoenix", phoenix_binary() is not None)
    with PhoenixServer() as server:
        yield server


LANGFUSE_PUBLIC = "pk-lf-test-public"
LANGFUSE_SECRET = "sk-lf-test-secret-do-not-leak"


@pytest.fixture(scope="session")
def langfuse_front(phoenix: PhoenixServer) -> Iterator[NginxBasicAuth]:
    """nginx with Basic auth at Langfuse's OTLP path, in front of the real Phoenix."""
    require_or_skip("nginx", nginx_binary() is not None)
    with NginxBasicAuth(phoenix.base_url, LANGFUSE_PUBLIC, LANGFUSE_SECRET) as front:
        yield front
