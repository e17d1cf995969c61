"""What ``setup_tracing()`` put in place in this process: the one home of process-wide
state (the handle, the recorder, the per-call features, the ``AgentSession.start`` patch,
the Prometheus endpoint, the sample drainer), with one uninstall that takes it back in
reverse order — so a setup that fails half-way, or a shutdown, leaves no thread, hook or
server behind."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("otel_livekit")


class Installation:
    """A leaf: every module may reach it, it imports none of them (so its pieces are typed
    ``Any`` here; each owner reads its own piece back with its type)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.telemetry: Any = None
        """The ``Telemetry`` handle setup returned."""
        self.recorder: Any = None
        """The recorder sessions use (setup's, or one on the global meter for sessions
        instrumented by hand without setup)."""
        self.features: Any = None
        """The per-call ``SessionFeatures``."""
        self.original_start: Any = None
        """``AgentSession.start`` before the patch that instruments every session."""
        self.endpoint: Any = None
        """The standalone Prometheus ``/metrics`` server (one per process at most)."""
        self.sessions: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        """Each instrumented session's instrumentation, released with the session."""
        self._undo: list[tuple[str, Callable[[], Any], bool]] = []

    def add(self, what: str, undo: Callable[[], Any], *, build_only: bool = False) -> None:
        """Register how to take back a piece, right after (or just before) it is started.
        ``build_only``: only a failed setup undoes it (after :meth:`commit` the handle's
        deadline-bound shutdown owns it — the providers)."""
        with self.lock:
            self._undo.append((what, undo, build_only))

    def commit(self) -> None:
        """Setup succeeded: keep only what :meth:`uninstall` takes back at shutdown."""
        with self.lock:
            self._undo = [entry for entry in self._undo if not entry[2]]

    def uninstall(self) -> None:
        """Reverse order; never raises (a piece that fails to stop is logged and skipped)."""
        with self.lock:
            undo, self._undo = self._undo, []
            self.telemetry = None
        while undo:
            what, take_back, _ = undo.pop()
            try:
                take_back()
            except Exception:
                logger.debug("otel_livekit: could not take back the %s", what, exc_info=True)


_INSTALLED = Installation()


def installed() -> Installation:
    """This process's installation (empty until ``setup_tracing()``)."""
    return _INSTALLED
