"""The span index: bounded, per name, and a call's spans forgotten when the call ends."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_livekit.metrics.spans import SpanIndex


def provider_with(index: SpanIndex) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(index)
    return provider.get_tracer("test")


def test_spans_never_ended_are_bounded_oldest_first() -> None:
    index = SpanIndex(max_open=3)
    tracer = provider_with(index)
    spans = [tracer.start_span("llm_request", attributes={"n": i}) for i in range(5)]
    turn = tracer.start_span("user_turn")
    assert len(index) == 3
    kept = [i for i in range(5) if index.find_with("llm_request", "n", i) is not None]
    assert kept == [3, 4]  # the two oldest went first, then one more for the user_turn
    assert index.find_with("user_turn", "n", 0) is None
    assert index.find("user_turn", lambda s: True) is turn
    for span in spans:
        span.end()
    assert len(index) == 1


def test_lookups_stay_within_a_name_and_forget_a_finished_call() -> None:
    index = SpanIndex()
    tracer = provider_with(index)
    session = tracer.start_span("agent_session")
    ctx = trace.set_span_in_context(session)
    llm = tracer.start_span("llm_request", context=ctx, attributes={"gen_ai.response.id": "r1"})
    tts = tracer.start_span("tts_request", context=ctx)
    other = tracer.start_span("llm_request")  # another call, another trace
    assert index.find_with("llm_request", "gen_ai.response.id", "r1") is llm
    assert index.find_with("tts_request", "gen_ai.response.id", "r1") is None
    with trace.use_span(session):
        assert index.find_near("tts_request") is tts
        assert index.find_near("llm_request") is llm  # not the other call's
    assert index.find_near("llm_request") is None  # no current span: nothing near
    assert len(index) == 4
    session.end()  # the call ended: its never-ended request spans are dropped
    assert len(index) == 1
    assert index.find("llm_request", lambda s: True) is other
    for span in (llm, tts, other):
        span.end()
    assert len(index) == 0


def test_a_lookup_near_the_current_span_never_scans_the_other_calls() -> None:
    """Each metrics event looks up its call's span: scanning every open call's spans made an
    event's cost grow with the calls running beside it in the process."""
    index = SpanIndex()
    tracer = provider_with(index)
    mine = tracer.start_span("agent_session")
    with trace.use_span(mine):
        tts = tracer.start_span("tts_request")
    others = [tracer.start_span("agent_session") for _ in range(50)]
    other_tts = []
    for session in others:
        with trace.use_span(session):
            other_tts.append(tracer.start_span("tts_request", attributes={"lk.speech_id": "x"}))

    def untouchable() -> bool:
        raise AssertionError("looked at another call's span")

    for span in [*others, *other_tts]:
        span.is_recording = untouchable  # type: ignore[method-assign]
        span.__dict__["_attributes"] = None  # reading attributes would not find the speech id
    with trace.use_span(mine):
        assert index.find_near("agent_session") is mine
        assert index.find_near("tts_request") is tts
        assert index.find_near("tts_request", ("lk.speech_id", "x")) is None
    with trace.use_span(tts):
        assert index.find_near("tts_request") is tts
    tts.set_attribute("lk.speech_id", "mine")
    with trace.use_span(mine):
        assert index.find_with("tts_request", "lk.speech_id", "mine") is tts
    for span in [*others, *other_tts]:
        del span.is_recording
    mine.end()  # the call ended: only its own spans went
    assert len(index) == 100
