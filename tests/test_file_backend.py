"""The ``file`` backend writes OTLP/JSON lines an OTLP decoder reads back exactly."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_livekit import setup_tracing
from otel_livekit.offline import run_offline_session


def _ids_to_base64(node: Any) -> None:
    """OTLP/JSON ids are hex; protobuf's JSON parser wants base64 bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId"):
                assert len(value) in (16, 32) and int(value, 16) >= 0, value
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_base64(item)


def read_requests(path: Path) -> tuple[list[ExportTraceServiceRequest], list[ExportMetricsServiceRequest]]:
    traces, metrics = [], []
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        _ids_to_base64(obj)
        if "resourceSpans" in obj:
            traces.append(json_format.ParseDict(obj, ExportTraceServiceRequest()))
        else:
            assert set(obj) == {"resourceMetrics"}, set(obj)
            metrics.append(json_format.ParseDict(obj, ExportMetricsServiceRequest()))
    return traces, metrics


def test_file_backend_writes_every_span_and_the_metrics_as_otlp_json(tmp_path: Path) -> None:
    path = tmp_path / "out" / "t.jsonl"
    memory = InMemorySpanExporter()
    telemetry = setup_tracing(
        "file", otel_livekit_file_path=str(path), span_processors=[SimpleSpanProcessor(memory)]
    )
    asyncio.run(run_offline_session(text_turns=["hello", "what's the weather?"], audio_turns=0, in_job=False))
    telemetry.shutdown()

    traces, metrics = read_requests(path)
    written = {
        (s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name)
        for req in traces
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    }
    expected = {
        (
            format(s.context.trace_id, "032x"),
            format(s.context.span_id, "016x"),
            format(s.parent.span_id, "016x") if s.parent else "",
            s.name,
        )
        for s in memory.get_finished_spans()
    }
    assert written == expected
    assert len({t for t, *_ in written}) == 1  # one call, one trace
    assert sum(n == "agent_turn" for *_, n in written) == 2
    assert len(metrics) == 1  # the shutdown collection
    points = {m.name: m for rm in metrics[0].resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert [p.as_int for p in points["voice_agent.sessions.started"].sum.data_points] == [1]
    assert [p.as_int for p in points["voice_agent.tool.calls"].sum.data_points] == [1]


def test_an_unwritable_file_is_one_line_no_traceback_and_a_false_flush(
    tmp_path: Path, caplog: Any
) -> None:
    """A path under a regular file (as root, the real "cannot write"): one WARNING naming
    the path and the reason, no traceback at export or shutdown, the spans counted, and
    force_flush() says False."""
    import logging

    from opentelemetry import trace

    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "traces.jsonl"
    caplog.set_level(logging.DEBUG)
    t = setup_tracing("file", otel_livekit_file_path=str(path))
    for batch in range(3):
        for i in range(2):
            with trace.get_tracer("test").start_as_current_span(f"span-{batch}-{i}"):
                pass
        assert t.force_flush() is False
    ours = [r for r in caplog.records if r.name == "otel_livekit" and r.levelno >= logging.WARNING]
    lines = [r.getMessage() for r in ours if str(path) in r.getMessage()]  # one file: one line
    assert lines == [f"traces and metrics export to file ({path}) failed: Not a directory (further "
                     "failures are counted, not logged, until it recovers)"]  # fmt: skip
    assert t.not_delivered["traces"] == 6
    (tmp_path / "file").unlink()  # the operator mends it: one line says so
    (tmp_path / "file").mkdir()
    with trace.get_tracer("test").start_as_current_span("after"):
        pass
    assert t.force_flush() is True
    t.shutdown()
    said = [m for r in caplog.records if r.name == "otel_livekit" and str(path) in (m := r.getMessage())]
    assert said[1:] == [f"traces and metrics export to file ({path}) recovered"], said
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]
    assert t.not_delivered["traces"] == 6
