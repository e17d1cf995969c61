"""The session report and the agent's logs, tied to the call's trace: decoded from real
OTLP protobuf (logs and traces), and as JSON / a callback when asked."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import reset_otel_globals
from otlp_receiver import OtlpReceiver, attrs

from otel_livekit import set_call_attributes, setup_tracing
from otel_livekit.errors import ConfigurationError
from otel_livekit.offline import run_offline_session

ROOM = "room-report-1"
REPLY = "Hi there! How can I help you today?"


@pytest.fixture
def agent_logger() -> Iterator[tuple[logging.Logger, list[logging.LogRecord]]]:
    """The user's own logger, at INFO as an agent would configure it; records kept."""
    log = logging.getLogger("my_agent")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    yield log, seen
    log.removeHandler(handler)
    log.setLevel(old)


def _wait_for(path: Path) -> None:
    for _ in range(100):
        if path.exists():
            return
        time.sleep(0.05)


def test_report_as_log_records_span_event_json_and_callback(
    tmp_path: Path, agent_logger: tuple[logging.Logger, list[logging.LogRecord]]
) -> None:
    log, seen = agent_logger
    reports: list[dict[str, Any]] = []

    def who(session: Any) -> None:
        set_call_attributes(session, user_id="caller-9")

        def on_item(ev: Any) -> None:  # the user's own handler, logging during the turn
            if ev.item.type == "message" and ev.item.role == "assistant":
                log.info("agent replied", extra={"lk.pii.reply": ev.item.text_content, "turn.kind": "text"})

        session.on("conversation_item_added", on_item)

    with OtlpReceiver() as backend:
        t = setup_tracing(
            "otlp", endpoint=backend.url, logs="otlp", report_dir=tmp_path, on_report=reports.append,
            content="report",
        )  # fmt: skip
        asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, room_name=ROOM,
                                        before_start=who))  # fmt: skip
        assert t.force_flush()
        spans = [s for _, s in backend.spans()]
        records = backend.logs()

    (session_span,) = [s for s in spans if s.name == "agent_session"]
    trace_id = session_span.trace_id.hex()

    # the report as an OTLP log record tied to the call's trace and agent_session span
    (report,) = [r for _, r in records if r.event_name == "voice_agent.session.report"]
    assert report.trace_id.hex() == trace_id
    assert report.span_id == session_span.span_id
    body = json.loads(report.body.string_value)
    assert body["trace_id"] == trace_id
    assert body["session_id"] == ROOM and body["user_id"] == "caller-9"
    assert body["room"] == ROOM and body["job_id"] == "job-offline"
    assert body["close_reason"] == "CR_USER_INITIATED"
    assert body["agent_turns"] == 1
    assert [u["type"] for u in body["usage"]] == ["llm_usage", "tts_usage"]
    assert [(x["role"], x["turn_id"] is not None) for x in body["turns"]] == [
        ("user", True), ("assistant", True)
    ]  # fmt: skip
    assert "chat_history" not in body and REPLY not in report.body.string_value  # logs: no content
    # the agent's row carries its turn's budget, the numbers on its agent_turn span
    (turn_span,) = [s for s in spans if s.name == "agent_turn"]
    on_span = attrs(turn_span.attributes)
    (budget,) = body["turn_budgets"]
    assert body["turns"][1]["budget"] == budget and "budget" not in body["turns"][0]
    assert budget["input"] == "text" and budget["turn_id"] == body["turns"][1]["turn_id"]
    assert budget["total"] == on_span["voice_agent.turn.budget.total"]
    assert budget["parts"] == {k.rsplit(".", 1)[1]: v for k, v in on_span.items()
                               if k.startswith("voice_agent.turn.budget.") and k.count(".") == 3
                               and isinstance(v, float) and not k.endswith((".total", ".slo"))}  # fmt: skip
    assert [p for p, _ in budget["timeline"]] == list(on_span["voice_agent.turn.budget.timeline.parts"])
    assert sum(s for _, s in budget["timeline"]) == pytest.approx(budget["total"], abs=1e-9)
    assert attrs(report.attributes)["session_id"] == ROOM

    # and as a span event on agent_session (this destination takes no content)
    (event,) = [e for e in session_span.events if e.name == "voice_agent.session.report"]
    event_attrs = attrs(event.attributes)
    assert json.loads(event_attrs["voice_agent.session.report"])["trace_id"] == trace_id
    assert "voice_agent.pii.session.report" not in event_attrs

    # JSON file and callback: the "report" destination takes content
    path = tmp_path / f"{ROOM}-{trace_id}.json"
    _wait_for(path)
    written = json.loads(path.read_text())
    assert written["trace_id"] == trace_id
    assert [x["text"] for x in written["transcript"]] == ["hello", REPLY]
    assert written["chat_history"]["items"][-1]["content"] == [REPLY]
    assert reports == [written]

    # the user's log line during the turn carries that turn's trace and span ids
    (turn,) = [s for s in spans if s.name == "agent_turn"]
    (line,) = [r for _, r in records if r.body.string_value == "agent replied"]
    assert line.trace_id == turn.trace_id and line.span_id == turn.span_id
    line_attrs = attrs(line.attributes)  # the logs destination takes no content
    assert line_attrs["turn.kind"] == "text" and "lk.pii.reply" not in line_attrs
    (py_record,) = [r for r in seen if r.getMessage() == "agent replied"]
    assert py_record.otelTraceID == turn.trace_id.hex()  # type: ignore[attr-defined]
    assert py_record.otelSpanID == turn.span_id.hex()  # type: ignore[attr-defined]
    assert t.export_failures == {"traces": 0, "metrics": 0}


def test_logs_otlp_to_langfuse_needs_a_logs_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"):
        setup_tracing("langfuse", logs="otlp")


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("OTEL_LIVEKIT_CONTENT", "langfuse,jaeger", "OTEL_LIVEKIT_CONTENT"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe",
         "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
        ("OTEL_LIVEKIT_ALLOW_PII", "perhaps", "OTEL_LIVEKIT_ALLOW_PII"),
        ("OTEL_LIVEKIT_LOGS", "files", "OTEL_LIVEKIT_LOGS"),
    ],
)  # fmt: skip
def test_bad_content_settings_fail_at_setup_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=named):
        setup_tracing("console")


def _report_events(
    monkeypatch: pytest.MonkeyPatch, *contents: str | None
) -> list[tuple[dict[str, Any], int]]:
    """For each content setting, one call: the report event's attributes on its exported
    ``agent_session`` span, and how many times the report serialised LiveKit's chat history
    (LiveKit's own LLM spans serialise it too, for their content)."""
    from livekit.agents.llm import ChatContext

    serialised: list[int] = []
    to_dict = ChatContext.to_dict

    def counted(self: ChatContext, *args: Any, **kwargs: Any) -> Any:
        if any(f.filename.endswith(os.path.join("sessions", "report.py")) for f in traceback.extract_stack()):
            serialised.append(1)
        return to_dict(self, *args, **kwargs)

    monkeypatch.setattr(ChatContext, "to_dict", counted)  # a spy on LiveKit, ours unchanged
    out = []
    with OtlpReceiver() as backend:
        for content in contents:
            reset_otel_globals()
            serialised.clear()
            t = setup_tracing("otlp", endpoint=backend.url, content=content)
            asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, room_name=ROOM))
            assert t.force_flush()
            count = len(serialised)
            (session_span,) = [s for _, s in backend.spans() if s.name == "agent_session"]
            backend.requests.clear()
            (event,) = [e for e in session_span.events if e.name == "voice_agent.session.report"]
            out.append((attrs(event.attributes), count))
        reset_otel_globals()  # the last one shut down while its backend still answers
    return out


def test_the_span_event_carries_content_only_for_a_destination_that_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (with_content, serialised), (without, serialised_without) = _report_events(monkeypatch, "otlp", None)
    full = json.loads(with_content["voice_agent.pii.session.report"])
    bare = json.loads(with_content["voice_agent.session.report"])
    assert full["chat_history"]["items"][-1]["content"] == [REPLY]
    assert [x["text"] for x in full["transcript"]] == ["hello", REPLY]
    assert REPLY not in with_content["voice_agent.session.report"]
    assert serialised == 1
    # the report without content is the same whether or not content was made beside it
    assert "voice_agent.pii.session.report" not in without
    bare_alone = json.loads(without["voice_agent.session.report"])
    assert list(bare_alone) == list(bare)  # the same keys in the same order
    assert [e["type"] for e in bare_alone["events"]] == [e["type"] for e in bare["events"]]
    assert [e["type"] for e in bare["events"]] == [e["type"] for e in full["events"]]
    assert "metrics_collected" not in {e["type"] for e in bare_alone["events"]}
    assert [(x["role"], x["turn_id"] is not None) for x in bare_alone["turns"]] == [
        ("user", True), ("assistant", True)
    ]  # fmt: skip
    assert bare_alone["options"] == bare["options"] and bare_alone["session_id"] == ROOM
    # and nobody asked for content: LiveKit's chat history was never serialised at close
    assert serialised_without == 0
