"""A call reads as one session: ids on every span, generations with usage/cost, content
only where opted in — a real offline AgentSession through nginx Basic auth → Phoenix (the
Langfuse path) and a second destination decoded from real OTLP protobuf."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import LANGFUSE_PUBLIC, LANGFUSE_SECRET
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from otlp_receiver import OtlpReceiver, attrs
from servers import NginxBasicAuth, PhoenixServer

from otel_livekit import set_call_attributes, setup_tracing
from otel_livekit.offline import run_offline_session

ROOM = "room-lf-1"
USER = "caller-7"
PRICES = {"llm": {"openai/fake-gpt": {"input": 1.0, "cached_input": 0.5, "output": 2.0}}}
# 35 uncached input tokens x $1/M + 5 cached x $0.5/M + 8 output x $2/M
LLM_COST = (35 * 1.0 + 5 * 0.5 + 8 * 2.0) / 1e6

# every text the fake STT/LLM/tools produce or receive in this call
TEXTS = (
    "hello",
    "Hi there! How can I help you today?",
    "what's the weather?",
    "The weather is sunny in Paris",
    "Goodbye, have a nice day.",
    "You are a test agent.",
    '{"location": "Paris"}',
)


@pytest.fixture
def langfuse_env(langfuse_front: NginxBasicAuth, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", LANGFUSE_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_front.base_url)
    yield f"lf-{uuid.uuid4().hex[:8]}"


def _run_call() -> None:
    def who(session: Any) -> None:
        set_call_attributes(session, user_id=USER, tags=["test"])

    run = asyncio.run(
        run_offline_session(
            text_turns=("hello", "what's the weather?"), audio_turns=1, room_name=ROOM, before_start=who
        )
    )
    assert run.assistant_messages == 3


def _texts_in(blob: str) -> list[str]:
    return [t for t in TEXTS if t in blob or json.dumps(t)[1:-1] in blob]


def _by_name(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        out.setdefault(s["name"], []).append(s)
    return out


def test_langfuse_path_defaults_session_generations_and_no_content(
    phoenix: PhoenixServer, langfuse_env: str
) -> None:
    project = langfuse_env
    t = setup_tracing(
        "langfuse",
        environment="staging",
        prices=PRICES,
        resource_attributes={"openinference.project.name": project},
    )
    _run_call()
    assert t.force_flush()
    spans = phoenix.spans(project, wait_for=14)  # Langfuse's lean tree of this call
    named = _by_name(spans)

    # lean by default: turns, generations (STT included), tools; no orphan; ≤ 6 per agent turn
    assert sorted(named) == ["agent_session", "agent_turn", "function_tool", "llm_request", "stt_request",
                             "tts_request", "user_turn"]  # fmt: skip
    ids = {s["context"]["span_id"] for s in spans}
    assert [s["name"] for s in spans if s["parent_id"] and s["parent_id"] not in ids] == []
    for turn in named["agent_turn"]:
        tree, todo = [turn], [turn["context"]["span_id"]]
        while todo:
            current = todo.pop()
            children = [s for s in spans if s["parent_id"] == current]
            tree += children
            todo += [c["context"]["span_id"] for c in children]
        assert len(tree) <= 6, [s["name"] for s in tree]
    # what Langfuse adds up over generations is the call's cost
    every = [s["attributes"] for s in spans]
    generations = [a for a in every if a.get("langfuse.observation.type") == "generation"]
    (session,) = named["agent_session"]
    assert sum(a.get("gen_ai.usage.cost", 0.0) for a in generations) == pytest.approx(
        session["attributes"]["voice_agent.session.cost"], rel=0.01)

    # every span of the call carries the session and the user, Langfuse's keys and OTel's
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    for s in spans:
        a = s["attributes"]
        assert a["langfuse.session.id"] == ROOM and a["session.id"] == ROOM, s["name"]
        assert a["langfuse.user.id"] == USER and a["user.id"] == USER, s["name"]
        assert a["langfuse.trace.name"] == "voice_call"
        assert a["langfuse.environment"] == "staging"
        assert list(a["langfuse.trace.tags"]) == ["test"]
        assert a["langfuse.trace.metadata.job_id"] == "job-offline"

    # llm_request spans are generations with model, usage, cost and completion start
    assert len(named["llm_request"]) == 4
    for s in named["llm_request"]:
        a = s["attributes"]
        assert a["langfuse.observation.type"] == "generation"
        assert a["langfuse.observation.model.name"] == "fake-gpt"
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
        assert json.loads(a["langfuse.observation.usage_details"]) == {
            "input": 35, "input_cached_tokens": 5, "output": 8, "total": 48,  # no token twice
        }  # fmt: skip
        assert a["gen_ai.usage.cost"] == pytest.approx(LLM_COST, rel=1e-12)
        assert json.loads(a["langfuse.observation.cost_details"]) == {"total": a["gen_ai.usage.cost"]}
        started = json.loads(a["langfuse.observation.completion_start_time"])
        assert s["start_time"][:19] <= started[:19] <= s["end_time"][:19]
    for s in named["tts_request"]:
        a = s["attributes"]
        assert a["langfuse.observation.type"] == "generation"
        assert a["gen_ai.operation.name"] == "text_to_speech"
        assert a["gen_ai.provider.name"] == "fake-tts-co"
        assert json.loads(a["langfuse.observation.usage_details"])["characters"] > 0
        assert "langfuse.observation.completion_start_time" in a
    (user_turn,) = named["user_turn"]
    assert user_turn["attributes"]["gen_ai.operation.name"] == "speech_to_text"
    assert user_turn["attributes"]["gen_ai.provider.name"] == "fake-stt-co"
    assert user_turn["attributes"]["langfuse.observation.type"] == "span"
    assert [s["attributes"]["langfuse.observation.type"] for s in named["function_tool"]] == ["tool"]
    # one stable turn id on the turn and everything under it
    for turn in named["agent_turn"]:
        turn_id = turn["attributes"]["voice_agent.turn.id"]
        assert turn_id == turn["attributes"]["lk.speech_id"]
        children = [s for s in spans if s["parent_id"] == turn["context"]["span_id"]]
        assert children and all(c["attributes"]["voice_agent.turn.id"] == turn_id for c in children)
    # the user's half of the audio turn carries the id of the agent turn that answered it
    answered = [t for t in named["agent_turn"] if t["attributes"].get("lk.e2e_latency") is not None]
    (answer,) = answered
    assert user_turn["attributes"]["voice_agent.turn.id"] == answer["attributes"]["lk.speech_id"]

    # the default: no prompt, reply, transcript or tool payload anywhere Phoenix stored
    assert _texts_in(json.dumps(spans)) == []
    values = [v for s in spans for v in s["attributes"].values()]
    values += [v for s in spans for e in s["events"] for v in e["attributes"].values()]
    assert "bye" not in values  # the audio turn's transcript (a substring of the reply otherwise)
    # yet the transcript events are there, text withheld
    events = [e for s in named["agent_turn"] + named["user_turn"] for e in s["events"]
              if e["name"] == "voice_agent.transcript"]  # fmt: skip
    assert len(events) == 6  # the spoken turn's words on its user_turn, the rest on agent turns
    assert [e["attributes"]["voice_agent.transcript.role"] for e in named["user_turn"][0]["events"]
            if e["name"] == "voice_agent.transcript"] == ["user"]  # fmt: skip
    assert {e["attributes"]["voice_agent.transcript.role"] for e in events} == {"user", "assistant"}
    assert t.export_failures == {"traces": 0}


def test_content_for_langfuse_only_not_the_second_destination(
    phoenix: PhoenixServer, langfuse_env: str
) -> None:
    project = langfuse_env
    with OtlpReceiver() as jaeger:
        t = setup_tracing(
            "langfuse",
            content="langfuse",
            span_exporters={"jaeger": OTLPSpanExporter(endpoint=jaeger.url + "/v1/traces")},
            resource_attributes={"openinference.project.name": project},
        )
        _run_call()
        assert t.force_flush()
        spans = phoenix.spans(project, wait_for=14)
        wire = jaeger.spans()

    # Langfuse got the conversation, with input/output where Langfuse reads them
    assert _texts_in(json.dumps(spans)) == list(TEXTS)
    llm = _by_name(spans)["llm_request"][0]["attributes"]
    assert json.loads(llm["langfuse.observation.input"])[0]["parts"][0]["content"] == "hello"
    assert "Hi there! How can I help you today?" in llm["langfuse.observation.output"]
    texts = [
        e["attributes"]["voice_agent.pii.transcript.text"]
        for s in spans for e in s["events"] if e["name"] == "voice_agent.transcript"
    ]  # fmt: skip
    assert texts[:2] == ["hello", "Hi there! How can I help you today?"]

    # the second destination: the full tree (every span Langfuse got, and LiveKit's
    # wrappers), ids included, no content at all
    assert {s["context"]["span_id"] for s in spans} < {s.span_id.hex() for _, s in wire}
    decoded = [
        (s.name, attrs(s.attributes), [(e.name, attrs(e.attributes)) for e in s.events]) for _, s in wire
    ]
    assert all(a["session.id"] == ROOM and a["user.id"] == USER for _, a, _ in decoded)
    assert _texts_in(repr(decoded)) == []
    assert not [k for _, a, _ in decoded for k in a if ".pii." in k or k.startswith("gen_ai.input")]
    assert t.export_failures == {
        "traces": 0,
    }


@pytest.mark.parametrize(("content", "sees_content"), [(None, False), ("processors", True)])
def test_a_processor_added_after_setup_is_held_to_the_processors_rule(
    content: str | None, sees_content: bool
) -> None:
    """A processor added to our provider after set-up (behind our back) is held to the
    ``processors`` content rule, like the ones passed to ``setup_tracing``."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    ours, raw = InMemorySpanExporter(), InMemorySpanExporter()
    t = setup_tracing("none", content=content, span_processors=[SimpleSpanProcessor(ours)])
    assert t.tracer_provider is not None
    t.tracer_provider.add_span_processor(SimpleSpanProcessor(raw))
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    raw_blob = repr([(s.attributes, s.events) for s in raw.get_finished_spans()])
    ours_blob = repr([(s.attributes, s.events) for s in ours.get_finished_spans()])
    assert ("Hi there! How can I help you today?" in raw_blob) is sees_content
    assert ("Hi there! How can I help you today?" in ours_blob) is sees_content


def test_livekit_cloud_processors_get_what_the_project_allows() -> None:
    """A processor LiveKit's telemetry package attaches itself (LiveKit Cloud's exporter, in
    a Cloud job) is not put behind our content rules: Cloud's content is the project's
    setting. Attached here through LiveKit's own helper, as its Cloud set-up does."""
    from livekit.agents.telemetry.traces import _prepend_span_processor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    ours, cloud = InMemorySpanExporter(), InMemorySpanExporter()
    t = setup_tracing("none", span_processors=[SimpleSpanProcessor(ours)])
    assert t.tracer_provider is not None
    _prepend_span_processor(t.tracer_provider, SimpleSpanProcessor(cloud))  # type: ignore[arg-type]
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    reply = "Hi there! How can I help you today?"
    assert reply in repr([s.attributes for s in cloud.get_finished_spans()])
    assert reply not in repr([s.attributes for s in ours.get_finished_spans()])
