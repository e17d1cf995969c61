"""What ``setup_tracing()`` started in this process, in order, with one uninstall that
takes it back in reverse: a setup that fails half-way leaves no thread, hook or server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("otel_livekit")


class Installation:
    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], Any]]] = []

    def add(self, what: str, undo: Callable[[], Any]) -> None:
        """Register how to take back a piece, right after (or just before) it is started."""
        self._undo.append((what, undo))

    def uninstall(self) -> None:
        """Reverse order; never raises (a piece that fails to stop is logged and skipped)."""
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception:
                logger.debug("otel_livekit: could not take back the %s", what, exc_info=True)

    def __len__(self) -> int:
        return len(self._undo)
