"""A lean destination gets the tree a person reads (Langfuse's default), a full one every
span: measured on what an OTLP receiver decodes from a real offline session."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OtlpReceiver, attrs

from otel_livekit import setup_tracing
from otel_livekit.config import SetupArgs, resolve
from otel_livekit.offline import run_offline_session
from otel_livekit.sessions.profile import LEAN_KEEP


def _call(lean: str | None) -> tuple[list[Any], list[Any]]:
    memory = InMemorySpanExporter()
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, lean=lean, span_exporters={"everything": memory})
        asyncio.run(run_offline_session(text_turns=("hello", "what's the weather?"), audio_turns=1))
        assert t.force_flush()
        lean_spans = [s for _, s in rx.spans()]
    return lean_spans, list(memory.get_finished_spans())


def _under(turn: Any, spans: list[Any]) -> list[Any]:
    children: dict[bytes, list[Any]] = {}
    for s in spans:
        children.setdefault(s.parent_span_id, []).append(s)
    out, todo = [turn], [turn.span_id]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child.span_id)
    return out


def test_a_lean_destination_reads_as_turns_and_generations_with_nothing_lost() -> None:
    lean, full = _call("otlp")
    names, full_names = Counter(s.name for s in lean), Counter(s.name for s in full)
    assert set(names) <= LEAN_KEEP, names
    readable = {"agent_session", "user_turn", "agent_turn", "llm_request", "tts_request", "function_tool"}
    assert readable <= set(names)
    assert full_names["llm_request_run"] >= 1 and full_names["tts_node"] >= 1  # the other destination: all
    assert len(lean) < len(full) / 2, (len(lean), len(full))
    # the same generations and turns at both destinations
    for name in ("agent_turn", "user_turn", "llm_request", "tts_request", "function_tool"):
        assert names[name] == full_names[name], name
    # no orphan: every kept span's parent was sent too (or it is a root)
    sent = {s.span_id for s in lean}
    assert [s.name for s in lean if s.parent_span_id and s.parent_span_id not in sent] == []
    # at most 6 observations per agent turn (the turn, its generations and tool calls)
    for turn in (s for s in lean if s.name == "agent_turn"):
        under = _under(turn, lean)
        assert len(under) <= 6, [s.name for s in under]
    # a generation hangs under its turn, not under a dropped llm_node
    turns = {s.span_id for s in lean if s.name == "agent_turn"}
    assert all(s.parent_span_id in turns for s in lean if s.name in ("llm_request", "tts_request"))
    # numbers of dropped wrappers moved onto the kept ancestor (none lost)
    full_keys = {k for s in full if s.name == "llm_request_run" for k in (s.attributes or {})}
    lean_keys = {kv.key for s in lean if s.name == "llm_request" for kv in s.attributes}
    assert full_keys <= lean_keys, full_keys - lean_keys
    # the session's state changes summarised, not one event per change
    (session,) = [s for s in lean if s.name == "agent_session"]
    a = attrs(session.attributes)
    assert not [e for e in session.events if e.name in ("agent_state_changed", "user_state_changed")]
    assert a["voice_agent.session.agent_state.speaking.changes"] >= 3
    assert a["voice_agent.session.agent_state.speaking.seconds"] > 0
    (full_session,) = [s for s in full if s.name == "agent_session"]
    changes = [e for e in full_session.events if e.name == "agent_state_changed"]
    speaking = [e for e in changes if (e.attributes or {}).get("lk.new_state") == "speaking"]
    assert a["voice_agent.session.agent_state.speaking.changes"] == len(speaking)


def test_a_typed_call_is_lean_too() -> None:
    """No user speech (no user state changes): the lean view still applies, never falls back."""
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, lean="otlp")
        asyncio.run(run_offline_session(text_turns=("hello", "bye"), audio_turns=0))
        assert t.force_flush()
        spans = [s for _, s in rx.spans()]
    assert {s.name for s in spans} <= LEAN_KEEP
    (session,) = [attrs(s.attributes) for s in spans if s.name == "agent_session"]
    assert session["voice_agent.session.agent_state.speaking.changes"] == 2


def test_full_keeps_every_span() -> None:
    lean, full = _call("none")
    assert Counter(s.name for s in lean) == Counter(s.name for s in full)


@pytest.mark.parametrize(("backend", "env", "lean"), [
    ("langfuse", {}, {"langfuse"}),
    ("otlp", {}, set()),
    ("langfuse", {"OTEL_LIVEKIT_LEAN": "none"}, set()),
    ("otlp", {"OTEL_LIVEKIT_LEAN": "all"}, {"otlp"}),
])  # fmt: skip
def test_langfuse_is_lean_by_default_every_other_destination_full(
    backend: str, env: dict[str, str], lean: set[str]
) -> None:
    keys = {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    config = resolve(SetupArgs(backend=backend), {**keys, **env})
    assert not config.problems
    assert set(config.lean) == lean


def test_a_lean_setting_naming_no_destination_is_a_problem() -> None:
    config = resolve(SetupArgs(backend="otlp"), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                                                "OTEL_LIVEKIT_LEAN": "langfsue"})  # fmt: skip
    assert [p.variable for p in config.problems] == ["OTEL_LIVEKIT_LEAN"]
    assert config.lean == frozenset()


PRICES = {
    "llm": {"openai/fake-gpt": {"input": 1.0, "cached_input": 0.5, "output": 2.0}},
    "tts": {"fake-tts-co/fake-voice": {"per_million_characters": 100.0}},
    "stt": {"fake-stt-co/fake-nova": {"per_minute": 0.5}},
}  # fmt: skip


@pytest.mark.parametrize("lean", ["otlp", "none"])
def test_a_calls_generations_add_up_to_its_cost(lean: str) -> None:
    """STT is a generation too (``stt_request`` under the user turn), so what Langfuse sums
    over generations is the call's cost — the report's and the dashboards' figure."""
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, lean=lean, langfuse_mapping=True, prices=PRICES)
        asyncio.run(run_offline_session(text_turns=("hello", "what's the weather?"), audio_turns=1))
        assert t.force_flush()
        spans = [s for _, s in rx.spans()]
    generations = [attrs(s.attributes) for s in spans
                   if attrs(s.attributes).get("langfuse.observation.type") == "generation"]  # fmt: skip
    by_kind = Counter(a["gen_ai.operation.name"] for a in generations)
    assert by_kind["speech_to_text"] >= 1 and by_kind["chat"] >= 1 and by_kind["text_to_speech"] >= 1
    (session,) = [attrs(s.attributes) for s in spans if s.name == "agent_session"]
    call_cost = session["voice_agent.session.cost"]
    assert call_cost > 0
    assert sum(a.get("gen_ai.usage.cost", 0.0) for a in generations) == pytest.approx(call_cost, rel=0.01)
    stt = [a for a in generations if a["gen_ai.operation.name"] == "speech_to_text"]
    for a in stt:
        model = (a["gen_ai.provider.name"], a["langfuse.observation.model.name"])
        assert model == ("fake-stt-co", "fake-nova")
        assert a["gen_ai.usage.cost"] > 0 and a["langfuse.observation.usage_details"]
    # under the user turn
    turns = {s.span_id for s in spans if s.name == "user_turn"}
    assert all(s.parent_span_id in turns for s in spans if s.name == "stt_request")


def test_transcripts_sit_on_the_turn_where_they_were_said() -> None:
    """The user's spoken words on ``user_turn``, the agent's on ``agent_turn``, each with the
    turn id; a typed (text) turn has no user_turn, so its words stay on the agent turn."""
    memory, bare = InMemorySpanExporter(), InMemorySpanExporter()
    t = setup_tracing("none", content="words", span_exporters={"words": memory, "bare": bare})
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=1))
    assert t.force_flush()
    said = [(s.name, dict(e.attributes or {})) for s in memory.get_finished_spans() for e in s.events
            if e.name == "voice_agent.transcript"]  # fmt: skip
    lines = [(name, a["voice_agent.transcript.role"], a["voice_agent.pii.transcript.text"])
             for name, a in said]  # fmt: skip
    assert lines == [
        ("agent_turn", "user", "hello"), ("agent_turn", "assistant", "Hi there! How can I help you today?"),
        ("user_turn", "user", "bye"), ("agent_turn", "assistant", "Goodbye, have a nice day."),
    ]  # fmt: skip
    spoken = [a["voice_agent.turn.id"] for name, a in said if a["voice_agent.pii.transcript.text"] in ("bye",
              "Goodbye, have a nice day.")]  # fmt: skip
    assert len(set(spoken)) == 1 and spoken[0].startswith("speech_")
    # under the content rules: the destination without content has the events, not the words
    blob = repr([(s.attributes, [e.attributes for e in s.events]) for s in bare.get_finished_spans()])
    assert "bye" not in blob and "hello" not in blob


def test_the_turn_observation_carries_its_budget_as_metadata() -> None:
    """What Langfuse receives (lean, mapped): each agent turn's wait, part by part, as the
    observation's own metadata keys, equal to the span's budget attributes."""
    with OtlpReceiver() as rx:
        t = setup_tracing("otlp", endpoint=rx.url, lean="otlp", langfuse_mapping=True)
        asyncio.run(run_offline_session(text_turns=("what's the weather?",), audio_turns=1))
        assert t.force_flush()
        turns = [attrs(s.attributes) for _, s in rx.spans() if s.name == "agent_turn"]
    assert len(turns) == 2
    for a in turns:
        budget = {k.removeprefix("voice_agent.turn.budget."): v for k, v in a.items()
                  if k.startswith("voice_agent.turn.budget.") and ".timeline." not in k}  # fmt: skip
        meta = {k.removeprefix("langfuse.observation.metadata.budget."): v for k, v in a.items()
                if k.startswith("langfuse.observation.metadata.budget.")}  # fmt: skip
        assert meta == budget and "total" in meta and "dominant" in meta
        parts = sum(v for k, v in meta.items() if isinstance(v, float) and k not in ("total", "slo"))
        assert parts == pytest.approx(meta["total"], abs=1e-9)
        assert meta[str(meta["dominant"])] == max(v for k, v in meta.items()
                                                  if isinstance(v, float) and k not in ("total", "slo"))
