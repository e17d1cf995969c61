"""Smoke tests for the real-backend harness in tests/servers.py.

Why: every integration test trusts that Phoenix stores what the real OTLP/HTTP exporter
sends and that the nginx front enforces Basic auth the way Langfuse does. If these fail,
the harness is broken, not the package.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servers import (
    NginxBasicAuth,
    PhoenixServer,
    basic_auth_header,
    nginx_binary,
    phoenix_binary,
    require_or_skip,
)


@pytest.fixture(scope="module")
def smoke_phoenix() -> Iterator[PhoenixServer]:
    """One Phoenix for this module: it takes about 10 s to start."""
    require_or_skip("Arize Phoenix", phoenix_binary() is not None)
    with PhoenixServer() as server:
        yield server


def _make_spans(project: str, *names: str) -> Sequence[ReadableSpan]:
    """Finished SDK spans, captured in memory so a test can export them itself."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "smoke", "openinference.project.name": project})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("smoke")
    for name in names:
        with tracer.start_as_current_span(name, attributes={"smoke.attr": f"{name}-value"}):
            pass
    provider.shutdown()
    return memory.get_finished_spans()


def test_phoenix_stores_span_from_real_exporter(smoke_phoenix: PhoenixServer) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "smoke", "openinference.project.name": "smoke-proj"})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=smoke_phoenix.traces_url, timeout=10))
    )
    tracer = provider.get_tracer("smoke")
    with (
        tracer.start_as_current_span("smoke-parent", attributes={"smoke.attr": "hello"}),
        tracer.start_as_current_span("smoke-child"),
    ):
        pass
    provider.shutdown()

    spans = smoke_phoenix.spans("smoke-proj", wait_for=2)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"smoke-parent", "smoke-child"}
    parent, child = by_name["smoke-parent"], by_name["smoke-child"]
    assert parent["attributes"]["smoke.attr"] == "hello"
    assert parent["parent_id"] is None
    assert child["parent_id"] == parent["context"]["span_id"]
    assert child["context"]["trace_id"] == parent["context"]["trace_id"]
    assert len(parent["context"]["trace_id"]) == 32
    # The project came from the resource attribute, not the default project.
    assert smoke_phoenix.spans("default", wait_for=0) == []


def test_nginx_basic_auth_front(smoke_phoenix: PhoenixServer) -> None:
    require_or_skip("nginx", nginx_binary() is not None)
    project = f"smoke-auth-{uuid.uuid4().hex[:8]}"
    with NginxBasicAuth(smoke_phoenix.base_url, "pk-lf-test", "sk-lf-secret") as front:
        assert front.traces_url == f"{front.base_url}/api/public/otel/v1/traces"

        # No credentials at all: 401 from nginx itself.
        request = urllib.request.Request(front.traces_url, data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5)
        assert excinfo.value.code == 401

        # Wrong secret: the real exporter reports FAILURE.
        bad = OTLPSpanExporter(
            endpoint=front.traces_url,
            headers={"Authorization": basic_auth_header("pk-lf-test", "wrong")},
            timeout=5,
        )
        assert bad.export(_make_spans(project, "rejected")) == SpanExportResult.FAILURE

        # Right keys: stored, and the rejected span never arrived.
        good = OTLPSpanExporter(
            endpoint=front.traces_url,
            headers={"Authorization": front.auth_header},
            timeout=5,
        )
        assert good.export(_make_spans(project, "accepted")) == SpanExportResult.SUCCESS

        spans = smoke_phoenix.spans(project, wait_for=1)
        assert [s["name"] for s in spans] == ["accepted"]
        assert spans[0]["attributes"]["smoke.attr"] == "accepted-value"


def test_require_or_skip_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    require_or_skip("present", True)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"install-test-servers\.sh"):
        require_or_skip("absent", False)
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match=r"install-test-servers\.sh"):
        require_or_skip("absent", False)
