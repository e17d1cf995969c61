"""The catalogue's metrics on a Prometheus ``/metrics``, from the same MeterProvider as OTLP.

``PrometheusSink`` is an OTel ``MetricReader``: recording stays one path (the recorder's
instruments); the sink only turns collected points into Prometheus samples, named by
:mod:`.prometheus_names`. Two modes:

- single process: a scrape of the standalone endpoint collects the points then and there
  (on the HTTP server's thread, never on the agent's event loop);
- multiprocess (``PROMETHEUS_MULTIPROC_DIR`` set, LiveKit's way of showing job processes on
  the worker's ``/metrics``): a background thread writes the points every ``interval``
  seconds, and at flush and shutdown, into prometheus-client's multiprocess files (see
  :mod:`.prometheus_files`), which the worker's ``MultiProcessCollector`` reads: counters
  and histograms of ended job processes stay counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from ... import environment_variables as ev
from ...errors import ConfigurationError
from ...installation import installed
from ...writable import writable_directory
from .prometheus_families import Family, convert, to_prometheus
from .prometheus_files import MultiprocessFiles

logger = logging.getLogger("otel_livekit")

DEFAULT_INTERVAL = 1.0
"""Seconds between writes of the multiprocess files: what the worker's scrape may lag."""


class _SinkCollector:
    """Single process: a scrape collects the OTel points now."""

    def __init__(self, sink: PrometheusSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        yield from to_prometheus(self._sink.collect_families())


class _FlushFirst:
    """Multiprocess endpoint: write this process's latest values before the files are read."""

    def __init__(self, sink: PrometheusSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        self._sink.collect_families()
        return iter(())


@dataclass
class Endpoint:
    """A running standalone ``/metrics`` server."""

    host: str
    port: int
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def active_endpoint() -> Endpoint | None:
    """The standalone endpoint this process serves, if any (one per process at most)."""
    endpoint: Endpoint | None = installed().endpoint
    return endpoint


class PrometheusSink(MetricReader):
    """An OTel metric reader that feeds prometheus-client (see the module docstring)."""

    def __init__(
        self,
        *,
        multiprocess_dir: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        interval: float = DEFAULT_INTERVAL,
        process_id: str | None = None,
    ) -> None:
        super().__init__()  # cumulative for every instrument kind, as Prometheus wants
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=False)
        self.files = MultiprocessFiles(multiprocess_dir, process_id) if multiprocess_dir else None
        self._latest: list[Family] = []
        self._lock = threading.Lock()  # one collection (and file write) at a time
        self._stop = threading.Event()
        self._closed = False
        self._failed_once = False
        self.endpoint: Endpoint | None = None
        if multiprocess_dir:
            self.registry.register(_FlushFirst(self))
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self.registry.register(_SinkCollector(self))
        self._thread: threading.Thread | None = None
        if self.files is not None:
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="otel_livekit-prometheus-writer", daemon=True
            )
            self._thread.start()
        if port is not None:
            self.endpoint = _start_endpoint(self.registry, host, port, shared=self.files is not None)

    # --- MetricReader ---------------------------------------------------------------
    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:  # fmt: skip
        try:
            families = convert(metrics_data)
            self._latest = families
            if self.files is not None and not self._closed:
                self.files.write(families)
        except Exception:
            if not self._failed_once:
                self._failed_once = True
                logger.warning("otel_livekit: Prometheus sink failed to write metrics", exc_info=True)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self.collect_families(timeout_millis)
        return True

    def collect_families(self, timeout_millis: float = 10_000) -> list[Family]:
        """Collect now (one collection at a time, so the files never step back to an older
        total) and return what was converted."""
        with self._lock:
            self.collect(timeout_millis)
            return self._latest

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Last write of the files, then close them and stop the endpoint."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, timeout_millis / 1000))
        if self.files is not None:
            try:
                self.collect_families(timeout_millis)
            except Exception:
                logger.warning("otel_livekit: last Prometheus write failed", exc_info=True)
            with self._lock:
                self._closed = True
                self.files.close()
        self._closed = True
        _stop_endpoint(self.endpoint)
        self.endpoint = None

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.collect_families()
            except Exception:  # the provider may be shutting down
                if self._stop.is_set():
                    return
                logger.debug("otel_livekit: Prometheus collection failed", exc_info=True)


def _start_endpoint(registry: CollectorRegistry, host: str, port: int, *, shared: bool) -> Endpoint | None:
    """Serve ``registry``; ``shared`` (multiprocess): every job process tries the same port and
    the first to bind serves the sum of all, so a busy port is expected there."""
    process = installed()
    with process.lock:
        if (running := process.endpoint) is not None:
            logger.warning(
                "otel_livekit: a Prometheus endpoint already runs in this process on %s:%s; "
                "not starting another", running.host, running.port,
            )  # fmt: skip
            return None
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as err:
            if shared:
                logger.info("otel_livekit: %s:%s is taken (another job process serves the sum of "
                            "all there, or should): %s", host, port, err)  # fmt: skip
            else:
                logger.warning(
                    "otel_livekit: cannot serve Prometheus metrics on %s:%s (%s); set "
                    "OTEL_LIVEKIT_PROMETHEUS_PORT to a free port", host, port, err,
                )  # fmt: skip
            return None
        thread.name = "otel_livekit-prometheus-http"
        bound_host, bound_port = server.server_address[:2]
        endpoint = process.endpoint = Endpoint(str(bound_host), int(bound_port), server, thread)
        logger.info("otel_livekit: Prometheus metrics on http://%s:%s/metrics", bound_host, bound_port)
        return endpoint


def _stop_endpoint(endpoint: Endpoint | None) -> None:
    if endpoint is None:
        return
    process = installed()
    with process.lock:
        endpoint.close()
        if process.endpoint is endpoint:
            process.endpoint = None


# --- configuration ---------------------------------------------------------------------


def _parse_port(raw: str, var: str) -> int:
    try:
        port = int(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{var} must be a TCP port number, got {raw!r}", variable=var) from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{var} must be between 0 and 65535, got {raw!r}", variable=var)
    return port


@dataclass(frozen=True)
class PrometheusSettings:
    """The sink setup adds: multiprocess files (``multiprocess_dir``) and/or a standalone port."""

    multiprocess_dir: str | None
    port: int | None
    host: str


def prometheus_settings(
    env: Mapping[str, str],
    *,
    port: int | None = None,
    host: str | None = None,
    multiprocess: bool | None = None,
) -> PrometheusSettings | None:
    """On when LiveKit's multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``) unless
    switched off, and when a standalone port is given; None: no sink. Raises
    ConfigurationError naming the variable to fix."""
    if port is None and (raw_port := env.get(ev.OTEL_LIVEKIT_PROMETHEUS_PORT, "").strip()):
        port = _parse_port(raw_port, ev.OTEL_LIVEKIT_PROMETHEUS_PORT)
    elif port is not None and not 0 <= port <= 65535:
        raise ConfigurationError(f"prometheus_port must be between 0 and 65535, got {port}")
    host = host or env.get(ev.OTEL_LIVEKIT_PROMETHEUS_HOST, "").strip() or "127.0.0.1"
    if multiprocess is None:
        multiprocess = ev.flag(env.get(ev.OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS),
                               ev.OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS, auto=True)  # fmt: skip
    directory = env.get(ev.PROMETHEUS_MULTIPROC_DIR, "").strip() or None
    if multiprocess is None:  # auto
        multiprocess = directory is not None
    if multiprocess:
        if directory is None:
            raise ConfigurationError(
                f"{ev.OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS} is on but {ev.PROMETHEUS_MULTIPROC_DIR} "
                "is not set: set it (LiveKit's prometheus_multiproc_dir does) or turn multiprocess off",
                variable=ev.OTEL_LIVEKIT_PROMETHEUS_MULTIPROCESS,
            )
        writable_directory(directory, ev.PROMETHEUS_MULTIPROC_DIR)
    if not multiprocess and port is None:
        return None
    return PrometheusSettings(directory if multiprocess else None, port, host)


def prometheus_readers(settings: PrometheusSettings | None) -> list[MetricReader]:
    """The Prometheus sink ``setup_tracing()`` adds, if any."""
    if settings is None:
        return []
    sink = PrometheusSink(multiprocess_dir=settings.multiprocess_dir, port=settings.port, host=settings.host)
    return [sink]
