"""The per-call features in a real LiveKit job (the example entrypoint, ``console --text``):
one trace for the whole job, the call's ids on every span, the report tied to it."""

from __future__ import annotations

import ctypes.util
import json
from collections import Counter
from pathlib import Path

from otlp_receiver import OtlpReceiver, attrs
from servers import require_or_skip
from test_job_process import Console


def test_a_real_job_is_one_trace_with_ids_on_every_span_and_its_report(tmp_path: Path) -> None:
    require_or_skip("libportaudio2 (LiveKit's console needs it)",
                    ctypes.util.find_library("portaudio") is not None)  # fmt: skip
    with OtlpReceiver() as rx:
        console = Console({
            "OTEL_LIVEKIT_BACKEND": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            "OTEL_LIVEKIT_LOGS": "otlp",
            "OTEL_LIVEKIT_REPORT_DIR": str(tmp_path),
            "OTEL_LIVEKIT_USER_ID": "console-user",
        })  # fmt: skip
        console.say_hello_and_quit()
        spans = [s for _, s in rx.spans()]
        records = [r for _, r in rx.logs()]

    names = Counter(s.name for s in spans)
    assert names["agent_session"] == 1 and names["job_shutdown"] == 1
    # job_entrypoint predates the provider (set up inside it): job_shutdown and its children
    # form a second trace, linked to the call's agent_session span
    (session_span,) = [s for s in spans if s.name == "agent_session"]
    (shutdown,) = [s for s in spans if s.name == "job_shutdown"]
    trace_id = session_span.trace_id
    # the call's spans are in its trace; under load LiveKit may add a root span of its own
    # (event_loop_blocked …) in a trace of its own: not the product's, so not asserted
    call = {"agent_session", "agent_turn", "user_turn", "llm_request", "tts_request", "job_shutdown"}
    assert {s.trace_id for s in spans if s.name in call} == {trace_id, shutdown.trace_id}
    assert {"agent_turn", "llm_request"} <= {s.name for s in spans if s.trace_id == trace_id}
    assert [(link.trace_id, link.span_id) for link in shutdown.links] == [(trace_id, session_span.span_id)]
    assert sorted(s.name for s in spans if s.trace_id == shutdown.trace_id) == [
        "job_shutdown", "room_disconnect", "session_end_upload", "shutdown_callback"
    ]  # fmt: skip
    room = attrs(session_span.attributes)["session.id"]
    assert room  # the room's name
    for s in spans:
        a = attrs(s.attributes)
        assert a.get("session.id") == room, s.name
        assert a.get("user.id") == "console-user", s.name
    (report,) = [r for r in records if r.event_name == "voice_agent.session.report"]
    assert report.trace_id == trace_id and report.span_id == session_span.span_id
    (path,) = tmp_path.glob("*.json")
    written = json.loads(path.read_text())
    assert written["trace_id"] == trace_id.hex() and written["session_id"] == room
    assert "transcript" not in written  # the report destination took no content
