"""Whole-call sampling: with ``parentbased_traceidratio`` a call's spans are all kept or all
dropped, the job's separate ``job_shutdown`` trace included. 200 real (short, text-only)
offline sessions, 20 at a time, at ratio 0.3."""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_livekit import setup_tracing
from otel_livekit.offline import OfflineLLM, run_offline_session

CALLS = 200
RATIO = 0.3


def _job_shutdown(session: Any) -> None:
    """What LiveKit does after the session in a job whose root predates the provider:
    ``job_shutdown`` starts a trace of its own (see tests/test_call_in_job.py)."""
    trace.get_tracer("livekit-agents").start_span("job_shutdown", context=Context()).end()


async def _calls(n: int, at_once: int) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(i: int) -> None:
        async with gate:
            await run_offline_session(
                text_turns=("hello",), audio_turns=0, room_name=f"call-{i:03d}", job_id=f"job-{i:03d}",
                llm_=OfflineLLM(ttft=0.0), after_close=_job_shutdown,
            )  # fmt: skip

    await asyncio.gather(*(one(i) for i in range(n)))


def _run(reports: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    """session id → [(span name, trace id)] of what was exported."""
    memory = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(memory)], on_report=reports.append)
    asyncio.run(_calls(CALLS, 20))
    calls: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for span in memory.get_finished_spans():
        session_id = (span.attributes or {}).get("session.id")
        assert session_id is not None, f"{span.name} belongs to no call"
        if span.name == "job_shutdown":  # its own trace, linked to the call's
            (link,) = span.links
            calls[str(session_id)].append((span.name, link.context.trace_id))
            continue
        calls[str(session_id)].append((span.name, span.context.trace_id))
    return calls


def test_each_call_is_kept_whole_or_dropped_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", str(RATIO))
    reports: list[dict[str, Any]] = []
    calls = _run(reports)

    shapes = {frozenset(Counter(name for name, _ in spans).items()) for spans in calls.values()}
    assert len(shapes) == 1, "a kept call lost some of its spans"
    (shape,) = shapes
    names = dict(shape)
    assert names["agent_session"] == 1 and names["llm_request"] == 1 and names["tts_request"] == 1
    assert names["job_shutdown"] == 1  # the job's second trace follows the call's decision
    assert all(len({trace for _, trace in spans}) == 1 for spans in calls.values())

    # every call's report names its trace, kept or dropped
    report_traces = {r["session_id"]: r["trace_id"] for r in reports}
    assert len(report_traces) == CALLS and len(set(report_traces.values())) == CALLS
    for session_id, spans in calls.items():
        assert report_traces[session_id] == format(spans[0][1], "032x")

    kept = len(calls)
    mean, sigma = CALLS * RATIO, math.sqrt(CALLS * RATIO * (1 - RATIO))
    assert abs(kept - mean) <= 4 * sigma, (kept, mean, sigma)  # 4 sigma: 34..86 of 200
