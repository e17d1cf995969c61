"""A bad setting inside a real LiveKit job process: the call goes on (lenient, the default
in a job), the problem is logged once at ERROR naming its variable, and the secret in a
malformed header never reaches a log. With OTEL_LIVEKIT_STRICT=true the same setting fails
the job's setup, as asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import job_entry
import pytest
from livekit_jobs import launch_job
from otlp_receiver import OtlpReceiver

SECRET = "Bearer s3cr3t-t0ken-value"


def _bad_values(tmp: Path) -> list[tuple[str, str]]:
    not_a_dir = tmp / "a-file"
    not_a_dir.write_text("")
    return [
        ("OTEL_LIVEKIT_LOGS", "otel"),
        ("OTEL_LIVEKIT_FLUSH_TIMEOUT", "two"),
        ("OTEL_LIVEKIT_SPOOL_MAX_BYTES", "64MB"),
        ("OTEL_LIVEKIT_PROMETHEUS_PORT", "abc"),
        ("OTEL_LIVEKIT_CONTENT", "langfsue"),
        ("PROMETHEUS_MULTIPROC_DIR", str(not_a_dir / "metrics")),  # root writes anywhere else
        ("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization: {SECRET}"),
    ]


BAD = [
    "OTEL_LIVEKIT_LOGS", "OTEL_LIVEKIT_FLUSH_TIMEOUT", "OTEL_LIVEKIT_SPOOL_MAX_BYTES",
    "OTEL_LIVEKIT_PROMETHEUS_PORT", "OTEL_LIVEKIT_CONTENT", "PROMETHEUS_MULTIPROC_DIR",
    "OTEL_EXPORTER_OTLP_HEADERS",
]  # fmt: skip


async def _run(settings: dict[str, str]) -> int | None:
    executor = await launch_job(job_entry.prewarm, job_entry.entrypoint, settings, "job-config-test")
    await asyncio.wait_for(executor.join(), 60)
    return executor.exitcode


def _job(tmp_path: Path, rx: OtlpReceiver, extra: dict[str, str]) -> tuple[list[str], bool]:
    log, answered = tmp_path / "job.log", tmp_path / "answered"
    settings = {
        "OTEL_LIVEKIT_BACKEND": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_LIVEKIT_SPOOL": "false",
        "TEST_LOG_FILE": str(log),
        "TEST_ANSWERED_FILE": str(answered),
        **extra,
    }
    asyncio.run(_run(settings))
    return log.read_text().splitlines() if log.exists() else [], answered.exists()


@pytest.mark.parametrize("variable", BAD)
def test_a_bad_setting_in_a_job_is_logged_once_and_the_call_goes_on(tmp_path: Path, variable: str) -> None:
    value = dict(_bad_values(tmp_path))[variable]
    with OtlpReceiver() as rx:
        lines, answered = _job(tmp_path, rx, {variable: value})
        spans = {s.name for _, s in rx.spans()}
        sent_headers = [r.headers for r in rx.requests]
    assert answered, lines
    assert {"agent_session", "agent_turn", "llm_request"} <= spans
    errors = [line for line in lines if line.startswith("ERROR otel_livekit")]
    assert len(errors) == 1 and variable in errors[0], errors
    assert not any("setup failed" in line or "Traceback" in line for line in lines), lines
    assert SECRET not in "\n".join(lines) and "s3cr3t" not in "\n".join(lines)
    if variable == "OTEL_EXPORTER_OTLP_HEADERS":
        assert "Authorization: <" in errors[0]  # the name says what is wrong; the value is masked
        assert all("authorization" not in h for h in sent_headers)  # the entry goes, not the call


def test_strict_in_a_job_fails_the_setup_as_asked(tmp_path: Path) -> None:
    with OtlpReceiver() as rx:
        lines, answered = _job(tmp_path, rx, {"OTEL_LIVEKIT_LOGS": "otel", "OTEL_LIVEKIT_STRICT": "true"})
    assert not answered
    text = "\n".join(lines)
    assert "ConfigurationError" in text and "OTEL_LIVEKIT_LOGS" in text, text[-3000:]


@pytest.mark.parametrize(("settings", "named"), [
    ({"OTEL_LIVEKIT_BACKEND": "langfuse", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}, "LANGFUSE_PUBLIC_KEY"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "127.0.0.1:4318/v1/traces"},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
])  # fmt: skip
def test_a_destination_that_cannot_work_is_switched_off_and_metrics_go_on(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    """Missing Langfuse keys, an endpoint without a scheme: no trace export (never a
    fallback host), one ERROR saying so, the call answered, the metrics delivered."""
    with OtlpReceiver() as rx:
        metrics_to = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{rx.url}/v1/metrics"}
        lines, answered = _job(tmp_path, rx, {**settings, **metrics_to})
        spans = list(rx.spans())
        metrics = {m.name: m for _, m in rx.metrics()}
    assert answered, lines
    assert spans == []
    assert [p.as_int for p in metrics["voice_agent.sessions.started"].sum.data_points] == [1]
    errors = [line for line in lines if line.startswith("ERROR otel_livekit")]
    assert len(errors) == 1 and named in errors[0] and "trace export" in errors[0], errors
    assert "switched off (metrics and Prometheus keep working)" in errors[0]
