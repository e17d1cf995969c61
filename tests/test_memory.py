"""Nothing of a call is kept after it ends: many real sessions in one process leave no
AgentSession, no per-session state and no span index entry behind."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from livekit.agents import AgentSession
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_livekit import instrumentation_of, setup_tracing
from otel_livekit.offline import run_offline_session


def test_closed_sessions_and_their_state_are_freed() -> None:
    t = setup_tracing("none", metric_readers=[InMemoryMetricReader()])
    sessions: list[weakref.ref[AgentSession[Any]]] = []
    states: list[weakref.ref[object]] = []

    def keep_refs(session: AgentSession[Any]) -> None:
        sessions.append(weakref.ref(session))

    def orphan_request(session: AgentSession[Any]) -> None:
        # a request span whose task died without ending it (cancelled work) in this call
        assert t.recorder is not None and t.recorder.spans is not None
        call = t.recorder.spans.find("agent_session", lambda s: True)
        assert call is not None
        trace.get_tracer("test").start_span("llm_request", context=trace.set_span_in_context(call))

    def after_close(session: AgentSession[Any]) -> None:
        inst = instrumentation_of(session)
        assert inst is not None and inst.summary is not None  # readable until the call is dropped
        states.append(weakref.ref(inst))

    async def calls() -> None:
        for i in range(12):
            await run_offline_session(
                text_turns=("hello",), audio_turns=1 if i % 4 == 0 else 0,
                job_id=f"job-{i}", before_start=keep_refs, before_close=orphan_request,
                after_close=after_close,
            )  # fmt: skip

    asyncio.run(calls())
    gc.collect()
    assert len(sessions) == len(states) == 12
    assert [r for r in sessions if r() is not None] == []
    assert [r for r in states if r() is not None] == []
    assert t.recorder is not None and t.recorder.spans is not None
    assert len(t.recorder.spans) == 0
