"""One deadline for the job-end flush and shutdown, whatever the backends do.

Each provider's flush (or shutdown) runs on its own daemon thread, in parallel, and the
caller waits at most the budget in all: an exporter stuck in its own retry loop must not
hold the agent's shutdown, nor one hung backend starve the other signal. A flush the
deadline cut short is not waited for again, and one log line says what was not delivered
and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from .health import ExportHealth

logger = logging.getLogger("otel_livekit")


class Deadline:
    def __init__(self, health: Sequence[ExportHealth]) -> None:
        self.health = health
        self._stuck: list[threading.Thread] = []

    @property
    def stuck(self) -> bool:
        """An earlier run is still waiting on an export the deadline cut short."""
        return any(t.is_alive() for t in self._stuck)

    def run(self, what: str, budget: float, targets: Sequence[Callable[[], object]],
            quiet: bool = False) -> bool:  # fmt: skip
        """True when every target finished within ``budget`` seconds and none failed."""
        if what == "flush" and self.stuck:
            self.report_cut(what, budget, "an earlier export is still stuck")
            return False
        results: list[bool] = []

        def call(fn: Callable[[], object]) -> None:
            try:
                results.append(fn() is not False)
            except Exception as exc:  # e.g. the SDK's own flush timeout: not a crash
                logger.debug("telemetry %s: %s", what, exc)
                results.append(False)

        threads = [threading.Thread(target=call, args=(fn,), name=f"otel_livekit-{what}", daemon=True)
                   for fn in targets]  # fmt: skip
        deadline = time.monotonic() + budget
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stuck = [t for t in threads if t.is_alive()]
        if self._stuck:
            if not quiet:
                self.report_cut(what, budget)
            return False
        return all(results)

    def report_cut(self, what: str, budget: float, why: str | None = None) -> None:
        lost = []
        for h in self.health:
            pending = h.write_off()
            if pending:
                unit = "spans" if h.signal == "traces" else "points"
                reason = why or h.last_error or "no answer yet"
                lost.append(f"{h.signal}: about {pending} {unit} not delivered to {h.target} ({reason})")
        if lost:
            logger.warning("otel_livekit: telemetry %s cut short at its %.1f s deadline; %s",
                           what, budget, "; ".join(lost))  # fmt: skip
