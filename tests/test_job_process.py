"""The example entrypoint in a real LiveKit JobContext (``console --text``, no server):
setup_tracing() inside the job, spans exported, metrics flushed at job shutdown."""

from __future__ import annotations

import ctypes.util
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from otlp_receiver import OtlpReceiver, attrs
from servers import require_or_skip

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent.py"


class Console:
    """The agent's terminal, driven like a person would: read, type, Ctrl-C."""

    def __init__(self, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the agent
            os.environ.update(env)
            os.execv(sys.executable, [sys.executable, str(EXAMPLE), "console", "--text"])
        self.out = b""

    def read_until(self, text: bytes, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.out:
                return True
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    return text in self.out
        return text in self.out

    def type(self, data: bytes) -> None:
        for byte in data:  # key by key, as the prompt reads them
            os.write(self.fd, bytes([byte]))
            self.read_until(b"\x00never", 0.05)

    def say_hello_and_quit(self) -> None:
        """One turn, as a person would: wait for the prompt, type hello, read the agent's
        reply, Ctrl-C, and the agent exits (its job's shutdown runs)."""
        assert self.read_until(b"for shortcuts", 30), self.out[-2000:]
        self.read_until(b"\x00never", 1.0)  # let the session finish starting
        self.type(b"hello\r")
        assert self.read_until(b"Hi there", 15), self.out[-2000:]
        self.type(b"\x03")
        assert self.wait(30) is not None, self.out[-3000:]

    def wait(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.read_until(b"\x00never", 0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return status
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


def test_example_agent_in_a_job_exports_and_flushes_at_shutdown() -> None:
    require_or_skip("libportaudio2 (LiveKit's console needs it)",
                    ctypes.util.find_library("portaudio") is not None)  # fmt: skip
    with OtlpReceiver() as rx:
        env = {
            "OTEL_LIVEKIT_BACKEND": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the shutdown flush exports metrics
            "OTEL_SERVICE_NAME": "example-agent",
        }
        console = Console(env)
        console.say_hello_and_quit()

        spans = {s.name: (res, s) for res, s in rx.spans()}
        assert {"agent_session", "agent_turn", "llm_request", "job_shutdown"} <= set(spans)
        res, llm = spans["llm_request"]
        assert res["service.name"] == "example-agent"
        assert attrs(llm.attributes)["voice_agent.llm.ttft"] > 0
        metrics = {m.name: m for _, m in rx.metrics()}
        started = metrics["voice_agent.sessions.started"].sum.data_points
        assert [p.as_int for p in started] == [1]
        ttft = metrics["gen_ai.client.operation.time_to_first_chunk"].histogram.data_points
        assert sum(p.count for p in ttft) == 1


def test_report_from_the_example_agents_trace_file(tmp_path: Path) -> None:
    """The report works on a real agent's file, not only the demo's: examples/agent.py in a
    real JobContext with the file backend, then ``otel-livekit report``."""
    require_or_skip("libportaudio2 (LiveKit's console needs it)",
                    ctypes.util.find_library("portaudio") is not None)  # fmt: skip
    trace_file = tmp_path / "agent.jsonl"
    env = {
        "OTEL_LIVEKIT_BACKEND": "file",
        "OTEL_LIVEKIT_FILE_PATH": str(trace_file),
        "OTEL_LIVEKIT_ALLOW_PII": "true",
        "OTEL_SERVICE_NAME": "example-agent",
    }
    console = Console(env)
    console.say_hello_and_quit()

    from otel_livekit.cli.report import write_report
    from otel_livekit.cli.tracefile import read

    data = read(trace_file)
    assert len(data.calls) == 1
    call = data.calls[0]
    assert call.service == "example-agent"
    said = [(t.user_text, t.agent_text) for t in call.turns]
    assert said == [("hello", "Hi there! How can I help you today?")]
    turn = call.turns[0]
    # console --text has no audio: no TTS, no turn budget on agent_turn; LiveKit's own
    # llm_node TTFT is what the report falls back to
    assert turn.llm_ttft == call.session.find("llm_node")[0].attrs["lk.response.ttft"]
    assert (turn.tts_ttfb, turn.e2e) == (None, None)
    assert (call.input_tokens, call.output_tokens) == (40, 8)  # the offline LLM's usage
    assert data.metrics["voice_agent.sessions.started"] == 1
    page = write_report(trace_file).read_text()
    assert "Hi there! How can I help you today?" in page
    assert f'data-value="{turn.llm_ttft!r}"' in page
