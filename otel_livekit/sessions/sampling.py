"""Whole-call sampling across a job's traces.

LiveKit puts a call in one trace, but when ``setup_tracing()`` runs inside the entrypoint
the job's root (``job_entrypoint``) predates the provider, so ``job_shutdown`` and its
children (``on_session_end``, ``shutdown_callback``, ``room_disconnect``,
``session_end_upload``) start a trace of their own. A ratio sampler would keep or drop that
trace independently; this one gives a root span started in a job after the job's
``agent_session`` that session's decision (and ``CallAttributesProcessor`` links it to the
session span). Everything else goes to the configured sampler unchanged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .. import semconv as sc
from .calls import job_info


class WholeCallSampler(Sampler):
    def __init__(self, delegate: Sampler, max_jobs: int = 1024) -> None:
        self.delegate = delegate
        self._decisions: OrderedDict[str, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_jobs

    def should_sample(
        self,
        parent_context: context_api.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if trace.get_current_span(parent_context).get_span_context().is_valid:
            return result  # a child: the parent-based delegate already follows its trace
        job = job_info().get("job_id")
        if job is None:
            return result
        with self._lock:
            if name == sc.SPAN_AGENT_SESSION:
                self._decisions[job] = result.decision
                self._decisions.move_to_end(job)
                while len(self._decisions) > self._max:
                    self._decisions.popitem(last=False)
                return result
            decision = self._decisions.get(job)
        if decision is None or decision == result.decision:
            return result
        sampled = decision is Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, attributes if sampled else None, trace_state)

    def get_description(self) -> str:
        return f"WholeCall{{{self.delegate.get_description()}}}"
