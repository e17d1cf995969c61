"""``setup_tracing()``: the one place that builds providers and exporters and installs them
(the OTel globals, LiveKit's tracer, the job's shutdown flush)."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics import (
    MeterProvider,
)
from opentelemetry.sdk.metrics.export import (
    MetricReader,
)
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    SERVICE_VERSION,
    Resource,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.types import AttributeValue

from . import environment_variables as ev
from . import pipeline
from .config import DEFAULT_FLUSH_TIMEOUT, Config, SetupArgs, resolve, strict_policy
from .export.delivery.deadline import Deadline
from .export.delivery.health import (
    ExportHealth,
    quiet_repeated_exporter_logs,
)
from .export.delivery.self_metrics import register_self_metrics
from .export.delivery.spooling import Spooler
from .export.destinations.backends import ExportPlan
from .export.local.prometheus import active_endpoint, prometheus_readers
from .installation import Installation, installed
from .metrics.catalogue import METER_NAME, REPLACED_LIVEKIT_INSTRUMENTS, views
from .metrics.instruments import Instruments
from .metrics.livekit_meter import CatalogueMeterProvider
from .metrics.livekit_views import livekit_views
from .metrics.pricing import PriceSource
from .metrics.recorder import Recorder
from .metrics.spans import SpanIndex
from .sessions import features as session_features
from .sessions import hooks as session_hooks
from .sessions.langfuse import CallDefaults
from .sessions.report import ReportCallback

logger = logging.getLogger("otel_livekit")

DEFAULT_SERVICE_NAME = "livekit-agent"
ATTR_AGENT_NAME = "livekit.agent.name"
ATTR_DEPLOYMENT_ENVIRONMENT = "deployment.environment.name"

class Telemetry:
    """What ``setup_tracing()`` installed; flush it before the process ends."""

    def __init__(
        self,
        backend: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        health: Sequence[ExportHealth] = (),
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        recorder: Recorder | None = None,
        spooler: Spooler | None = None,
        installation: Installation | None = None,
    ) -> None:
        self.backend = backend
        self.spooler = spooler
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.health = tuple(health)
        self.flush_timeout = flush_timeout
        self.recorder = recorder
        self._installation = installation
        self._jobs_hooked: set[str] = set()
        self._closed = False
        self._deadline = Deadline(self.health)
        self._flush_spent = 0.0
        self._lost_at_flush = 0
        if self.enabled:
            atexit.register(self.shutdown)  # the providers' own exit hooks are off

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    @property
    def prometheus_url(self) -> str | None:
        """The standalone ``/metrics`` this process serves, if any."""
        endpoint = active_endpoint()
        return f"http://{endpoint.host}:{endpoint.port}/metrics" if endpoint else None

    @property
    def export_failures(self) -> dict[str, int]:
        """Failed export attempts per signal since setup, retries included, counted as
        they happen (0 when all went through)."""
        return self._per_signal(lambda h: h.failures)

    @property
    def not_delivered(self) -> dict[str, int]:
        """Items (spans, metric points) per signal whose export failed or was cut off."""
        return self._per_signal(lambda h: h.not_delivered)

    def _per_signal(self, figure: Callable[[ExportHealth], int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for h in self.health:
            out[h.signal] = out.get(h.signal, 0) + figure(h)
        return out

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export what is buffered; returns within ``timeout`` seconds (default
        ``flush_timeout``) even if a backend hangs, and never raises. False when anything
        was dropped since the last flush, or is still pending (left in the spool for a later
        delivery), on any destination."""
        budget = self.flush_timeout if timeout is None else timeout
        millis = int(budget * 1000)
        self._cut_spool(budget)
        flushes = [partial(p.force_flush, millis) for p in self._providers()]
        started = time.monotonic()
        spooled = [h.spooled for h in self.health]
        done = self._deadline.run("flush", budget, flushes)
        self._flush_spent = time.monotonic() - started
        self._say_what_waits(spooled, budget)
        lost = sum(h.not_delivered for h in self.health)
        pending = any(h.spooled > before for h, before in zip(self.health, spooled, strict=True))
        done = done and lost <= self._lost_at_flush and not pending
        self._lost_at_flush = lost
        if done and self.spooler is not None:
            self.spooler.cut_at(None)  # in time: later exports may wait for the backend again
        return done

    def _say_what_waits(self, spooled_before: list[int], budget: float) -> None:
        """A backend that hangs or answers too slowly is said out loud at the flush that met
        it, not when the attempt times out later (a LiveKit job has ended by then): what was
        left in the spool, for which destination, and where it waits. A destination whose
        failure was already logged (refused, down) is not repeated."""
        for h, before in zip(self.health, spooled_before, strict=True):
            waiting = h.spooled - before
            if waiting <= 0 or h.failing:
                continue
            unit = "spans" if h.signal == "traces" else "metric points"
            h.cut(f"no answer within {budget:.1f} s")
            where = h.failure_note("no answer") if h.failure_note else ""
            logger.warning("otel_livekit: %d %s not delivered to %s within the %.1f s flush "
                           "deadline (no answer in time)%s", waiting, unit, h.target, budget,
                           where)  # fmt: skip

    def _cut_spool(self, budget: float) -> None:
        """Exports still waiting for the backend shortly before the deadline leave their
        batch in the spool (already on disk) and return, so what is queued behind them is
        spooled too within the same budget."""
        if self.spooler is not None:
            self.spooler.cut_at(time.monotonic() + budget - min(0.25, budget / 5))

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and stop the exporters within ``timeout`` seconds; a later
        ``setup_tracing()`` builds anew. After a flush that the deadline cut short (its
        export still stuck), it does not wait again: the job has already spent its budget.
        Without ``timeout`` it gets what the last flush left of the one budget: a job-end
        flush and this shutdown take ``flush_timeout`` together, even when a slow backend
        answers every export just in time."""
        if self._closed:
            return
        self._closed = True
        budget = max(0.0, self.flush_timeout - self._flush_spent) if timeout is None else timeout
        if self._deadline.stuck:
            budget = 0.0  # still started, so the exporters stop retrying
        self._cut_spool(budget)
        # each provider's shutdown exports what its processors/readers still hold
        self._deadline.run("shutdown", budget, [p.shutdown for p in self._providers()], quiet=budget == 0.0)
        process = installed()
        with process.lock:
            if process.telemetry is self and self._installation is process:
                process.uninstall()  # hooks, features, endpoint, drainer; the providers are done

    def _providers(self) -> list[TracerProvider | MeterProvider]:
        return [p for p in (self.tracer_provider, self.meter_provider) if p is not None]

    def _hook_job_shutdown(self) -> None:
        """Flush at job shutdown, once per job (a job process can be reused across jobs)."""
        ctx = _job_context()
        if ctx is None or not self.enabled:
            return
        job_id = ctx.job.id
        if job_id in self._jobs_hooked:
            return
        self._jobs_hooked.add(job_id)
        timeout = self.flush_timeout

        async def otel_livekit_flush(reason: str) -> None:
            await asyncio.to_thread(self.force_flush, timeout)

        ctx.add_shutdown_callback(otel_livekit_flush)

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"Telemetry(backend={self.backend!r}, {state}, export_failures={self.export_failures})"


def _resource(
    env: Mapping[str, str],
    plan: ExportPlan,
    *,
    service_name: str | None,
    service_version: str | None,
    environment: str | None,
    agent_name: str | None,
    extra: Mapping[str, AttributeValue] | None,
) -> Resource:
    """Only caller-given attributes go in, so ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` keep working; defaults fill what nobody set."""
    attrs: dict[str, AttributeValue] = dict(plan.resource_attributes)
    attrs.update(extra or {})
    if service_name:
        attrs[SERVICE_NAME] = service_name
    if version := service_version or env.get(ev.OTEL_LIVEKIT_SERVICE_VERSION):
        attrs[SERVICE_VERSION] = version
    if environment := environment or env.get(ev.OTEL_LIVEKIT_ENVIRONMENT):
        attrs[ATTR_DEPLOYMENT_ENVIRONMENT] = environment
    if agent := agent_name or env.get(ev.OTEL_LIVEKIT_AGENT_NAME) or _job_agent_name():
        attrs[ATTR_AGENT_NAME] = agent
    resource = Resource.create(attrs)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    if plan.backend == "phoenix" and "openinference.project.name" not in resource.attributes:
        # Phoenix files spans under this project; name it after the service
        project = str(resource.attributes[SERVICE_NAME])
        resource = resource.merge(Resource({"openinference.project.name": project}))
    return resource


def _job_context() -> Any:
    try:
        from livekit.agents import get_job_context

        return get_job_context(required=False)
    except Exception:
        return None


def _job_agent_name() -> str | None:
    ctx = _job_context()
    name = getattr(getattr(ctx, "job", None), "agent_name", None) if ctx else None
    return name or None


def setup_tracing(
    backend: str | None = None,
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    agent_name: str | None = None,
    allow_pii: bool | None = None,
    metadata: Mapping[str, AttributeValue] | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    flush_timeout: float | None = None,
    slow_turn_seconds: float | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    prices: PriceSource = None,
    instrument_sessions: bool | None = None,
    content: str | bool | Sequence[str] | None = None,
    lean: str | bool | Sequence[str] | None = None,
    span_exporters: Mapping[str, SpanExporter] | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    trace_name: str | None = None,
    tags: Sequence[str] | None = None,
    langfuse_mapping: bool | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    on_report: ReportCallback | None = None,
    logs: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    prometheus_multiprocess: bool | None = None,
    spool: bool | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_bytes: int | None = None,
    strict: bool | None = None,
    **backend_options: str,
) -> Telemetry:
    """Install tracing and metrics for this process and return the handle.

    Every setting has an environment variable (docs/configuration.md); an argument wins over it.
    ``backend_options`` are the backend's variables in lower case, e.g.
    ``setup_tracing("langfuse", langfuse_host="https://us.cloud.langfuse.com")``.
    ``span_processors`` and ``metric_readers`` are added beside the backend's (tests, a
    Prometheus reader). ``prices`` overrides the cost table (a dict or a JSON path). Every
    ``AgentSession`` started afterwards is instrumented unless ``instrument_sessions`` (or
    ``OTEL_LIVEKIT_INSTRUMENT_SESSIONS``) is false. A second call returns the first handle
    and adds nothing. ``prometheus_port`` (``OTEL_LIVEKIT_PROMETHEUS_PORT``) serves the
    catalogue's metrics on a ``/metrics`` of our own, bound to ``prometheus_host``
    (default 127.0.0.1); ``prometheus_multiprocess`` (default: on when
    ``PROMETHEUS_MULTIPROC_DIR`` is set) feeds LiveKit's worker ``/metrics`` from job processes.

    Per call (see the README): ``content`` names the destinations that may receive
    conversation content (default none); ``span_exporters`` adds named destinations beside
    the backend; ``session_id``/``user_id``/``trace_name``/``tags`` override what every span
    of a call carries; ``lean`` names the span destinations that get the lean tree (default:
    Langfuse); ``langfuse_mapping`` adds the Langfuse keys for any backend;
    ``report_dir``/``on_report`` receive each session report; ``logs="otlp"`` exports logs.

    ``spool``, ``spool_dir`` and ``spool_max_bytes`` (``OTEL_LIVEKIT_SPOOL*``) govern the
    on-disk spool that keeps what the backend cannot take in time.

    Settings are resolved once, before anything is built (:mod:`otel_livekit.config`). A bad
    setting is handled by ``strict`` (``OTEL_LIVEKIT_STRICT``, default auto): strict — the
    default outside a LiveKit job — raises ConfigurationError listing every problem and
    leaves nothing installed; lenient — the default inside a job — logs each problem once at
    ERROR and uses its default (a destination that cannot work is switched off), so a
    telemetry mistake never fails the call. ``check_config()`` runs the same resolution at
    deploy time.
    """
    env = os.environ
    process = installed()
    with process.lock:
        if process.telemetry is not None:
            process.telemetry._hook_job_shutdown()
            return _handle(process)

        if ev.is_true(env.get(ev.OTEL_SDK_DISABLED)):
            logger.info("%s is true: otel_livekit installs nothing", ev.OTEL_SDK_DISABLED)
            process.telemetry = Telemetry("disabled")
            return _handle(process)

        args = SetupArgs(
            backend=backend, backend_options=backend_options, strict=strict, flush_timeout=flush_timeout,
            slow_turn_seconds=slow_turn_seconds, instrument_sessions=instrument_sessions, prices=prices,
            content=content, lean=lean, allow_pii=allow_pii,
            span_exporter_names=tuple(span_exporters or {}), has_span_processors=bool(span_processors),
            session_id=session_id, user_id=user_id, trace_name=trace_name, tags=tags,
            environment=environment, langfuse_mapping=langfuse_mapping, report_dir=report_dir,
            has_report_callback=on_report is not None, logs=logs, prometheus_port=prometheus_port,
            prometheus_host=prometheus_host, prometheus_multiprocess=prometheus_multiprocess,
            spool=spool, spool_dir=spool_dir, spool_max_bytes=spool_max_bytes,
        )  # fmt: skip
        try:
            config = resolve(args, env)
        except Exception as exc:  # a defect in resolution must not fail a call either
            if strict_policy(strict, env):
                raise
            logger.error("otel_livekit: could not read the configuration (%s); telemetry is off in "
                         "this process, the agent goes on", type(exc).__name__)  # fmt: skip
            process.telemetry = Telemetry("disabled")
            return _handle(process)
        config.report()  # strict: raises here, before anything is built
        try:
            telemetry = _build_and_install(
                config, process, env,
                service_name=service_name, service_version=service_version, agent_name=agent_name,
                resource_attributes=resource_attributes, metadata=metadata,
                span_exporters=span_exporters or {}, span_processors=span_processors,
                metric_readers=metric_readers, on_report=on_report,
            )  # fmt: skip
        except Exception as exc:
            process.uninstall()
            if config.strict:
                raise
            logger.error("otel_livekit: setup failed (%s: %s); telemetry is off in this process, "
                         "the agent goes on", type(exc).__name__, exc)  # fmt: skip
            process.telemetry = Telemetry("disabled")
            return _handle(process)
        process.commit()
        process.telemetry = telemetry
        telemetry._hook_job_shutdown()
        logger.info("otel_livekit: %r", telemetry)
        logger.info("otel_livekit: %s", config.policy.describe(list(config.destinations)))
        return telemetry


def _build_and_install(
    config: Config,
    installation: Installation,
    env: Mapping[str, str],
    *,
    service_name: str | None,
    service_version: str | None,
    agent_name: str | None,
    resource_attributes: Mapping[str, AttributeValue] | None,
    metadata: Mapping[str, AttributeValue] | None,
    span_exporters: Mapping[str, SpanExporter],
    span_processors: Sequence[SpanProcessor],
    metric_readers: Sequence[MetricReader],
    on_report: ReportCallback | None,
) -> Telemetry:
    """Build everything first (each piece registered with ``installation`` so a failure
    takes it all back), then touch process-wide state last."""
    plan = config.plan
    resource = _resource(
        env, plan, service_name=service_name, service_version=service_version,
        environment=config.environment, agent_name=agent_name, extra=resource_attributes,
    )  # fmt: skip
    mapping = config.langfuse_mapping
    defaults = CallDefaults(
        session_id=config.session_id, user_id=config.user_id, trace_name=config.trace_name,
        environment=config.environment, tags=config.tags,
        langfuse=mapping if mapping is not None else plan.backend == "langfuse",
    )  # fmt: skip
    features = session_features.configure(
        policy=config.policy, defaults=defaults, report_dir=config.report_dir, on_report=on_report,
        span_destinations=config.span_destinations,
    )
    quiet_repeated_exporter_logs(installation)
    span_index = SpanIndex()
    built = pipeline.build(
        config, env, resource, installation, span_index=span_index, features=features,
        resource_attributes=resource_attributes, span_exporters=span_exporters,
        span_processors=span_processors,
    )  # fmt: skip
    resource, tracer_provider, health = built.resource, built.tracer_provider, built.health
    meter_provider = CatalogueMeterProvider(
        resource=resource,
        metric_readers=[*built.readers, *prometheus_readers(config.prometheus), *metric_readers],
        views=[*livekit_views(REPLACED_LIVEKIT_INSTRUMENTS), *views()],
        shutdown_on_exit=False,
        replaced=REPLACED_LIVEKIT_INSTRUMENTS,
    )
    installation.add("meter provider", meter_provider.shutdown, build_only=True)
    recorder = Recorder(Instruments(meter_provider.get_meter(METER_NAME)), config.prices, span_index,
                        stt_generations=defaults.langfuse,
                        slow_turn_seconds=config.slow_turn_seconds)  # fmt: skip
    register_self_metrics(meter_provider.get_meter(METER_NAME), health)

    # process-wide state, last: nothing below raises on a good build
    session_features.install(installation, features, tracer_provider=tracer_provider, resource=resource,
                             mode=config.logs, log_exporter=built.log_exporter)  # fmt: skip
    session_hooks.install(installation, recorder, auto=config.instrument_sessions)
    # each destination strips content by its own rule, off the loop, and a processor added
    # from now on is put behind the `processors` rule: LiveKit's own filter on the loop
    # (allow_pii=False, ~1 ms a call at 32 calls) would only repeat that work
    tracer_provider.guard_later_processors(features.span_processor)
    _install_globals(tracer_provider, meter_provider, metadata)
    return Telemetry(
        plan.backend, tracer_provider, meter_provider, health, config.flush_timeout, recorder,
        built.spooler, installation,
    )


def _install_globals(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metadata: Mapping[str, AttributeValue] | None,
) -> None:
    # both globals are set-once: whoever sets first wins, so check who did
    trace_api.set_tracer_provider(tracer_provider)
    if trace_api.get_tracer_provider() is not tracer_provider:
        logger.warning(
            "a global tracer provider was already set; otel_livekit's provider serves LiveKit's spans only"
        )
    metrics_api.set_meter_provider(meter_provider)
    if metrics_api.get_meter_provider() is not meter_provider:
        logger.warning(
            "a global MeterProvider was already set before setup_tracing(); LiveKit's "
            "instruments keep recording there. Call setup_tracing() before session.start()."
        )

    from livekit.agents.telemetry import set_tracer_provider

    set_tracer_provider(tracer_provider, metadata=dict(metadata or {}) or None, allow_pii=True)


def _handle(process: Installation) -> Telemetry:
    handle: Telemetry = process.telemetry
    return handle


def current() -> Telemetry | None:
    """The handle installed in this process, if any."""
    return _handle(installed()) if installed().telemetry is not None else None
