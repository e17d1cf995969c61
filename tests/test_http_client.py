"""The one HTTP client of the OTLP exports (export/delivery/http_client.py) keeps what the
exporters had through ``requests``: TLS with the CA and client certificate from the
``OTEL_EXPORTER_OTLP_*`` variables (or ``REQUESTS_CA_BUNDLE``), proxies from the
environment with their credentials and ``NO_PROXY``, and a reason a user can act on when
no answer came. Real TLS (certificates made by ``openssl``) and a real forwarding proxy."""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from otlp_receiver import OtlpReceiver
from pytest import MonkeyPatch

from otel_livekit import setup_tracing
from otel_livekit.export.delivery.http_client import HttpClient, failure_reason
from otel_livekit.export.destinations.transport import Transport

PROXY_PASSWORD = "pr0xy-p@ss-never-logged"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=otel-livekit test CA", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    return d


def _server_tls(pki: Path, client_certificate: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    if client_certificate:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.pem")
    return ctx


def _one_span(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, Any]:
    """setup_tracing to ``url`` (spool off: one export, its outcome read at once); one span."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    t = setup_tracing("otlp", endpoint=url, spool=False)
    with trace.get_tracer("test").start_as_current_span("call"):
        pass
    flushed = t.force_flush()
    (health,) = [h for h in t.health if h.signal == "traces"]
    t.shutdown(timeout=1.0)
    return {"flushed": flushed, "delivered": health.delivered, "error": health.last_error}


def test_https_with_the_ca_from_the_otlp_certificate_variable(pki: Path, monkeypatch: MonkeyPatch) -> None:
    with OtlpReceiver(tls=_server_tls(pki)) as rx:
        got = _one_span({"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki / "ca.pem")}, monkeypatch, rx.url)
        assert got == {"flushed": True, "delivered": 1, "error": None}
        assert [s.name for _, s in rx.spans()] == ["call"]


def test_a_signals_own_certificate_variable_is_for_that_signal(pki: Path, monkeypatch: MonkeyPatch) -> None:
    """Traces trust the CA; metrics, with no CA of theirs, do not: the flush says so."""
    with OtlpReceiver(tls=_server_tls(pki)) as rx:
        got = _one_span({"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(pki / "ca.pem")}, monkeypatch, rx.url)
        assert got == {"flushed": False, "delivered": 1, "error": None}
        assert {r.path for r in rx.requests} == {"/v1/traces"}


def test_https_with_an_unknown_ca_is_a_tls_error(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver(tls=_server_tls(pki)) as rx:
        got = _one_span({}, monkeypatch, rx.url)
        assert got == {"flushed": False, "delivered": 0, "error": "TLS error"}
        assert rx.spans() == []


def test_requests_ca_bundle_is_trusted_as_requests_did(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver(tls=_server_tls(pki)) as rx:
        got = _one_span({"REQUESTS_CA_BUNDLE": str(pki / "ca.pem")}, monkeypatch, rx.url)
        assert got["delivered"] == 1


@pytest.mark.parametrize("with_certificate", [True, False], ids=["client-cert", "none"])
def test_mutual_tls_sends_the_client_certificate(
    pki: Path, monkeypatch: pytest.MonkeyPatch, with_certificate: bool
) -> None:
    env = {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki / "ca.pem")}
    if with_certificate:
        env |= {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(pki / "client.pem"),
                "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(pki / "client.key")}  # fmt: skip
    with OtlpReceiver(tls=_server_tls(pki, client_certificate=True)) as rx:
        got = _one_span(env, monkeypatch, rx.url)
        assert got["delivered"] == (1 if with_certificate else 0)
        assert len(rx.spans()) == got["delivered"]
        assert got["error"] == (None if with_certificate else "TLS error")


class ForwardingProxy:
    """A plain HTTP forward proxy: records each request's target and headers, relays it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = urlsplit(self.path)  # absolute-form, as a proxy receives it
                conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
                keep = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
                conn.request("POST", target.path, body=body, headers=keep)
                answer = conn.getresponse()
                answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    p = ForwardingProxy()
    yield p
    p.close()


def test_the_proxy_from_the_environment_carries_the_export(
    proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    env = {"HTTP_PROXY": f"http://agent:{PROXY_PASSWORD.replace('@', '%40')}@127.0.0.1:{proxy.port}"}
    with caplog.at_level(logging.DEBUG), OtlpReceiver() as rx:
        got = _one_span(env, monkeypatch, rx.url)
        assert got == {"flushed": True, "delivered": 1, "error": None}
        assert [s.name for _, s in rx.spans()] == ["call"]
    ((target, headers),) = [(t, h) for t, h in proxy.seen if t.endswith("/v1/traces")]
    assert target == f"{rx.url}/v1/traces"
    assert {t for t, _ in proxy.seen} == {f"{rx.url}/v1/traces", f"{rx.url}/v1/metrics"}
    credentials = base64.b64encode(f"agent:{PROXY_PASSWORD}".encode()).decode()
    assert headers["proxy-authorization"] == f"Basic {credentials}"
    assert PROXY_PASSWORD not in caplog.text


def test_no_proxy_bypasses_it(proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"HTTP_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "127.0.0.1"}
    with OtlpReceiver() as rx:
        assert _one_span(env, monkeypatch, rx.url)["delivered"] == 1
    assert proxy.seen == []


def test_a_proxy_that_cannot_be_used_is_said_once_without_its_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SOCKS needs PySocks (not installed here), as with requests: named, then posted directly."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    env = {"HTTP_PROXY": f"socks5://agent:{PROXY_PASSWORD}@127.0.0.1:1"}
    with caplog.at_level(logging.WARNING, "otel_livekit"), OtlpReceiver() as rx:
        assert _one_span(env, monkeypatch, rx.url)["delivered"] == 1
    lines = [r.getMessage() for r in caplog.records if "proxy" in r.getMessage()]
    assert len(lines) == 2  # one per client: traces, metrics
    assert all(f"{rx.url}" in line and "posting without it" in line for line in lines)
    assert PROXY_PASSWORD not in caplog.text


def _silent_port() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s, s.getsockname()[1]


def test_each_failure_has_a_reason_a_user_can_act_on() -> None:
    seen: list[str | None] = []

    def post(url: str, timeout: float = 2.0) -> str:
        transport = Transport("traces", url, timeout=timeout)
        with pytest.raises(Exception) as caught:
            HttpClient(transport, seen.append).post(url, b"", {}, timeout)
        return failure_reason(caught.value)

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert post(f"http://127.0.0.1:{port}/v1/traces") == "connection refused"
    silent, silent_port = _silent_port()
    try:
        assert post(f"http://127.0.0.1:{silent_port}/v1/traces", timeout=0.3) == "timeout (no answer)"
    finally:
        silent.close()
    assert post("http://no-such-host.invalid/v1/traces") == "host name does not resolve"
    assert seen == ["connection refused", "timeout (no answer)", "host name does not resolve"]
