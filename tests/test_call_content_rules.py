"""Which content goes where, from which setting, and who a call is — on real offline
sessions, read from the spans a destination (``processors``) receives."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_livekit import set_call_attributes, setup_tracing
from otel_livekit.offline import run_offline_session

REPLY = "Hi there! How can I help you today?"


def _call(before_start: Any = None, **setup: Any) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(memory)], **setup)
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, room_name="room-a",
                                    before_start=before_start))  # fmt: skip
    return list(memory.get_finished_spans())


def _reply_in(spans: list[ReadableSpan]) -> tuple[bool, bool]:
    """(reply text in some span attribute, in some span event)."""
    in_attrs = any(REPLY in str(v) for s in spans for v in (s.attributes or {}).values())
    in_events = any(REPLY in str(v) for s in spans for e in s.events for v in (e.attributes or {}).values())
    return in_attrs, in_events


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (False, False)),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}, (False, False)),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, (True, False)),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"}, (False, True)),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT"}, (True, True)),
        ({"OTEL_LIVEKIT_ALLOW_PII": "true"}, (True, True)),  # the older all-or-nothing switch
        ({"OTEL_LIVEKIT_ALLOW_PII": "false",
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT"}, (False, False)),
        ({"OTEL_LIVEKIT_CONTENT": "processors"}, (True, True)),
        ({"OTEL_LIVEKIT_CONTENT": "processors",
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"}, (False, True)),
        ({"OTEL_LIVEKIT_CONTENT": "none", "OTEL_LIVEKIT_ALLOW_PII": "true"}, (False, False)),
        ({"LIVEKIT_TELEMETRY_ALLOW_PII": "1"}, (False, False)),  # LiveKit's own is not consulted
    ],
)  # fmt: skip
def test_content_switches(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[bool, bool]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _reply_in(_call()) == expected


def test_startup_line_says_where_content_goes_and_names_the_switch(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="otel_livekit")
    memory = InMemorySpanExporter()
    setup_tracing("console", span_processors=[SimpleSpanProcessor(memory)], content=["console"])
    (line,) = [r.getMessage() for r in caplog.records if "conversation content" in r.getMessage()]
    assert line == (
        "otel_livekit: conversation content (attributes+events) goes to console; withheld from "
        "processors (set by content=; switch: OTEL_LIVEKIT_CONTENT / "
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)"
    )


def _ids(spans: list[ReadableSpan]) -> set[tuple[Any, Any]]:
    return {((s.attributes or {}).get("session.id"), (s.attributes or {}).get("user.id")) for s in spans}


def test_call_ids_default_to_the_room_and_are_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    # the room name; no participant in an offline call, so no user id
    assert _ids(_call()) == {("room-a", None)}


def test_call_ids_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LIVEKIT_SESSION_ID", "env-session")
    monkeypatch.setenv("OTEL_LIVEKIT_USER_ID", "env-user")
    assert _ids(_call()) == {("env-session", "env-user")}


def test_call_ids_argument_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LIVEKIT_USER_ID", "env-user")
    assert _ids(_call(user_id="arg-user")) == {("room-a", "arg-user")}


def test_call_ids_per_session_beats_argument() -> None:
    def mine(session: Any) -> None:
        set_call_attributes(session, session_id="order-42", user_id="caller-42")

    assert _ids(_call(mine, user_id="arg-user")) == {("order-42", "caller-42")}


def test_a_late_per_session_call_applies_to_the_spans_that_start_afterwards() -> None:
    memory = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(memory)], user_id="early")

    def later(session: Any) -> None:
        def on_item(ev: Any) -> None:
            if ev.item.type == "message" and ev.item.role == "assistant":
                set_call_attributes(session, user_id="late")

        session.on("conversation_item_added", on_item)

    asyncio.run(run_offline_session(text_turns=("hello", "bye"), audio_turns=0, before_start=later))
    turns = [s for s in memory.get_finished_spans() if s.name == "llm_request"]
    assert [(s.attributes or {}).get("user.id") for s in turns] == ["early", "late"]


def test_content_for_one_destination_never_reaches_the_spooled_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Content opted in for `processors` only, while the backend is down and its batches
    wait in the on-disk spool: the spool files (and so the wire, later) carry no content,
    the opted-in destination does."""
    import os
    from pathlib import Path

    from servers import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # refused
    monkeypatch.setenv("OTEL_LIVEKIT_CONTENT", "processors")
    memory = InMemorySpanExporter()
    t = setup_tracing("otlp", span_processors=[SimpleSpanProcessor(memory)])
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    t.force_flush()  # the backend takes nothing: the batches wait in the spool
    spool = Path(os.environ["OTEL_LIVEKIT_SPOOL_DIR"])
    files = [p for p in spool.rglob("*") if p.is_file() and p.parent.name.startswith("traces-")]
    assert files, sorted(spool.rglob("*"))
    spooled = b"".join(p.read_bytes() for p in files)
    assert b"agent_session" in spooled  # the call's spans are there
    assert REPLY.encode() not in spooled and b"How can I help" not in spooled
    assert _reply_in(list(memory.get_finished_spans())) == (True, True)
    t.shutdown(timeout=1.0)


def test_exception_text_is_withheld_where_content_is() -> None:
    """LiveKit's own filter does not run on the loop (we hand it ``allow_pii=True``), so an
    exception's message and stack trace — which may quote the caller — are withheld by our
    destination views, in the span's attributes, its events and its status."""
    from livekit.agents.telemetry.utils import record_exception
    from opentelemetry import trace

    secret = "card 4111 1111 1111 1111"
    memory = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(memory)])
    with trace.get_tracer("test").start_as_current_span("function_tool") as span:
        span.set_attribute("exception.message", secret)
        try:
            raise ValueError(secret)
        except ValueError as exc:
            record_exception(span, exc, redacted=False)
    (got,) = memory.get_finished_spans()
    assert secret not in repr((got.attributes, [(e.name, e.attributes) for e in got.events], got.status))
    assert (got.attributes or {}).get("error.type") == "ValueError"
    assert [(e.attributes or {}).get("exception.type") for e in got.events] == ["ValueError"]
    assert got.status.status_code is trace.StatusCode.ERROR


def test_exception_text_reaches_a_destination_that_takes_content() -> None:
    from livekit.agents.telemetry.utils import record_exception
    from opentelemetry import trace

    memory = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(memory)], content="processors")
    with trace.get_tracer("test").start_as_current_span("function_tool") as span:
        record_exception(span, ValueError("the tool said no"), redacted=False)
    (got,) = memory.get_finished_spans()
    assert [(e.attributes or {}).get("exception.message") for e in got.events] == ["the tool said no"]


def test_other_tools_content_keys_are_withheld_and_the_rest_keep_their_order() -> None:
    """Content under keys LiveKit's filter does not know (OpenInference's ``input.value``,
    Langfuse's observation input/output) is withheld like LiveKit's own; every other
    attribute reaches the destination unchanged, in order."""
    from opentelemetry import trace

    from otel_livekit.sessions.langfuse import LF_INPUT, LF_OUTPUT

    memory = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(memory)])
    sent = {"a": 1, "input.value": REPLY, "lk.pii.user": REPLY, "b": "two", LF_INPUT: REPLY,
            "output.value": REPLY, LF_OUTPUT: REPLY, "exception.stacktrace": REPLY, "c": 3.0}  # fmt: skip
    with trace.get_tracer("test").start_as_current_span("tool", attributes=sent):
        pass
    (got,) = memory.get_finished_spans()
    assert dict(got.attributes or {}) == {"a": 1, "b": "two", "c": 3.0}
    assert list(got.attributes or {}) == ["a", "b", "c"]
