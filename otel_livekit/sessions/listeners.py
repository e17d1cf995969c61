"""Callbacks for LiveKit's ``EventEmitter`` that are cheap for it to call.

``EventEmitter.emit`` runs ``inspect.signature`` on every callback for every event, to pass
only as many arguments as the callback takes: about 10 µs for a bound method or a wrapped
function, on the agent's event loop, for each of the few dozen events of a call that reach
us. A callback that carries its ``__signature__`` (PEP 362) is answered in about 1 µs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

ONE_ARGUMENT = inspect.Signature([inspect.Parameter("ev", inspect.Parameter.POSITIONAL_ONLY)])


def listener(
    handler: Callable[[Any], None], on_error: Callable[[str], None] | None = None
) -> Callable[[Any], None]:
    """``handler`` as an event callback: one argument, a precomputed signature, and, with
    ``on_error``, no exception into LiveKit's emitter (``on_error`` gets the handler's name)."""
    name = getattr(handler, "__name__", "handler")

    def run(ev: Any) -> None:
        if on_error is None:
            handler(ev)
            return
        try:
            handler(ev)
        except Exception:
            on_error(name)

    run.__name__ = run.__qualname__ = name
    run.__signature__ = ONE_ARGUMENT  # type: ignore[attr-defined]
    return run
