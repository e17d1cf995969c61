"""Real sessions that touch every catalogue instrument, recorded through our Prometheus sink
and, on the same MeterProvider, the OTel SDK's own ``PrometheusMetricReader`` (the
reference for names, types, units, label keys and buckets)."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import rtc
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from test_session_metrics import PRICES, inject_other_events

from otel_livekit import Telemetry, setup_tracing
from otel_livekit.export.local.prometheus_names import sample_names
from otel_livekit.metrics.catalogue import CATALOGUE
from otel_livekit.offline import OfflineLLM, OfflineSTT, OfflineTTS, run_offline_session

SCOPE_LABEL_PREFIX = "otel_scope_"
CATALOGUE_SAMPLES = {name for spec in CATALOGUE for name in sample_names(spec)}
SCOPE_OF = {name: spec.meter for spec in CATALOGUE for name in sample_names(spec)}
"""The meter each sample comes from: ours, or LiveKit's for its own instruments we expose."""


def run_reference_sessions(registry: CollectorRegistry, **setup: Any) -> Telemetry:
    """The rich session of test_session_metrics (tools, audio turn, interrupted say, every
    other event type through the session's emitter) and a batch-STT audio session."""
    # a named span destination, so the export self-metrics have series too
    telemetry = setup_tracing("none", metric_readers=[PrometheusMetricReader(registry=registry)],
                              span_exporters={"reference": InMemorySpanExporter()},
                              prices=PRICES, slow_turn_seconds=0.5, **setup)  # fmt: skip

    def listen(session: Any) -> None:
        rtc.EventEmitter.on(session, "metrics_collected", lambda ev: None)  # type: ignore[arg-type]

    asyncio.run(run_offline_session(
        text_turns=("hello", "what's the weather?", "book a flight"), audio_turns=1,
        llm_=OfflineLLM(ttft=0.2), tts_=OfflineTTS(ttfb=0.11), before_start=listen,
        interrupted_say="This is a long announcement. " * 20, before_close=inject_other_events,
    ))  # fmt: skip
    asyncio.run(run_offline_session(text_turns=(), audio_turns=1,
                                    stt_=OfflineSTT(streaming=False, latency=0.15)))  # fmt: skip
    telemetry.force_flush()  # every span exported: the self-metrics hold still for the scrapes
    return telemetry


Sample = tuple[str, str, tuple[tuple[str, str], ...], float]
"""(family type, sample name, sorted labels with ``le`` as a float string, value)."""


def samples(exposition: str, *, scope_only: bool) -> set[Sample]:
    """Every catalogue sample of a text exposition. ``scope_only``: keep the SDK reader's
    samples of the meter each catalogue row comes from (it also shows LiveKit's other
    instruments, and same-named ones of other meters) and drop its
    ``otel_scope_*`` labels. ``le`` compares as a number: prometheus-client's multiprocess
    collector writes ``1.0`` where the SDK writes ``1``."""
    out: set[Sample] = set()
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name not in CATALOGUE_SAMPLES:
                continue
            if scope_only and s.labels.get("otel_scope_name") != SCOPE_OF[s.name]:
                continue
            labels = tuple(sorted(
                (k, repr(float(v)) if k == "le" else v) for k, v in s.labels.items()
                if not k.startswith(SCOPE_LABEL_PREFIX)
            ))  # fmt: skip
            out.add((family.type, s.name, labels, s.value))
    return out


def shape(found: set[Sample]) -> set[tuple[str, str, tuple[str, ...], str]]:
    """Names, types, label keys and bucket bounds only (values aside)."""
    return {(t, name, tuple(k for k, _ in labels), dict(labels).get("le", ""))
            for t, name, labels, _ in found}  # fmt: skip
