"""Real backends for integration tests: Arize Phoenix, an nginx Basic-auth front and
Prometheus.

Why: the exporters must be tested against servers that really decode OTLP and really
enforce auth, not against mocks. Phoenix is a trace store that accepts OTLP/HTTP
protobuf at ``/v1/traces`` and can be queried back over REST; nginx in front of it with
``auth_basic`` stands in for Langfuse's ``/api/public/otel/v1/traces`` endpoint (a real
Langfuse needs Postgres, ClickHouse, Redis and S3, none of which run here).

Install both with ``scripts/install-test-servers.sh``. Everything binds 127.0.0.1 on
OS-chosen ports, keeps its files in a temporary directory and is stopped on exit, so
these context managers are safe to use from module- or session-scoped pytest fixtures.

Shape of a span dict returned by :meth:`PhoenixServer.spans` (Phoenix 20.26,
``GET /v1/projects/{project}/spans``)::

    {
      "id": "U3BhbjoxNg==",                 # Phoenix's own global id (not the OTel id)
      "name": "smoke-span",
      "context": {"trace_id": "<32 hex>", "span_id": "<16 hex>"},
      "parent_id": "<16 hex>" | None,       # None for a root span
      "span_kind": "UNKNOWN",               # OpenInference kind (LLM, TOOL, ...) from
                                            # the attribute openinference.span.kind, or
                                            # inferred (gen_ai.* attrs -> "LLM"). NOT
                                            # the OTel SpanKind: Phoenix drops that.
      "start_time": "2025-01-01T00:00:00.123456+00:00",
      "end_time": "...",
      "status_code": "UNSET" | "OK" | "ERROR",
      "status_message": "",
      "attributes": {"smoke.attr": "hello", "gen_ai.usage.input_tokens": 3, ...},
                                            # FLAT dotted keys; openinference.span.kind
                                            # is popped out into span_kind; resource
                                            # attributes are NOT included
      "events": [{"name": "...", "timestamp": "...", "attributes": {...}}],
    }
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = "run scripts/install-test-servers.sh to install the test servers"

# urllib would otherwise honour *_proxy variables; a proxy cannot reach our loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tools_dir() -> Path:
    """Where install-test-servers.sh puts heavy tools (kept out of the package venv)."""
    return Path(os.environ.get("OTEL_LIVEKIT_TOOLS_DIR") or REPO_ROOT / ".cache" / "tools")


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port on ``host`` (fixed ports may be busy in CI)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def phoenix_binary() -> str | None:
    """Path of the ``phoenix`` CLI: ``$OTEL_LIVEKIT_PHOENIX``, else the tools venv."""
    explicit = os.environ.get("OTEL_LIVEKIT_PHOENIX")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    candidate = tools_dir() / "phoenix" / "bin" / "phoenix"
    return str(candidate) if os.access(candidate, os.X_OK) else None


def nginx_binary() -> str | None:
    """Path of nginx; Debian puts it in /usr/sbin, which is not always on PATH."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def require_or_skip(what: str, available: bool) -> None:
    """Skip if a backend is missing locally; fail in CI so gaps never pass silently."""
    if available:
        return
    message = f"{what} is not available: {INSTALL_HINT}"
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def basic_auth_header(username: str, password: str) -> str:
    """``Authorization`` header value for HTTP Basic auth (what Langfuse expects)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def http_get_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``url`` without any proxy and decode its JSON object body."""
    with _OPENER.open(url, timeout=timeout) as response:
        body = json.loads(response.read().decode("utf-8"))
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object from {url}, got {type(body).__name__}")
    return body


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate the process group we started (SIGTERM, then SIGKILL)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


class _WorkDir:
    """A caller-given directory (kept) or a fresh temporary one (removed on exit)."""

    def __init__(self, workdir: Path | None, prefix: str) -> None:
        self._owned = workdir is None
        self.path = Path(tempfile.mkdtemp(prefix=prefix)) if workdir is None else workdir
        self.path.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


class _ServerProcess:
    """A server subprocess and its work directory, both gone on exit."""

    def __init__(self, what: str, binary: str | None, workdir: Path | None, startup_timeout: float) -> None:
        """``binary``: the one found (or given); none fails with the install hint."""
        if binary is None:
            raise RuntimeError(f"{what} not found: {INSTALL_HINT}")
        self.binary: str = binary
        self.startup_timeout = startup_timeout
        self.port = 0
        self.log_path = Path(os.devnull)
        self._what = what
        self._workdir_prefix = f"otel-livekit-{what}-"
        self._workdir_arg = workdir
        self._workdir: _WorkDir | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _wait_http_ok(self, url: str, poll: float) -> None:
        """Until ``url`` answers 200; fails with the log's tail if the server exits or the
        startup timeout passes."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = _log_tail(self.log_path)
                raise RuntimeError(f"{self._what} exited with code {code} during startup; log tail:\n{tail}")
            try:
                with _OPENER.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self._what} not ready after {self.startup_timeout:.0f}s; "
                    f"log tail:\n{_log_tail(self.log_path)}"
                )
            time.sleep(poll)

    def _open_workdir(self) -> Path:
        self._workdir = _WorkDir(self._workdir_arg, self._workdir_prefix)
        return self._workdir.path

    def _start(self, args: list[str], *, log: Path, cwd: Path, ready: Callable[[], None],
               env: dict[str, str] | None = None) -> None:  # fmt: skip
        """Start the server with its output in ``log``; stop it again if it never gets ready."""
        with open(log, "wb") as out:
            self._proc = subprocess.Popen(
                args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            ready()
        except BaseException:
            self._shutdown()
            raise

    def _shutdown(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc)
            self._proc = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()


class PhoenixServer(_ServerProcess):
    """Run ``phoenix serve`` on loopback with a throwaway SQLite store.

    Why: Phoenix stores OTLP spans and lets tests read them back, proving that what
    our exporters send is decoded by a real OTLP receiver. The project a span lands in
    comes from the resource attribute ``openinference.project.name`` (else "default").
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        workdir: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__("phoenix", binary or phoenix_binary(), workdir, startup_timeout)
        self.grpc_port = 0
        self.startup_seconds = 0.0

    @property
    def base_url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT`` (also the OTLP/HTTP base)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """Full OTLP/HTTP traces endpoint to give ``OTLPSpanExporter(endpoint=...)``."""
        return f"{self.base_url}/v1/traces"

    def __enter__(self) -> Self:
        workdir = self._open_workdir()
        self.log_path = workdir / "phoenix.log"
        self.port = free_port()
        # gRPC always binds every interface: make sure the port is free there too.
        self.grpc_port = free_port("0.0.0.0")
        while self.grpc_port == self.port:
            self.grpc_port = free_port("0.0.0.0")
        # Start from a clean environment: no inherited PHOENIX_*/OTEL_* settings
        # (a stray PHOENIX_SQL_DATABASE_URL or OTEL endpoint would change behaviour).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        env.update(
            {
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(self.port),
                "PHOENIX_GRPC_PORT": str(self.grpc_port),
                "PHOENIX_WORKING_DIR": str(workdir / "data"),
                # No telemetry, web fonts, WASM download or other internet access.
                "PHOENIX_TELEMETRY_ENABLED": "false",
                "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
                "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
                "PHOENIX_ENABLE_MCP_SERVER": "false",
                "PHOENIX_ENABLE_PROMETHEUS": "false",
                "PHOENIX_ENABLE_AUTH": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        started = time.monotonic()
        self._start([self.binary, "serve"], log=self.log_path, cwd=workdir,
                    ready=self._wait_ready, env=env)  # fmt: skip
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self) -> None:
        self._wait_http_ok(f"{self.base_url}/healthz", poll=0.25)

    def fetch_spans(self, project: str) -> list[dict[str, Any]]:
        """All spans in ``project`` now, in storage order ([] if no such project).

        Follows ``next_cursor`` pagination (``limit`` is capped at 1000 by the API).
        """
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        quoted = urllib.parse.quote(project, safe="")
        while True:
            params = {"limit": "1000", "sort": "id", "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            query = urllib.parse.urlencode(params)
            url = f"{self.base_url}/v1/projects/{quoted}/spans?{query}"
            try:
                body = http_get_json(url)
            except urllib.error.HTTPError as err:
                if err.code == 404:  # the project is created by its first span
                    return []
                raise
            spans.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return spans

    def spans(self, project: str, *, wait_for: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Poll until ``project`` holds ``wait_for`` or more spans and its count has stopped
        growing; return them all.

        Why poll: Phoenix inserts received spans asynchronously, batch by batch, so they
        show up shortly after the exporter returns — and a count reached mid-insert is not
        the whole call (on a busy machine the last batch lands a moment later). Raises
        ``TimeoutError`` naming what was seen if the count is not reached. Use
        ``wait_for=0`` to read without waiting.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.fetch_spans(project)
            if wait_for == 0:
                return found
            if len(found) >= wait_for:
                time.sleep(0.5)
                again = self.fetch_spans(project)
                if len(again) == len(found) or time.monotonic() > deadline:
                    return again
                continue
            if time.monotonic() > deadline:
                names = [s.get("name") for s in found]
                raise TimeoutError(
                    f"expected >= {wait_for} spans in Phoenix project {project!r} "
                    f"within {timeout}s, got {len(found)}: {names}"
                )
            time.sleep(0.2)

    def projects(self) -> list[str]:
        """Names of the projects Phoenix knows (handy to debug a wrong project name)."""
        body = http_get_json(f"{self.base_url}/v1/projects?limit=1000")
        return [str(p["name"]) for p in body["data"]]


def ssha_htpasswd_line(username: str, password: str) -> str:
    """An htpasswd line nginx accepts (``{SSHA}``, salted SHA-1), no htpasswd binary."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{username}:{{SSHA}}{base64.b64encode(digest + salt).decode('ascii')}"


class NginxBasicAuth(_ServerProcess):
    """nginx on loopback: Basic auth, then proxies Langfuse's OTLP path to upstream.

    Why: Langfuse authenticates OTLP with ``Authorization: Basic base64(pk:sk)`` at
    ``{host}/api/public/otel/v1/traces``; putting nginx with ``auth_basic`` in front of
    Phoenix reproduces that contract (401 on wrong keys, stored spans on right ones).
    """

    TRACES_PATH = "/api/public/otel/v1/traces"

    def __init__(
        self,
        upstream: str,
        username: str,
        password: str,
        *,
        binary: str | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__("nginx", binary or nginx_binary(), workdir, startup_timeout)
        self.upstream = upstream.rstrip("/")
        self.username = username
        self.password = password
        self.error_log = Path(os.devnull)
        self.access_log = Path(os.devnull)

    @property
    def base_url(self) -> str:
        """Langfuse-style host, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """Full OTLP endpoint, ``{base_url}/api/public/otel/v1/traces``."""
        return f"{self.base_url}{self.TRACES_PATH}"

    @property
    def auth_header(self) -> str:
        """The ``Authorization`` value that this front accepts."""
        return basic_auth_header(self.username, self.password)

    def _config(self, prefix: Path, htpasswd: Path) -> str:
        # Temp-path directives exist only for compiled-in modules; skip absent ones.
        build = subprocess.run([self.binary, "-V"], capture_output=True, text=True, check=False).stderr
        temp_paths = "\n".join(
            f"    {module}_temp_path {prefix / module};"
            for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            if f"--without-http_{module}_module" not in build
        )
        return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {self.error_log} info;

events {{
    worker_connections 64;
}}

http {{
    access_log {self.access_log};
{temp_paths}
    client_max_body_size 64m;

    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;

        location = {self.TRACES_PATH} {{
            auth_basic "langfuse";
            auth_basic_user_file {htpasswd};
            proxy_pass {self.upstream}/v1/traces;
            proxy_http_version 1.1;
            proxy_set_header Authorization "";
        }}

        location / {{
            return 404;
        }}
    }}
}}
"""

    def __enter__(self) -> Self:
        prefix = self._open_workdir()
        self.port = free_port()
        self.error_log = prefix / "error.log"
        self.access_log = prefix / "access.log"
        htpasswd = prefix / "htpasswd"
        htpasswd.write_text(ssha_htpasswd_line(self.username, self.password) + "\n")
        conf = prefix / "nginx.conf"
        conf.write_text(self._config(prefix, htpasswd))
        # -e: nginx opens its default error log before reading the config otherwise.
        self._start([self.binary, "-p", str(prefix), "-c", str(conf), "-e", str(self.error_log)],
                    log=prefix / "stderr.log", cwd=prefix,
                    ready=lambda: self._wait_ready(prefix))  # fmt: skip
        return self

    def _wait_ready(self, prefix: Path) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while not _port_open("127.0.0.1", self.port):
            code = self._proc.poll()
            if code is not None or time.monotonic() > deadline:
                state = f"exited with code {code}" if code is not None else "not listening"
                raise RuntimeError(
                    f"nginx {state}; stderr:\n{_log_tail(prefix / 'stderr.log')}\n"
                    f"error.log:\n{_log_tail(self.error_log)}"
                )
            time.sleep(0.05)


# --- Prometheus (the stack tests) ----------------------------------------------------


def prometheus_binary(name: str = "prometheus") -> str | None:
    """``prometheus`` or ``promtool``: ``$OTEL_LIVEKIT_PROMETHEUS_DIR/NAME``, else Debian's
    package unpacked by scripts/install-prometheus.sh under the tools dir (or this repo's
    .cache/tools), else PATH."""
    explicit = os.environ.get("OTEL_LIVEKIT_PROMETHEUS_DIR")
    candidates = [Path(explicit) / name] if explicit else []
    candidates += [
        tools_dir() / "prometheus" / "usr" / "bin" / name,
        REPO_ROOT / ".cache" / "tools" / "prometheus" / "usr" / "bin" / name,
    ]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


class ScrapeTarget:
    """One Prometheus scrape job: ``job`` becomes the series' ``job`` label (the agent's
    service name on the Collector path). Pluggable: an OTel SDK Prometheus reader served
    by prometheus_client, or the package's own /metrics endpoint."""

    def __init__(self, job: str, address: str, metrics_path: str = "/metrics") -> None:
        self.job = job
        self.address = address
        self.metrics_path = metrics_path


class PrometheusServer(_ServerProcess):
    """A real Prometheus on loopback scraping ``targets`` with ``rule_files`` loaded.

    Why: dashboards and rules must be proven on what a real Prometheus stores and computes
    (staleness, rate extrapolation, rule evaluation), not on exposition text. Rules are
    evaluated at the scrape interval, so a short interval gives rule output within seconds.
    """

    def __init__(
        self,
        targets: list[ScrapeTarget],
        rule_files: tuple[Path, ...] | list[Path] = (),
        scrape_interval: str = "1s",
        *,
        binary: str | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__("prometheus", binary or prometheus_binary(), workdir, startup_timeout)
        self.targets = list(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        scrape = [
            {
                "job_name": t.job,
                "metrics_path": t.metrics_path,
                "static_configs": [{"targets": [t.address]}],
            }
            for t in self.targets
        ]
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": scrape,
        }
        return json.dumps(config, indent=2)  # JSON is YAML

    def __enter__(self) -> Self:
        workdir = self._open_workdir()
        config = workdir / "prometheus.yml"
        config.write_text(self._config())
        self.log_path = workdir / "prometheus.log"
        self.port = free_port()
        self._start(
            [self.binary, f"--config.file={config}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--enable-feature=exemplar-storage"],
            log=self.log_path, cwd=workdir, ready=self._wait_ready,
        )  # fmt: skip
        return self

    def _wait_ready(self) -> None:
        self._wait_http_ok(f"{self.base_url}/-/ready", poll=0.1)

    def api(self, path: str, params: dict[str, str] | list[tuple[str, str]]) -> Any:
        """GET ``/api/v1/{path}``; returns ``data``. A bad query raises naming Prometheus's error."""
        url = f"{self.base_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            body = http_get_json(url, timeout=10.0)
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")
            raise AssertionError(f"Prometheus rejected {path} {params}: {detail}") from err
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; ``at`` in Unix seconds (ms precision). Returns the result vector."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        if data["resultType"] != "vector":
            raise AssertionError(f"expected a vector from {expr!r}, got {data['resultType']}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self.api(f"label/{label}/values", [("match[]", match)])
        return values

    def wait_for(self, expr: str, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``predicate(result)`` holds (scrapes and rules run on a timer)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r} never satisfied the condition; last result: {result}")
            time.sleep(0.2)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Range query, as Grafana runs a time-series panel; returns the result matrix."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self.api("query_range", params)
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float:
        """The single value ``expr`` yields now (fails on zero or several series)."""
        result = self.query(expr)
        if len(result) != 1:
            raise AssertionError(f"{expr!r}: expected one series, got {result}")
        return float(result[0]["value"][1])

    def wait_for_scrape(self, after: float, timeout: float = 30.0) -> float:
        """Wait until every target was scraped successfully after the Unix time ``after``;
        returns the oldest of those scrapes' times."""
        deadline = time.monotonic() + timeout
        expr = "min(timestamp(up) * (up == 1))"
        while True:
            result = self.query(expr)
            count = len(self.query("up == 1"))
            if result and count == len(self.targets) and float(result[0]["value"][1]) > after:
                return float(result[0]["value"][1])
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no successful scrape of every target after {after}: {self.query('up')}; "
                    f"log:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.2)
