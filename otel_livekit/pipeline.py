"""The one builder of the export chain, from the resolved :class:`~otel_livekit.config.Config`.

For every destination — the backend's traces and metrics, named span exporters, the user's
processors, OTLP logs — it puts together, in one place: the transport (``export.destinations.transport``),
the content rules (``sessions.content``), the spool or the direct sender, and the health
counting. ``telemetry`` keeps the handle and the facade; nothing here installs globals.

Per signal the chain is, from the SDK outwards:

    traces : BatchSpanProcessor → content rules → spool (Outbox) | direct sender | file | console
    metrics: PeriodicExportingMetricReader → slot continuation → spool | direct sender | file
    logs   : BatchLogRecordProcessor → the SDK's OTLP log exporter, every argument explicit
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import requests
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.util.types import AttributeValue

from . import environment_variables as ev
from .config import Config
from .export.delivery.direct import DirectMetricExporter, DirectSpanExporter
from .export.delivery.health import (
    CountingBatchSpanProcessor,
    ExportHealth,
    Prepare,
    ReportingMetricExporter,
    ReportingSpanExporter,
    wire_view,
)
from .export.delivery.http_client import HttpClient
from .export.delivery.spooling import Spooler, SpoolingMetricExporter, SpoolingSpanExporter
from .export.destinations.backends import Destination, FileTarget
from .export.destinations.instances import Slot, SlotMetricExporter, claim_slot
from .export.local.file import FileMetricExporter, FileSpanExporter
from .installation import Installation
from .metrics.spans import SpanIndex
from .sessions.content import GuardedTracerProvider
from .sessions.features import SessionFeatures
from .sessions.profile import LeanExporter, SpanLineage
from .sessions.sampling import WholeCallSampler

_D, _C = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
_TEMPORALITY: dict[str, dict[type, AggregationTemporality]] = {
    # OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the OTLP exporter spec defines it
    "cumulative": {Counter: _C, ObservableCounter: _C, Histogram: _C, UpDownCounter: _C,
                   ObservableUpDownCounter: _C, ObservableGauge: _C},
    "delta": {Counter: _D, ObservableCounter: _D, Histogram: _D, UpDownCounter: _C,
              ObservableUpDownCounter: _C, ObservableGauge: _C},
    "lowmemory": {Counter: _D, ObservableCounter: _C, Histogram: _D, UpDownCounter: _C,
                  ObservableUpDownCounter: _C, ObservableGauge: _C},
}  # fmt: skip


def temporality(config: Config, env: Mapping[str, str]) -> dict[type, AggregationTemporality]:
    """The standard variable wins over the backend preset's; an unknown value is cumulative
    (the SDK's reading of it)."""
    chosen = (env.get(ev.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE) or "").strip().lower()
    preset = config.plan.temporality or "cumulative"
    return dict(_TEMPORALITY.get(chosen or preset, _TEMPORALITY["cumulative"]))


@dataclass
class Pipeline:
    """What the builder made; ``telemetry`` turns it into the handle."""

    resource: Resource
    tracer_provider: GuardedTracerProvider
    readers: list[MetricReader]
    spooler: Spooler
    health: list[ExportHealth] = field(default_factory=list)
    log_exporter: LogRecordExporter | None = None


def build(
    config: Config,
    env: Mapping[str, str],
    resource: Resource,
    installation: Installation,
    *,
    span_index: SpanIndex,
    features: SessionFeatures,
    resource_attributes: Mapping[str, AttributeValue] | None,
    span_exporters: Mapping[str, SpanExporter],
    span_processors: Sequence[SpanProcessor],
) -> Pipeline:
    """Everything is registered with ``installation``, so a failure half-way takes it back."""
    slot = _instance_slot(config, resource_attributes, installation)
    if slot is not None:
        resource = resource.merge(Resource({SERVICE_INSTANCE_ID: slot.instance_id}))
    spooler = Spooler(config.spool)
    installation.add("spool senders", lambda: spooler.close(timeout=1.0), build_only=True)
    provider = GuardedTracerProvider(resource=resource, shutdown_on_exit=False)
    pipeline = Pipeline(resource, provider, [], spooler)
    _traces(pipeline, config, span_index, features, span_exporters, span_processors)
    installation.add("tracer provider", pipeline.tracer_provider.shutdown, build_only=True)
    installation.add("metric readers", lambda: [r.shutdown() for r in pipeline.readers], build_only=True)
    if (reader := _metric_reader(pipeline, config, env, slot)) is not None:
        pipeline.readers.append(reader)
    if (logs := config.transports.get("logs")) is not None and config.logs == "otlp":
        pipeline.log_exporter = OTLPLogExporter(**logs.exporter_arguments(requests.Session()))
    return pipeline


def _instance_slot(
    config: Config, resource_attributes: Mapping[str, AttributeValue] | None, installation: Installation
) -> Slot | None:
    """A slot only where metric streams churn (OTLP metrics) and nobody chose the id."""
    if not config.instances.enabled or "metrics" not in config.transports:
        return None
    if SERVICE_INSTANCE_ID in (resource_attributes or {}) or \
            SERVICE_INSTANCE_ID in OTELResourceDetector().detect().attributes:  # fmt: skip
        return None
    slot = claim_slot(config.instances)
    if slot is not None:
        installation.add("instance slot", slot.release)
    return slot


def _compact_span(span: ReadableSpan) -> str:
    ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    trace_id = format(span.context.trace_id, "032x")[:8] if span.context else "-"
    numbers = {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in (span.attributes or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    extra = " ".join(f"{k}={v}" for k, v in numbers.items())
    return f"[otel_livekit] span {span.name:<22} {ms:9.1f} ms trace={trace_id} {extra}\n"


def _traces(
    pipeline: Pipeline,
    config: Config,
    span_index: SpanIndex,
    features: SessionFeatures,
    span_exporters: Mapping[str, SpanExporter],
    span_processors: Sequence[SpanProcessor],
) -> None:
    """The index the recorder looks spans up in, the call's ids on every span, then each
    destination (the backend's, named extra exporters, the user's processors) behind its
    content rules. Sampler from OTEL_TRACES_SAMPLER, a job's traces sampled as one."""
    provider = pipeline.tracer_provider
    provider.sampler = WholeCallSampler(provider.sampler)
    provider.add_span_processor(span_index)
    provider.add_span_processor(features.processor)  # call ids on every span
    lineage = SpanLineage() if config.lean else None
    if lineage is not None:
        provider.add_span_processor(lineage)

    def lean(destination: str) -> SpanLineage | None:
        """The span tree a lean destination's profile is cut from (None: the full profile)."""
        return lineage if destination in config.lean else None

    def view(inner: SpanExporter, destination: str, health: ExportHealth) -> SpanExporter:
        """The destination's span profile (lean or full), then its content rules."""
        exporter = features.exporter(inner, destination)
        if (tree := lean(destination)) is not None:
            exporter = LeanExporter(exporter, tree, health)
        return exporter

    def wired(destination: str) -> Prepare | None:
        """An OTLP destination's spans queued as wire bytes, its view applied at their end;
        a lean profile is shaped at export, from the whole tree, so it queues spans."""
        return None if lean(destination) is not None else wire_view(features.view(destination))

    if (processor := _backend_spans(pipeline, config, view, wired)) is not None:
        provider.add_span_processor(processor)
    for name, span_exporter in span_exporters.items():
        h = ExportHealth("traces", name)
        pipeline.health.append(h)
        wrapped = ReportingSpanExporter(view(span_exporter, name, h), h)
        provider.add_span_processor(CountingBatchSpanProcessor(wrapped, h, config.span_batch_size))
    for extra in span_processors:
        provider.add_span_processor(features.span_processor(extra))


View = Callable[[SpanExporter, str, ExportHealth], SpanExporter]


def _backend_spans(pipeline: Pipeline, config: Config, view: View,
                   wired: Callable[[str], Prepare | None]) -> SpanProcessor | None:  # fmt: skip
    plan = config.plan
    if plan.traces is None:
        return None
    h = ExportHealth("traces", f"{plan.backend} (stderr)")
    pipeline.health.append(h)
    exporter: SpanExporter
    if isinstance(plan.traces, Destination):
        transport = config.transports["traces"]
        h.target = f"{plan.backend} ({transport.endpoint})"
        client = HttpClient(transport, h.attempt)
        prepare = wired(plan.backend)
        if (outbox := pipeline.spooler.outbox(transport, client, h)) is not None:
            exporter = SpoolingSpanExporter(outbox)
            exporter = exporter if prepare else view(exporter, plan.backend, h)
            return CountingBatchSpanProcessor(exporter, h, config.span_batch_size, prepare)
        exporter = DirectSpanExporter(transport, client)
        exporter = exporter if prepare else view(exporter, plan.backend, h)
        return CountingBatchSpanProcessor(ReportingSpanExporter(exporter, h, http=True), h,
                                          config.span_batch_size, prepare)  # fmt: skip
    if isinstance(plan.traces, FileTarget):
        exporter = file_spans = FileSpanExporter(plan.traces.path)
        h.target = f"file ({plan.traces.path})"
        h.reason = lambda: file_spans.last_error
    else:
        exporter = ConsoleSpanExporter(out=sys.stderr, formatter=_compact_span)
    return CountingBatchSpanProcessor(ReportingSpanExporter(view(exporter, plan.backend, h), h), h,
                                      config.span_batch_size)


def _metric_reader(
    pipeline: Pipeline, config: Config, env: Mapping[str, str], slot: Slot | None
) -> MetricReader | None:
    plan = config.plan
    if plan.metrics is None:
        return None
    if isinstance(plan.metrics, FileTarget):
        h = ExportHealth("metrics", f"file ({plan.metrics.path})")
        for other in pipeline.health:
            if other.target == h.target:  # one file: one failure line for traces and metrics
                other.share_line(h)
        pipeline.health.append(h)
        file_metrics = FileMetricExporter(plan.metrics.path)
        h.reason = lambda: file_metrics.last_error
        return PeriodicExportingMetricReader(ReportingMetricExporter(file_metrics, h))
    chosen = temporality(config, env)
    transport = config.transports["metrics"]
    h = ExportHealth("metrics", f"{plan.backend} ({transport.endpoint})")
    pipeline.health.append(h)
    client = HttpClient(transport, h.attempt)
    outer: MetricExporter
    if (outbox := pipeline.spooler.outbox(transport, client, h)) is not None:
        outer = SpoolingMetricExporter(outbox, chosen)
    else:
        direct = DirectMetricExporter(transport, client, chosen)
        outer = ReportingMetricExporter(direct, h, http=True, temporality=chosen)
    if slot is not None:  # the slot's streams continued before encoding or spooling
        outer = SlotMetricExporter(outer, slot.series, chosen)
    # the reader reads OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT itself
    return PeriodicExportingMetricReader(outer)
