"""Cardinality: the number of metric series does not grow with the number of sessions, and
no per-call id (room, job, speech, request) reaches a metric attribute."""

from __future__ import annotations

import asyncio
import re

from metric_points import Points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_livekit import setup_tracing
from otel_livekit.metrics.catalogue import BY_NAME
from otel_livekit.offline import run_offline_session

ID = re.compile(r"^(?:RM_|job-|speech_|chatcmpl_|tts_|stt_|item_|call_)\w*\d")
"""LiveKit's ids: a prefix and a generated tail (``tts_ttfb``, a budget part, is no id)."""


def series_and_values(reader: InMemoryMetricReader) -> tuple[int, set[str]]:
    data = reader.get_metrics_data()
    values: set[str] = set()
    series = 0
    for scope in ("otel_livekit", "livekit-agents"):
        points = Points(data, scope=scope)
        series += points.series()
        for pts in points.by_name.values():
            for p in pts:
                values.update(str(v) for v in p.attributes.values())
                values.update(p.attributes.keys())
    return series, values


def test_fifty_sessions_do_not_add_series() -> None:
    reader = InMemoryMetricReader()
    setup_tracing("none", metric_readers=[reader])
    counts: dict[int, int] = {}

    async def many() -> None:
        for i in range(1, 51):
            run = await run_offline_session(text_turns=("hello",), audio_turns=0,
                                            job_id=f"job-{i}")  # fmt: skip
            assert run.assistant_messages == 1
            if i in (5, 50):
                counts[i] = series_and_values(reader)[0]

    asyncio.run(many())
    series, values = series_and_values(reader)
    assert counts[5] == counts[50] == series, counts
    assert series > 10  # something was recorded
    leaked = sorted(v for v in values if ID.match(v) or v in {"room_id", "job_id"})
    assert not leaked, leaked
    # only the catalogue's attribute keys, instrument by instrument
    for name, points in Points(reader.get_metrics_data(), scope="otel_livekit").by_name.items():
        for p in points:
            assert set(p.attributes) <= set(BY_NAME[name].attributes), (name, dict(p.attributes))
