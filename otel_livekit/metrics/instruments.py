"""The live instruments behind the catalogue: histograms whose samples are aggregated
off the agent's event loop, and counters summed in-process and observed at collection."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.util.types import Attributes, AttributeValue

from .catalogue import CATALOGUE

logger = logging.getLogger("otel_livekit")


class Sum:
    """A counter summed in-process and read by the SDK at collection time.

    The recorder adds on the agent's event loop; a synchronous OTel counter would run the
    SDK's measurement pipeline (attribute cleaning, hashing, exemplar offer) on every add.
    Here an add is a dict update, and the SDK sees one observation per series per export,
    on its own thread. Exported exactly like a counter (a monotonic Sum, ``_total`` in
    Prometheus), or an up-down counter for ``monotonic=False``.
    """

    def __init__(self) -> None:
        self._values: dict[tuple[tuple[str, AttributeValue], ...], float] = {}
        self._lock = threading.Lock()

    def add(self, amount: float, attributes: Attributes = None) -> None:
        key = tuple(attributes.items()) if attributes else ()  # merged across key orders in observe
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            values = list(self._values.items())
        merged: dict[tuple[tuple[str, AttributeValue], ...], float] = {}
        for key, value in values:  # the same attributes added in another key order
            canonical = tuple(sorted(key))
            merged[canonical] = merged.get(canonical, 0) + value
        return [Observation(value, dict(key)) for key, value in merged.items()]


class PendingSamples:
    """Histogram samples waiting to be aggregated, off the agent's event loop.

    Recording a sample through the SDK costs microseconds of attribute cleaning, hashing
    and bucketing; on the event loop the recorder only appends to this bounded queue. A
    background thread aggregates every ``interval`` seconds, and every collection drains
    it first (a callback of the catalogue's observable counters), so readers and exporters
    never miss a sample recorded before they collect. When full, new samples are dropped
    and counted, never blocking the agent.
    """

    def __init__(self, max_items: int = 100_000, interval: float = 0.25) -> None:
        self._queue: deque[tuple[Histogram, float, Attributes, Context]] = deque()
        self.max_items = max_items
        self.interval = interval
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._draining = threading.Lock()
        self._pid = os.getpid()

    def put(self, histogram: Histogram, value: float, attributes: Attributes, context: Context) -> None:
        if len(self._queue) >= self.max_items:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("otel_livekit: histogram samples arrive faster than they are "
                               "aggregated; dropping (counted in PendingSamples.dropped)")  # fmt: skip
            return
        self._queue.append((histogram, value, attributes, context))
        thread = self._thread
        if thread is None or not thread.is_alive():  # first sample, or a forked child
            self._start()

    def drain(self, options: CallbackOptions | None = None) -> Iterable[Observation]:
        """Aggregate everything queued (safe from any thread; each sample once).

        One drain at a time: a collection waits for the aggregating thread's sample in hand,
        so it never misses one queued before it, and every reader of the MeterProvider gets
        the samples in one order (float sums equal to the last bit across readers)."""
        if self._pid != os.getpid():  # forked while another thread held the lock: a new one
            self._draining, self._pid = threading.Lock(), os.getpid()
        with self._draining:
            pop = self._queue.popleft
            for _ in range(len(self._queue)):  # what is queued now: a busy loop cannot hold it
                try:
                    histogram, value, attributes, context = pop()
                except IndexError:
                    break
                try:
                    histogram.record(value, attributes, context=context)
                except Exception:  # a bad sample must not stop the others
                    logger.debug("otel_livekit: dropped a histogram sample", exc_info=True)
        return ()

    def __len__(self) -> int:
        return len(self._queue)

    def _start(self) -> None:
        if self._closed.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="otel_livekit-aggregate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            self.drain()

    def close(self) -> None:
        """Stop the aggregating thread (setup taken back or shut down); what is queued is
        still drained by the next collection."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(1.0)


class Instruments:
    """One OTel instrument per catalogue row, created from a meter: histogram samples are
    aggregated off the event loop (:class:`PendingSamples`), counters are :class:`Sum`
    behind an observable counter."""

    def __init__(self, meter: Meter) -> None:
        self._by_name: dict[str, Any] = {}
        self.pending = PendingSamples()
        for spec in CATALOGUE:
            if not spec.recorded:
                continue
            if spec.kind == "histogram":
                histogram = meter.create_histogram(
                    spec.name,
                    unit=spec.unit,
                    description=spec.description,
                    explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
                )
                inst: Any = histogram  # recorded through self.pending, off the event loop
            else:
                inst = Sum()
                create = (
                    meter.create_observable_counter
                    if spec.kind == "counter"
                    else meter.create_observable_up_down_counter
                )
                # the drain runs first: every sample queued before a collection is in it
                create(spec.name, callbacks=[self.pending.drain, inst.observe], unit=spec.unit,
                       description=spec.description)  # fmt: skip
            self._by_name[spec.name] = inst

    def histogram(self, name: str) -> Histogram:
        """The SDK histogram; samples go through ``pending.put`` (aggregated off the loop)."""
        inst: Histogram = self._by_name[name]
        return inst

    def counter(self, name: str) -> Sum:
        inst: Sum = self._by_name[name]
        return inst
