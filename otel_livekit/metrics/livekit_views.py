"""SDK Views that fix LiveKit's own metric instruments without patching LiveKit.

livekit-agents records on the global meter ``livekit-agents`` with per-call attributes
(``room_id``, ``job_id``, agent and deployment ids) and no bucket advice. These Views keep
only low-cardinality attribute keys and give the seconds histograms voice-sized buckets.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from .buckets import GENAI_DURATION_SECONDS, GENAI_TOKENS, LATENCY_SECONDS

LIVEKIT_METER = "livekit-agents"

_MODEL = frozenset({"model_name", "model_provider"})
_GENAI = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.token.type",
        "gen_ai.tool.name",
        "gen_ai.agent.name",
        "error.type",
    }
)

# instrument name pattern -> (allowed attribute keys, bucket boundaries or None)
LIVEKIT_INSTRUMENTS: dict[str, tuple[frozenset[str], tuple[float, ...] | None]] = {
    "lk.agents.turn.*": (_MODEL, LATENCY_SECONDS),
    "lk.agents.usage.*": (_MODEL, None),
    "lk.agents.connection.acquire_time": (_MODEL | {"connection_reused"}, LATENCY_SECONDS),
    "lk.agents.event_loop.blocked_duration": (frozenset({"severity"}), LATENCY_SECONDS),
    "gen_ai.client.token.usage": (_GENAI, GENAI_TOKENS),
    "gen_ai.client.operation.*": (_GENAI, GENAI_DURATION_SECONDS),
    "gen_ai.execute_tool.duration": (_GENAI, LATENCY_SECONDS),
    "gen_ai.invoke_agent.duration": (_GENAI, LATENCY_SECONDS),
}
"""Every instrument livekit-agents 1.8 records; patterns never overlap (an instrument
matched by two Views would be exported twice)."""


def livekit_views(replaced: Iterable[str] = ()) -> list[View]:
    """Views for LiveKit's instruments. The ``replaced`` patterns get none: LiveKit holds
    no-op instruments for them (``CatalogueMeterProvider``), so nothing reaches a View."""
    skipped = set(replaced)
    return [
        View(
            meter_name=LIVEKIT_METER,
            instrument_name=pattern,
            attribute_keys=set(keys),
            aggregation=ExplicitBucketHistogramAggregation(buckets) if buckets else None,
        )
        for pattern, (keys, buckets) in LIVEKIT_INSTRUMENTS.items()
        if pattern not in skipped
    ]
