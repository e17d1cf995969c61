"""A real offline AgentSession exported to real backends: Arize Phoenix (OTLP/HTTP) and an
nginx Basic-auth front at Langfuse's OTLP path."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from conftest import LANGFUSE_PUBLIC, LANGFUSE_SECRET
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servers import NginxBasicAuth, PhoenixServer

from otel_livekit import setup_tracing
from otel_livekit.offline import run_offline_session


def by_name(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        out.setdefault(s["name"], []).append(s)
    return out


def parent_name(span: dict[str, Any], spans: list[dict[str, Any]]) -> str | None:
    ids = {s["context"]["span_id"]: s["name"] for s in spans}
    return ids.get(span["parent_id"])


def test_session_span_tree_reaches_phoenix(phoenix: PhoenixServer) -> None:
    service = f"voice-e2e-{uuid.uuid4().hex[:6]}"
    t = setup_tracing("phoenix", phoenix_collector_endpoint=phoenix.base_url, service_name=service)
    run = asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=1))
    assert run.assistant_messages == 2
    assert t.force_flush()
    # the project is named after the service: proves the configured service name arrived
    spans = phoenix.spans(service, wait_for=20)
    named = by_name(spans)
    for name in (
        "agent_session",
        "user_turn",
        "agent_turn",
        "llm_node",
        "llm_request",
        "tts_node",
        "tts_request",
    ):
        assert name in named, f"{name} missing from {sorted(named)}"
    (root,) = named["agent_session"]
    assert root["parent_id"] is None
    assert {s["context"]["trace_id"] for s in spans} == {root["context"]["trace_id"]}
    assert len(named["agent_turn"]) == 2
    assert all(parent_name(s, spans) == "agent_session" for s in named["agent_turn"])
    assert all(parent_name(s, spans) == "llm_node" for s in named["llm_request"])
    llm = named["llm_request"][0]["attributes"]
    assert llm["gen_ai.request.model"] == "fake-gpt"
    assert llm["gen_ai.usage.input_tokens"] == 40
    assert llm["gen_ai.usage.output_tokens"] == 8
    (user_turn,) = named["user_turn"]
    assert user_turn["attributes"]["lk.transcription_delay"] > 0
    assert t.export_failures == {"traces": 0}


def test_langfuse_backend_through_basic_auth(
    phoenix: PhoenixServer, langfuse_front: NginxBasicAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = f"langfuse-ok-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", LANGFUSE_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_front.base_url)
    t = setup_tracing(  # only the backend name, as a user would
        "langfuse", resource_attributes={"openinference.project.name": project}
    )
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    assert t.force_flush()
    spans = phoenix.spans(project, wait_for=4)  # a typed turn in Langfuse's lean tree
    named = by_name(spans)
    assert {"agent_session", "agent_turn", "llm_request", "tts_request"} <= set(named)
    stored = repr([s["attributes"] for s in spans])
    assert LANGFUSE_SECRET not in stored and "Basic " not in stored  # no secret in any span
    assert t.export_failures == {"traces": 0}


def test_langfuse_wrong_secret_is_reported_once_and_never_raised(
    phoenix: PhoenixServer,
    langfuse_front: NginxBasicAuth,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = f"langfuse-bad-{uuid.uuid4().hex[:6]}"
    caplog.set_level(logging.DEBUG)
    everything = InMemorySpanExporter()
    t = setup_tracing(
        "langfuse",
        langfuse_public_key=LANGFUSE_PUBLIC,
        langfuse_secret_key="sk-wrong-secret",
        langfuse_host=langfuse_front.base_url,
        resource_attributes={"openinference.project.name": project},
        span_processors=[SimpleSpanProcessor(everything)],
    )
    run = asyncio.run(run_offline_session(text_turns=("hello", "bye"), audio_turns=0))
    assert run.assistant_messages == 2  # the agent did its job regardless
    t.force_flush()
    with trace.get_tracer("test").start_as_current_span("after"):
        pass
    t.force_flush()
    assert t.export_failures["traces"] >= 2
    warnings = [r for r in caplog.records if r.name == "otel_livekit" and "failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "failed: HTTP 401" in warnings[0].getMessage()
    # every span Langfuse's lean tree keeps is counted as not delivered; the rest was left out
    traces = t.health[0]
    assert traces.left_out > 0
    assert t.not_delivered["traces"] + traces.left_out == len(everything.get_finished_spans())
    assert "sk-wrong-secret" not in caplog.text
    assert phoenix.fetch_spans(project) == []
