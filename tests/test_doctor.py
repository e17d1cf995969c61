"""``otel-livekit doctor`` against real endpoints: Phoenix (200), nginx Basic auth (401),
a path that does not exist (404), a closed port, a silent port and a TLS mismatch — the
right diagnosis and exit code each time, and no secret in the output."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import LANGFUSE_PUBLIC, LANGFUSE_SECRET
from servers import NginxBasicAuth, PhoenixServer, free_port

from otel_livekit.cli import main
from otel_livekit.cli.doctor import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_OTHER,
    EXIT_TIMEOUT,
    EXIT_TLS,
    EXIT_UNREACHABLE,
)

WRONG_SECRET = "sk-lf-wrong-secret-never-printed"


def doctor(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--timeout", "2", *args], env=env)


def assert_no_secret(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in output
        assert base64.b64encode(secret.encode()).decode()[:12] not in output


def test_phoenix_answers_200_and_the_test_span_is_stored(phoenix: PhoenixServer) -> None:
    result = doctor(
        {"PHOENIX_COLLECTOR_ENDPOINT": phoenix.base_url, "PHOENIX_PROJECT_NAME": "doctor-check"},
        "--backend", "phoenix",
    )  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    assert f"traces   {phoenix.traces_url}  (from the traces settings above" in result.output
    assert "PHOENIX_COLLECTOR_ENDPOINT" in result.output and "(env)" in result.output
    assert "ok   traces: HTTP 200: accepted" in result.output
    assert "metrics  not exported by phoenix" in result.output
    spans = phoenix.spans("doctor-check", wait_for=1)
    assert [s["name"] for s in spans] == ["otel-livekit doctor"]


def test_wrong_langfuse_keys_get_401_and_no_secret_is_printed(langfuse_front: NginxBasicAuth) -> None:
    env = {
        "LANGFUSE_HOST": langfuse_front.base_url,
        "LANGFUSE_PUBLIC_KEY": LANGFUSE_PUBLIC,
        "LANGFUSE_SECRET_KEY": WRONG_SECRET,
    }
    result = doctor(env)
    assert result.exit_code == EXIT_AUTH, result.output
    inferred = "(inferred: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are set)"
    assert f"backend{' ' * 33} langfuse  {inferred}" in result.output
    assert "FAIL traces: HTTP 401: credentials rejected" in result.output
    assert f"LANGFUSE_SECRET_KEY{' ' * 21} <{len(WRONG_SECRET)} chars>  (env)" in result.output
    assert "headers: authorization, x-langfuse-ingestion-version" in result.output
    assert_no_secret(result.output, WRONG_SECRET, LANGFUSE_PUBLIC, f"{LANGFUSE_PUBLIC}:{WRONG_SECRET}")


def test_right_langfuse_keys_pass(langfuse_front: NginxBasicAuth) -> None:
    env = {
        "LANGFUSE_HOST": langfuse_front.base_url,
        "LANGFUSE_PUBLIC_KEY": LANGFUSE_PUBLIC,
        "LANGFUSE_SECRET_KEY": LANGFUSE_SECRET,
    }
    result = doctor(env)
    assert result.exit_code == EXIT_OK, result.output
    assert "ok   traces: HTTP 200: accepted" in result.output
    assert_no_secret(result.output, LANGFUSE_SECRET, f"{LANGFUSE_PUBLIC}:{LANGFUSE_SECRET}")


def test_otlp_endpoint_at_a_host_without_that_path_is_a_404(langfuse_front: NginxBasicAuth) -> None:
    # the OTLP base pointed at the Langfuse host instead of {host}/api/public/otel
    result = doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": langfuse_front.base_url})
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "(inferred: OTEL_EXPORTER_OTLP_ENDPOINT is set)" in result.output
    assert f"traces   {langfuse_front.base_url}/v1/traces  (env OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces" in (
        result.output
    )
    assert "FAIL traces: HTTP 404: no such path" in result.output


def test_metrics_to_phoenix_which_takes_none_is_a_path_error(phoenix: PhoenixServer) -> None:
    result = doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.base_url})
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "ok   traces: HTTP 200: accepted" in result.output
    assert "FAIL metrics: HTTP 405: this path takes no OTLP POST" in result.output


def test_closed_port_is_connection_refused_and_header_values_stay_hidden() -> None:
    port = free_port()  # nothing listens there
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://user:pw-in-url@127.0.0.1:{port}/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20tok-super-secret",
    }
    result = doctor(env, "--backend", "otlp")
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert "FAIL traces: connection refused — nothing listens there" in result.output
    assert (
        f"traces   http://***@127.0.0.1:{port}/v1/traces  (env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; "
        "headers: authorization; timeout 2 s; compression none)" in result.output
    )
    assert_no_secret(result.output, "tok-super-secret", "pw-in-url")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes the handshake but no one ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_silent_port_is_a_timeout(silent_port: int) -> None:
    result = doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{silent_port}"}, "--timeout", "0.5")
    assert result.exit_code == EXIT_TIMEOUT, result.output
    assert "FAIL traces: no answer within 0.5 s" in result.output


def test_https_to_a_plain_http_port_is_a_tls_error(phoenix: PhoenixServer) -> None:
    env = {"PHOENIX_COLLECTOR_ENDPOINT": f"https://127.0.0.1:{phoenix.port}"}
    result = doctor(env, "--backend", "phoenix")
    assert result.exit_code == EXIT_TLS, result.output
    assert "FAIL traces: TLS error" in result.output


def test_langfuse_host_without_scheme_is_named_with_its_fix() -> None:
    env = {"LANGFUSE_HOST": "cloud.langfuse.com", "LANGFUSE_PUBLIC_KEY": "pk"}
    env["LANGFUSE_SECRET_KEY"] = WRONG_SECRET
    result = doctor(env)
    assert result.exit_code == EXIT_CONFIG, result.output
    fix = "warning: LANGFUSE_HOST='cloud.langfuse.com' has no scheme: set it to 'https://cloud.langfuse.com'"
    assert fix in result.output
    assert_no_secret(result.output, WRONG_SECRET)


def test_sdk_disabled_is_warned_and_a_missing_multiproc_dir_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    env = {"OTEL_SDK_DISABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(missing)}
    result = doctor(env, "--backend", "none")
    assert result.exit_code == EXIT_OK, result.output
    assert "warning: OTEL_SDK_DISABLED is set: setup_tracing() installs nothing" in result.output
    assert f"prometheus                               multiprocess files in {missing}" in result.output
    assert missing.is_dir()


SECRET_HEADER = "Bearer s3cr3t-doctor-token"


@pytest.mark.parametrize(("variable", "value"), [
    ("OTEL_LIVEKIT_LOGS", "otel"),
    ("OTEL_LIVEKIT_FLUSH_TIMEOUT", "two"),
    ("OTEL_LIVEKIT_SPOOL_MAX_BYTES", "64MB"),
    ("OTEL_LIVEKIT_PROMETHEUS_PORT", "abc"),
    ("OTEL_LIVEKIT_CONTENT", "langfsue"),
    ("PROMETHEUS_MULTIPROC_DIR", "{file}/metrics"),
    ("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization: {SECRET_HEADER}"),
    ("OTEL_LIVEKIT_STRICT", "maybe"),
])  # fmt: skip
def test_each_bad_setting_fails_doctor_naming_its_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    """The values a call would otherwise meet first in a job: doctor resolves the same
    configuration as setup_tracing() and exits 2 naming the variable."""
    (tmp_path / "file").write_text("")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", "OTEL_LIVEKIT_SPOOL": "false",
           variable: value.format(file=tmp_path / "file")}  # fmt: skip
    result = doctor(env)
    assert result.exit_code == EXIT_CONFIG, result.output
    failures = [line for line in result.output.splitlines() if line.startswith("FAIL configuration: ")]
    assert len(failures) == 1 and failures[0].startswith(f"FAIL configuration: {variable}"), result.output
    assert_no_secret(result.output, SECRET_HEADER, "s3cr3t")


def test_doctor_prints_each_value_with_its_source_and_the_content_policy() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
           "OTEL_LIVEKIT_SPOOL": "false", "OTEL_LIVEKIT_FLUSH_TIMEOUT": "3.5",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%20def"}  # fmt: skip
    result = doctor(env)
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    lines = result.output.splitlines()
    assert "OTEL_LIVEKIT_FLUSH_TIMEOUT               '3.5'  (env)" in lines
    assert "OTEL_EXPORTER_OTLP_HEADERS               x-api-key= <9 chars>  (env)" in lines
    assert "flush deadline                           3.5 s" in lines
    assert any(line.startswith("content") and "goes to no destination (default" in line for line in lines)
    assert "outage spool                             off" in lines
    assert "abc def" not in result.output and "abc%20def" not in result.output


@pytest.mark.parametrize("where", ["a directory", "/etc/passwd/x", "writable"])
def test_file_backend_path_is_really_opened_for_append(tmp_path: Path, where: str) -> None:
    """As root, ``os.access`` says yes to almost anything; opening the file is the answer."""
    path = {"a directory": str(tmp_path), "/etc/passwd/x": "/etc/passwd/x",
            "writable": str(tmp_path / "out" / "traces.jsonl")}[where]  # fmt: skip
    result = doctor({"OTEL_LIVEKIT_FILE_PATH": path, "OTEL_LIVEKIT_SPOOL": "false"}, "--backend", "file")
    if where == "writable":
        assert result.exit_code == EXIT_OK, result.output
        assert f"traces   file {path}: opens for append" in result.output
        return
    assert result.exit_code == EXIT_OTHER, result.output
    reason = "Is a directory" if where == "a directory" else "File exists"  # mkdir of /etc/passwd
    assert f"FAIL traces: file not writable ({reason})" in result.output
