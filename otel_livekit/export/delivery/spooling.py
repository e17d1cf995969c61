"""The spool's settings and the exporters that write through it.

With the spool on (the default), an OTLP destination's exporter encodes each batch with the
OTLP protobuf encoders (spans a few at a time, see ``encoding``), hands it to the
destination's ``Outbox`` (on disk first, then one short HTTP attempt) and returns: the SDK's
10 s retry loop never holds the worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ... import environment_variables as ev
from ...errors import ConfigurationError
from ...writable import writable_directory
from ..destinations.transport import Transport
from .direct import wire
from .encoding import encode_metrics_yielding, encode_spans_yielding
from .health import ExportHealth, metric_points
from .http_client import HttpClient
from .outbox import RETRYABLE, Outbox, Outcome
from .spool import SpoolDir

logger = logging.getLogger("otel_livekit")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_ATTEMPT_TIMEOUT = 5.0
"""One live attempt waits at most this long (or the OTLP timeout, if shorter) before the
batch is left to the spool: long enough for a slow backend, short of the SDK's 10 s loop."""


@dataclass(frozen=True)
class SpoolSettings:
    enabled: bool
    root: Path
    max_bytes: int


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:64] or "default"


def default_root(service: str, env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "otel_livekit" / "spool" / _slug(service)


def spool_settings(
    env: Mapping[str, str],
    service: str,
    *,
    enabled: bool | None,
    directory: str | os.PathLike[str] | None,
    max_bytes: int | None,
) -> SpoolSettings:
    """Argument > environment variable > default; a bad value fails here, naming its variable."""
    if enabled is None:
        enabled = ev.flag(env.get(ev.OTEL_LIVEKIT_SPOOL), ev.OTEL_LIVEKIT_SPOOL) is not False
    if max_bytes is None:
        raw_max = env.get(ev.OTEL_LIVEKIT_SPOOL_MAX_BYTES)
        try:
            max_bytes = int(raw_max) if raw_max else DEFAULT_MAX_BYTES
        except ValueError:
            raise ConfigurationError(
                f"{ev.OTEL_LIVEKIT_SPOOL_MAX_BYTES} must be a whole number of bytes, got {raw_max!r}",
                variable=ev.OTEL_LIVEKIT_SPOOL_MAX_BYTES,
            ) from None
    if max_bytes <= 0:
        raise ConfigurationError(f"{ev.OTEL_LIVEKIT_SPOOL_MAX_BYTES} must be positive, got {max_bytes}",
                                 variable=ev.OTEL_LIVEKIT_SPOOL_MAX_BYTES)  # fmt: skip
    given = directory or env.get(ev.OTEL_LIVEKIT_SPOOL_DIR)
    root = Path(given).expanduser() if given else default_root(service, env)
    if enabled and given:
        writable_directory(root, ev.OTEL_LIVEKIT_SPOOL_DIR if not directory else "spool_dir=")
    return SpoolSettings(enabled, root, max_bytes)


def destination_dir(root: Path, signal: str, endpoint: str, headers: Mapping[str, str]) -> Path:
    """One directory per destination, so batches never reach a backend (or a project's
    credentials) other than the one they were meant for. The header values are hashed."""
    digest = hashlib.sha256(endpoint.encode())
    for key, value in sorted(headers.items()):
        digest.update(f"\n{key.lower()}={value}".encode())
    url = urlsplit(endpoint)
    return root / f"{signal}-{_slug(url.netloc)}-{digest.hexdigest()[:16]}"


@dataclass
class Spooler:
    """Builds one Outbox per OTLP destination and remembers them for the job-end deadline."""

    settings: SpoolSettings
    outboxes: list[Outbox] = field(default_factory=list)

    def outbox(self, transport: Transport, client: HttpClient, health: ExportHealth) -> Outbox | None:
        if not self.settings.enabled:
            return None
        sending = wire(transport, client, min(transport.timeout, MAX_ATTEMPT_TIMEOUT))
        headers = {k: v.reveal() for k, v in transport.headers.items()}
        directory = destination_dir(self.settings.root, health.signal, transport.endpoint, headers)
        try:
            spool = SpoolDir(directory, self.settings.max_bytes, on_evicted=lambda n: health.add(dropped=n))
        except OSError as exc:
            logger.warning("otel_livekit: no spool (%s: %s); set %s to a writable directory",
                           directory, exc.strerror, ev.OTEL_LIVEKIT_SPOOL_DIR)  # fmt: skip
            return None
        health.failure_note = partial(_note, directory)
        box = Outbox(spool, sending, health)
        self.outboxes.append(box)
        return box

    def cut_at(self, when: float | None) -> None:
        for box in self.outboxes:
            box.cut_at(when)

    def close(self, timeout: float) -> None:
        """Stop every sender thread (a setup taken back); unsent batches stay spooled."""
        for box in self.outboxes:
            box.close()
        for box in self.outboxes:
            box.join(timeout / max(1, len(self.outboxes)))


def _note(directory: Path, error: str) -> str:
    if error.startswith("HTTP ") and int(error[5:]) not in RETRYABLE:
        return "; the backend rejects the batches, so they are dropped, not spooled"
    return f"; batches are kept in {directory} and re-sent when it answers"


def _export(outbox: Outbox, health: ExportHealth, data: bytes, items: int) -> bool:
    health.sending(items)
    outcome = Outcome.DROPPED
    try:
        outcome = outbox.submit(data, items)
    except Exception as exc:  # never into the agent
        logger.debug("otel_livekit: spool submit failed: %s", exc)
    finally:
        health.sent(items, outcome is Outcome.DELIVERED, spooled=outcome is Outcome.SPOOLED)
    return outcome is not Outcome.DROPPED


class SpoolingSpanExporter(SpanExporter):
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.health = outbox.health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            data = encode_spans_yielding(spans)
        except Exception as exc:
            logger.debug("otel_livekit: cannot encode spans: %s", exc)
            return SpanExportResult.FAILURE
        ok = _export(self.outbox, self.health, data, len(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self.outbox.close()


class SpoolingMetricExporter(MetricExporter):
    def __init__(self, outbox: Outbox, temporality: dict[type, AggregationTemporality]) -> None:
        super().__init__(preferred_temporality=temporality)
        self.outbox = outbox
        self.health = outbox.health

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:  # fmt: skip
        points = metric_points(metrics_data)
        if points == 0:
            return MetricExportResult.SUCCESS
        try:
            data = encode_metrics_yielding(metrics_data)
        except Exception as exc:
            logger.debug("otel_livekit: cannot encode metrics: %s", exc)
            return MetricExportResult.FAILURE
        ok = _export(self.outbox, self.health, data, points)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.outbox.close()
