"""The ``file`` backend: traces and metrics as OTLP/JSON lines in one local file.

Each line is one ``ExportTraceServiceRequest`` or ``ExportMetricsServiceRequest`` in the
OTLP/JSON encoding (camelCase keys, hex trace/span ids, enums as integers), the format the
OTel Collector's ``otlpjsonfile`` receiver and ``otel-livekit report`` read. Encoding uses
the OTLP exporters' own protobuf encoders, so the content is exactly what OTLP/HTTP sends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("otel_livekit")

_ID_KEYS = frozenset(("traceId", "spanId", "parentSpanId"))


def to_otlp_json(message: Message) -> dict[str, Any]:
    """A protobuf OTLP request as an OTLP/JSON object: protobuf's JSON mapping writes
    bytes as base64, the OTLP spec wants trace and span ids as hex."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(data)
    return data


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


class JsonLinesFile:
    """One append-only file shared by the span and metric exporters; a lock keeps each
    request on its own line when both export at once."""

    _open: ClassVar[dict[str, JsonLinesFile]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        self._users = 0
        self.last_error: str | None = None
        """Why the last write failed (the reason health's one failure line gives), if it did."""

    @classmethod
    def acquire(cls, path: str | os.PathLike[str]) -> JsonLinesFile:
        key = str(Path(path).resolve())
        with cls._registry_lock:
            file = cls._open.get(key)
            if file is None:
                file = cls._open[key] = JsonLinesFile(Path(key))
            file._users += 1
            return file

    def release(self) -> None:
        with JsonLinesFile._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            JsonLinesFile._open.pop(str(self.path), None)
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            if self._fh is None:
                with contextlib.suppress(OSError):  # the open below says why, if it matters
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._fh.write(line)
            self._fh.flush()


def _reason(err: Exception) -> str:
    """A full disk or a read-only mount is not a bug: its words, no traceback."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    logger.debug("otel_livekit: file export failed", exc_info=err)
    return type(err).__name__


class FileSpanExporter(SpanExporter):
    """Appends one ``ExportTraceServiceRequest`` line per batch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = JsonLinesFile.acquire(path)
        self._closed = False

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def last_error(self) -> str | None:
        return self._file.last_error

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        try:
            self._file.write(to_otlp_json(encode_spans(spans)))
        except Exception as err:
            self._file.last_error = _reason(err)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._file.release()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class FileMetricExporter(MetricExporter):
    """Appends one ``ExportMetricsServiceRequest`` line per collection (cumulative)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._file = JsonLinesFile.acquire(path)
        self._closed = False

    @property
    def last_error(self) -> str | None:
        return self._file.last_error

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._closed:
            return MetricExportResult.FAILURE
        try:
            request = encode_metrics(metrics_data)
            if request.resource_metrics:
                self._file.write(to_otlp_json(request))
        except Exception as err:
            self._file.last_error = _reason(err)
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if not self._closed:
            self._closed = True
            self._file.release()
