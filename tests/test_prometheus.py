"""The Prometheus sink: LiveKit's worker ``/metrics`` sums real job processes (read back from
a real Prometheus), names equal the OTel SDK's Prometheus reader's, and the standalone
endpoint's and multiprocess switch's behaviour."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prom_jobs
import pytest
from conftest import reset_otel_globals
from prom_jobs import JobSpec
from prom_reference import CATALOGUE_SAMPLES, SCOPE_OF, run_reference_sessions, samples, shape
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from servers import PrometheusServer, ScrapeTarget, free_port, prometheus_binary, require_or_skip

from otel_livekit import ConfigurationError, setup_tracing
from otel_livekit.export.local import prometheus as prom
from otel_livekit.export.local.prometheus_names import sample_names
from otel_livekit.metrics.buckets import GENAI_DURATION_SECONDS
from otel_livekit.metrics.catalogue import CATALOGUE

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SPAWN = multiprocessing.get_context("spawn")
FORKSERVER = multiprocessing.get_context("forkserver")  # LiveKit's job processes on Linux


def get(url: str, accept: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with NO_PROXY.open(request, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


class WorkerMetrics:
    """LiveKit's own worker ``/metrics`` server (``telemetry.http_server.HttpServer``, what
    ``prometheus_port`` starts), on a thread with its own event loop."""

    def __init__(self) -> None:
        from livekit.agents.telemetry.http_server import HttpServer

        self.server = HttpServer("127.0.0.1", 0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> WorkerMetrics:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/metrics"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.aclose(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LiveKit's multiprocess mode: the worker sets PROMETHEUS_MULTIPROC_DIR; job processes
    inherit it."""
    directory = tmp_path / "prometheus-multiproc"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    return directory


@contextlib.contextmanager
def job_process(target: Any, *args: Any, ctx: Any = SPAWN) -> Iterator[multiprocessing.process.BaseProcess]:
    proc = ctx.Process(target=target, args=args)
    proc.start()
    try:
        yield proc
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


@contextlib.contextmanager
def _released(release: Any) -> Iterator[None]:
    """Let a held job process end, even when an assertion failed."""
    try:
        yield
    finally:
        release.set()


# --- (a) several job processes, one scrape, read back from a real Prometheus --------------


def test_worker_metrics_sum_every_job_process_in_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_or_skip("Prometheus", prometheus_binary() is not None)
    # the forkserver lives for the whole test run with the environment it started with:
    # start it before this test sets the worker's variable (job_main sets it in the child)
    multiprocessing.forkserver.ensure_running()
    multiproc_dir = tmp_path / "prometheus-multiproc"
    multiproc_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc_dir))  # the worker's /metrics reads it
    specs = [JobSpec(1, 40, 8, 0.05), JobSpec(2, 55, 9, 0.12), JobSpec(1, 70, 11, 0.2)]
    outs = [tmp_path / f"job{i}.json" for i in range(len(specs))]
    ready, release = FORKSERVER.Event(), FORKSERVER.Event()
    directory = str(multiproc_dir)
    with (
        WorkerMetrics() as worker,
        PrometheusServer([ScrapeTarget("agents", worker.url.split("/")[2])]) as server,
    ):
        ended = [FORKSERVER.Process(target=prom_jobs.job_main, args=(spec, directory, str(out)))
                 for spec, out in zip(specs[:2], outs[:2], strict=True)]  # fmt: skip
        for proc in ended:
            proc.start()
        with job_process(prom_jobs.job_main, specs[2], directory, str(outs[2]), ready, release,
                         ctx=FORKSERVER) as alive, _released(release):  # fmt: skip
            for proc in ended:
                proc.join(120)
                assert proc.exitcode == 0
            assert ready.wait(120), "the live job process never finished its sessions"
            assert alive.is_alive()
            server.wait_for_scrape(after=time.time())

            reports = [json.loads(out.read_text()) for out in outs]
            assert len({r["pid"] for r in reports}) == 3
            turns = sum(r["turns"] for r in reports)
            assert turns == 2 * sum(s.sessions for s in specs)  # hello, bye: one reply each
            assert server.value("sum(voice_agent_session_turns_sum)") == turns
            assert server.value("sum(voice_agent_session_turns_count)") == sum(s.sessions for s in specs)
            assert server.value("sum(voice_agent_sessions_started_total)") == sum(s.sessions for s in specs)
            assert server.value("sum(voice_agent_sessions_active)") == 0  # all sessions closed
            llm = 'voice_agent_component="llm"'
            assert server.value(f'sum(voice_agent_tokens_total{{{llm},gen_ai_token_type="input"}})') \
                == sum(r["input_tokens"] for r in reports)  # fmt: skip
            assert server.value(f'sum(voice_agent_tokens_total{{{llm},gen_ai_token_type="output"}})') \
                == sum(r["output_tokens"] for r in reports)  # fmt: skip
            ttfts = [t for r in reports for t in r["ttfts"]]
            name = "gen_ai_client_operation_time_to_first_chunk_seconds"
            assert server.value(f"sum({name}_count)") == len(ttfts)
            assert server.value(f"sum({name}_sum)") == pytest.approx(sum(ttfts), abs=1e-9)
            # buckets merged across processes: cumulative counts at every bound
            by_le = {r["metric"]["le"]: float(r["value"][1])
                     for r in server.query(f"sum by (le) ({name}_bucket)")}  # fmt: skip
            for i, bound in enumerate(GENAI_DURATION_SECONDS):
                expected = sum(1 for t in ttfts if bisect.bisect_left(GENAI_DURATION_SECONDS, t) <= i)
                assert by_le[repr(float(bound))] == expected, (bound, by_le)
            assert by_le["+Inf"] == len(ttfts)


# --- (b) names, types, units, label keys and buckets equal the SDK reader's ----------------


def test_names_equal_the_sdk_prometheus_reader_single_process() -> None:
    registry = CollectorRegistry()
    telemetry = run_reference_sessions(registry, prometheus_port=0)
    endpoint = prom.active_endpoint()
    assert endpoint is not None
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    # The SDK's reader keeps what each MeterProvider flush collected and shows it beside the
    # next scrape: the job-end flush collected while the spans were still being exported,
    # so its export counters are older. Scrape it once to drop that snapshot.
    generate_latest(registry)
    ours = samples(get(url), scope_only=False)
    theirs = samples(generate_latest(registry).decode(), scope_only=True)
    covered = {name for _, name, _, _ in theirs}
    missing = {spec.name for spec in CATALOGUE if not set(sample_names(spec)) <= covered}
    assert not missing, f"the reference session never recorded {sorted(missing)}"
    assert shape(ours) == shape(theirs)
    assert ours == theirs  # values too, with the SDK's own le strings

    # OpenMetrics: the unit metadata agrees too
    om_ours = list(om_families(get(url, accept="application/openmetrics-text; version=1.0.0")))
    om_theirs = list(om_families(om_exposition.generate_latest(registry).decode()))
    families = {(f.name, f.type, f.unit) for f in om_ours}
    ours_scope = {(f.name, f.type, f.unit) for f in om_theirs for s in f.samples
                  if s.name in SCOPE_OF and s.labels.get("otel_scope_name") == SCOPE_OF[s.name]}  # fmt: skip
    reference = ours_scope
    assert families == reference
    assert {f.name for f in om_ours if f.samples} >= {f for f, _, _ in reference}
    assert not [n for _, n, _, _ in ours if n not in CATALOGUE_SAMPLES]
    telemetry.shutdown()


def test_names_equal_the_sdk_prometheus_reader_multiprocess(tmp_path: Path, multiproc_dir: Path) -> None:
    out = tmp_path / "sdk.txt"
    ready, release = SPAWN.Event(), SPAWN.Event()
    with (
        WorkerMetrics() as worker,
        job_process(prom_jobs.reference_main, str(out), ready, release),
        _released(release),
    ):
        assert ready.wait(180), "the job process never finished its sessions"
        ours = samples(get(worker.url), scope_only=False)
        theirs = samples(out.read_text(), scope_only=True)
    assert {spec.name for spec in CATALOGUE
            if not set(sample_names(spec)) <= {n for _, n, _, _ in theirs}} == set()  # fmt: skip
    assert shape(ours) == shape(theirs)
    # each reader sums its own deltas (ours every second): float sums may differ in the last bit
    ours_by_key = {sample[:3]: sample[3] for sample in ours}
    theirs_by_key = {sample[:3]: sample[3] for sample in theirs}
    assert ours_by_key.keys() == theirs_by_key.keys()
    assert ours_by_key == pytest.approx(theirs_by_key, rel=1e-12)


# --- (c) the standalone endpoint and the switches -------------------------------------------


def _other_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface
        address: str = s.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def http_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "otel_livekit-prometheus-http" and t.is_alive()]


def test_standalone_endpoint_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("OTEL_LIVEKIT_PROMETHEUS_PORT", str(port))
    telemetry = setup_tracing("none")
    endpoint = prom.active_endpoint()
    assert endpoint is not None and (endpoint.host, endpoint.port) == ("127.0.0.1", port)
    assert telemetry.recorder is not None
    telemetry.recorder.add("voice_agent.sessions.started", 3)
    body = get(f"http://127.0.0.1:{port}/metrics")
    assert "voice_agent_sessions_started_total 3.0" in body.splitlines()
    other = _other_address()
    if other is not None:
        assert not _listening(other, port), f"reachable on {other}"
    telemetry.shutdown()


def test_only_the_catalogue_meter_is_exposed() -> None:
    """LiveKit's own instruments, a same-named instrument on another meter and anything not
    in the catalogue stay out."""
    from opentelemetry import metrics

    telemetry = setup_tracing("none", prometheus_port=0)
    endpoint = prom.active_endpoint()
    assert endpoint is not None and telemetry.recorder is not None
    telemetry.recorder.add("voice_agent.sessions.started", 1)
    other = metrics.get_meter_provider().get_meter("someone-else")
    other.create_counter("voice_agent.sessions.started", unit="{session}").add(7)
    other.create_counter("lk.agents.usage.other", unit="{x}").add(1)
    ours = metrics.get_meter_provider().get_meter("otel_livekit")
    ours.create_counter("not.in.catalogue", unit="{x}").add(1)
    lines = get(f"http://127.0.0.1:{endpoint.port}/metrics").splitlines()
    assert not [line for line in lines if "not_in_catalogue" in line]
    started = [line for line in lines if line.startswith("voice_agent_sessions_started_total")]
    assert started == ["voice_agent_sessions_started_total 1.0"]
    assert not [line for line in lines if "lk_agents" in line]
    telemetry.shutdown()


def test_second_setup_does_not_start_a_second_server(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    port = free_port()
    monkeypatch.setenv("OTEL_LIVEKIT_PROMETHEUS_PORT", str(port))
    caplog.set_level(logging.WARNING, logger="otel_livekit")
    first = setup_tracing("none")
    second = setup_tracing("none")
    assert second is first
    assert len(http_threads()) == 1
    # a second sink in the same process (e.g. a hand-made reader) does not start one either
    extra = prom.PrometheusSink(port=free_port())
    assert extra.endpoint is None and len(http_threads()) == 1
    assert "already runs in this process" in caplog.text
    extra.shutdown()
    assert not [r for r in caplog.records if "cannot serve" in r.getMessage()]
    first.shutdown()
    assert not http_threads() and not _listening("127.0.0.1", port)
    again = setup_tracing("none")  # after shutdown, a new setup serves again
    assert _listening("127.0.0.1", port)
    again.shutdown()


@pytest.mark.parametrize("multiprocess", [False, True])
def test_a_busy_port_never_fails_the_agent(multiprocess: bool, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """Single process: a warning naming the variable. Multiprocess: expected (a sibling job
    process serves the sum), so no warning."""
    if multiprocess:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    caplog.set_level(logging.INFO, logger="otel_livekit")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        telemetry = setup_tracing("none", prometheus_port=taken.getsockname()[1])
        assert prom.active_endpoint() is None
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        if multiprocess:
            assert not warnings and "another job process" in caplog.text
        else:
            assert len(warnings) == 1 and "OTEL_LIVEKIT_PROMETHEUS_PORT" in warnings[0].getMessage()
        telemetry.shutdown()


def _our_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "otel-livekit" in p.name)


def _multiprocess_exposition(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry).decode()


def test_multiprocess_is_on_by_default_and_off_by_switch(
    multiproc_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no other setting: PROMETHEUS_MULTIPROC_DIR turns it on; the standalone endpoint too
    telemetry = setup_tracing("none", prometheus_port=0)
    endpoint = prom.active_endpoint()
    assert telemetry.recorder is not None and endpoint is not None
    telemetry.recorder.add("voice_agent.sessions.started", 2)
    telemetry.recorder.add("voice_agent.sessions.active", 1)
    # the endpoint serves every process's files, this one's written just before (no flush)
    served = get(f"http://127.0.0.1:{endpoint.port}/metrics").splitlines()
    assert "voice_agent_sessions_started_total 2.0" in served
    assert "voice_agent_sessions_active 1.0" in served
    own_gauges = f"gauge_sum_{os.getpid()}-otel-livekit.db"  # this process's, while it lives
    assert sorted(f for f in _our_files(multiproc_dir) if f.endswith(".db")) == sorted([
        "counter_shared-otel-livekit.db", own_gauges, "gauge_sum_shared-otel-livekit.db",
    ])  # fmt: skip
    lines = _multiprocess_exposition(multiproc_dir).splitlines()
    assert "voice_agent_sessions_started_total 2.0" in lines
    assert "voice_agent_sessions_active 1.0" in lines
    telemetry.recorder.add("voice_agent.sessions.started", 1)  # after the last flush
    telemetry.shutdown()
    # an ended process: its counter stays counted (with what came after the flush), its
    # sessions are no longer active
    lines = _multiprocess_exposition(multiproc_dir).splitlines()
    assert "voice_agent_sessions_started_total 3.0" in lines
    assert "voice_agent_sessions_active 0.0" in lines
    assert own_gauges not in _our_files(multiproc_dir)

    for file in multiproc_dir.iterdir():
        file.unlink()
    reset_otel_globals()
    monkeypatch.setenv("OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS", "false")
    telemetry = setup_tracing("none")
    assert telemetry.recorder is not None
    telemetry.recorder.add("voice_agent.sessions.started", 2)
    telemetry.force_flush()
    telemetry.shutdown()
    assert _our_files(multiproc_dir) == []


def test_files_are_written_in_the_background_without_a_flush(multiproc_dir: Path) -> None:
    """A job process killed before its shutdown flush still leaves what it recorded up to
    about a second before."""
    telemetry = setup_tracing("none")
    assert telemetry.recorder is not None
    telemetry.recorder.add("voice_agent.sessions.started", 4)
    deadline = time.monotonic() + 10
    while "voice_agent_sessions_started_total 4.0" not in _multiprocess_exposition(multiproc_dir):
        assert time.monotonic() < deadline, "the writer thread never wrote"
        time.sleep(0.1)
    telemetry.shutdown()


def test_job_processes_add_to_shared_files(tmp_path: Path) -> None:
    """Many ended job processes leave two shared files (a scrape's cost does not grow with
    the number of calls), and their sum."""
    from opentelemetry.sdk.metrics import MeterProvider

    from otel_livekit.metrics.catalogue import METER_NAME, views
    from otel_livekit.metrics.instruments import Instruments

    for n in range(5):
        sink = prom.PrometheusSink(multiprocess_dir=str(tmp_path), process_id=f"{100 + n}-otel-livekit")
        provider = MeterProvider(metric_readers=[sink], views=views())
        instruments = Instruments(provider.get_meter(METER_NAME))
        instruments.counter("voice_agent.sessions.started").add(5)
        instruments.counter("voice_agent.sessions.active").add(1)
        instruments.histogram("voice_agent.session.turns").record(n)
        sink.force_flush()
        assert "voice_agent_sessions_active 1.0" in _multiprocess_exposition(tmp_path).splitlines()
        instruments.counter("voice_agent.sessions.started").add(1)  # a second write: its increase
        provider.shutdown()
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_shared-otel-livekit.db", "gauge_sum_shared-otel-livekit.db",
        "histogram_shared-otel-livekit.db",
    ]  # fmt: skip
    lines = _multiprocess_exposition(tmp_path).splitlines()
    assert "voice_agent_sessions_active 0.0" in lines  # each took its own back at shutdown
    assert "voice_agent_sessions_started_total 30.0" in lines
    assert "voice_agent_session_turns_count 5.0" in lines
    assert "voice_agent_session_turns_sum 10.0" in lines
    assert 'voice_agent_session_turns_bucket{le="2.0"} 3.0' in lines


def test_concurrent_job_processes_lose_no_increment(tmp_path: Path) -> None:
    """Writers of the shared files take turns (flock): no lost update, no torn append."""
    writers, rounds = 4, 1500
    start = SPAWN.Event()
    procs = [SPAWN.Process(target=prom_jobs.shared_writer, args=(str(tmp_path), n, rounds, start))
             for n in range(writers)]  # fmt: skip
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    lines = _multiprocess_exposition(tmp_path).splitlines()
    assert f'voice_agent_tool_calls_total{{gen_ai_tool_name="shared"}} {float(writers * rounds)}' in lines
    per_tool = [line for line in lines if line.startswith('voice_agent_tool_calls_total{gen_ai_tool_name="t')]
    assert len(per_tool) == rounds and all(line.endswith(f" {float(writers)}") for line in per_tool)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_LIVEKIT_PROMETHEUS_PORT": "metrics"}, "OTEL_LIVEKIT_PROMETHEUS_PORT"),
        ({"OTEL_LIVEKIT_PROMETHEUS_PORT": "70000"}, "OTEL_LIVEKIT_PROMETHEUS_PORT"),
        ({"OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS": "maybe"}, "OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS"),
        ({"OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS": "true"}, "PROMETHEUS_MULTIPROC_DIR"),
    ],
)
def test_bad_prometheus_settings_fail_at_setup(env: dict[str, str], named: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=named):
        setup_tracing("none")


def test_docs_list_every_prometheus_name() -> None:
    from otel_livekit.export.local.prometheus_names import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "docs" / "prometheus.md").read_text()
    start = readme.index("\n", readme.index("<!-- prometheus-names:start")) + 1
    end = readme.index("<!-- prometheus-names:end -->")
    assert readme[start:end] == markdown_table()


def test_a_killed_job_process_stops_counting_as_an_active_call(tmp_path: Path) -> None:
    """LiveKit kills a job that misses its shutdown window: its call must not stay "active"
    on the worker's merged /metrics (read as LiveKit's worker reads the files)."""
    import os
    import signal

    multiprocessing.forkserver.ensure_running()
    ready = FORKSERVER.Event()
    proc = FORKSERVER.Process(target=prom_jobs.held_call_main, args=(str(tmp_path), ready))
    proc.start()
    try:
        assert ready.wait(60), "the job never reached the middle of its call"
        lines = _multiprocess_exposition(tmp_path).splitlines()
        assert "voice_agent_sessions_active 1.0" in lines
        assert "voice_agent_sessions_started_total 1.0" in lines
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lines = _multiprocess_exposition(tmp_path).splitlines()
            if "voice_agent_sessions_active 0.0" in lines:
                break
            time.sleep(0.25)
        assert "voice_agent_sessions_active 0.0" in lines, [x for x in lines if "active" in x]
        assert "voice_agent_sessions_started_total 1.0" in lines  # what happened stays counted
    finally:
        if proc.is_alive():
            proc.kill()
