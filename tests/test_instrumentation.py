"""How the recorder attaches, the catalogue's own rules, and the price table."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from metric_points import Points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_livekit import CATALOGUE, ConfigurationError, instrument_session, load_prices, setup_tracing
from otel_livekit.metrics.buckets import LATENCY_SECONDS
from otel_livekit.offline import run_offline_session

FORBIDDEN = re.compile(r"(room|job|participant|speech|request|session)[._]?id|conversation")


def test_catalogue_rules() -> None:
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))
    for spec in CATALOGUE:
        assert not re.search(r"(_|\.)(seconds|ms|millis|usd|total|count)$", spec.name), spec.name
        assert spec.unit and spec.description
        assert all(not FORBIDDEN.search(a) for a in spec.attributes), spec
        if spec.kind == "histogram":
            assert spec.buckets and list(spec.buckets) == sorted(spec.buckets), spec.name
        if spec.unit == "s" and spec.kind == "histogram" and spec.name.startswith("voice_agent.turn"):
            assert spec.buckets == LATENCY_SECONDS
    assert LATENCY_SECONDS[0] == 0.01 and LATENCY_SECONDS[-1] == 10.0
    assert sum(1 for b in LATENCY_SECONDS if b < 1.0) >= 12  # sub-second resolution


def test_sessions_are_instrumented_without_code_and_without_deprecation_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    setup_tracing("none", metric_readers=[reader])
    caplog.set_level(logging.WARNING)
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    p = Points(reader)
    assert p.value("voice_agent.sessions.started") == 1
    assert p.count("voice_agent.turn.latency") == 1
    assert "deprecated" not in caplog.text.lower()


def test_opt_out_then_instrument_session_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LIVEKIT_INSTRUMENT_SESSIONS", "false")
    reader = InMemoryMetricReader()
    setup_tracing("none", metric_readers=[reader])
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0))
    assert Points(reader).count("voice_agent.turn.latency") == 0
    calls: list[Any] = []

    def manual(session: Any) -> None:
        calls.append(instrument_session(session))
        assert instrument_session(session) is calls[0]  # idempotent

    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, before_start=manual))
    p = Points(reader)
    assert p.count("voice_agent.turn.latency") == 1
    assert p.value("voice_agent.sessions.started") == 1


def test_price_table_file_override_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = load_prices()
    assert shipped.llm_cost("openai", "gpt-4o-mini", input_tokens=1_000_000, output_tokens=0) == (
        pytest.approx(0.15)
    )
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "llm": {"openai/gpt-4o-mini": {"input": 1.0, "output": 1.0}},
                "stt": {"acme/ears": {"per_minute": 0.5}},
            }
        )
    )
    table = load_prices(None, {"OTEL_LIVEKIT_PRICES": str(path)})
    assert table.llm_cost("openai", "gpt-4o-mini", input_tokens=1_000_000, output_tokens=0) == 1.0
    assert table.stt_cost("acme", "ears", 120) == 1.0
    assert table.tts_cost("nobody", "nothing", 100) is None  # unknown: no guess
    assert table.llm_cost("api.openai.com", "gpt-4o", input_tokens=0, output_tokens=1_000_000) == (
        pytest.approx(10.0)
    )  # provider spelled differently: the model still matches
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="OTEL_LIVEKIT_PRICES"):
        load_prices(None, {"OTEL_LIVEKIT_PRICES": str(path)})
    with pytest.raises(ConfigurationError, match="unknown field"):
        load_prices({"tts": {"a/b": {"per_char": 1}}})
    monkeypatch.setenv("OTEL_LIVEKIT_PRICES", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="OTEL_LIVEKIT_PRICES"):
        setup_tracing("none")


def test_every_session_callback_is_cheap_for_livekits_emitter() -> None:
    """LiveKit's ``EventEmitter.emit`` runs ``inspect.signature`` on each callback for each
    event, on the agent's loop: each of ours carries its signature (PEP 362), so that costs
    ~1 µs instead of ~10, and a call's events still reach every handler."""
    import inspect

    setup_tracing("none", report_dir=None)
    ours: list[Any] = []

    def collect(session: Any) -> None:
        instrument_session(session)
        ours.extend(cb for event in session._events.values() for cb in event
                    if (getattr(cb, "__module__", "") or "").startswith("otel_livekit.sessions"))  # fmt: skip

    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, before_start=collect))
    assert len(ours) >= 10, ours  # the instrumentation's and the per-call features' handlers
    slow = [cb for cb in ours if getattr(cb, "__signature__", None) is None]
    assert not slow, slow
    assert all(list(inspect.signature(cb).parameters) == ["ev"] for cb in ours)
    # one slotted object each: no closure, cells or attribute dict left for the collector
    # when the session's cycle is collected
    assert all(not hasattr(cb, "__dict__") and not hasattr(cb, "__closure__") for cb in ours)


def test_a_failing_listener_is_reported_by_name_and_never_raises_into_the_emitter() -> None:
    from livekit import rtc

    from otel_livekit.sessions.listeners import Listener

    def _on_item(ev: Any) -> None:
        raise ValueError(ev)

    failures: list[str] = []
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    emitter.on("conversation_item_added", Listener(_on_item, failures.append))
    emitter.emit("conversation_item_added", "item")
    assert failures == ["_on_item"]
    with pytest.raises(ValueError):
        Listener(_on_item)("item")  # without on_error, the handler's own guard is all there is


def test_one_metrics_collected_subscriber_per_session_and_shutdown_takes_every_hook_back() -> None:
    """The recorder and the per-call features hear metrics_collected through one handler;
    shutdown restores AgentSession.start, clears the features and stops the drainer."""
    from livekit.agents import AgentSession

    from otel_livekit.installation import installed

    original_start = AgentSession.start
    reader = InMemoryMetricReader()
    telemetry = setup_tracing("none", metric_readers=[reader], report_dir=None)
    counts: list[int] = []

    def count(session: Any) -> None:
        instrument_session(session)
        counts.append(len(session._events.get("metrics_collected", {})))

    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, before_start=count))
    assert counts == [1]
    process = installed()
    assert process.features is not None and AgentSession.start is not original_start
    pending = telemetry.recorder.instruments.pending if telemetry.recorder else None
    assert pending is not None and pending._thread is not None and pending._thread.is_alive()
    telemetry.shutdown(timeout=1.0)
    assert AgentSession.start is original_start
    assert process.features is None and process.recorder is None and process.telemetry is None
    assert not pending._thread.is_alive()
