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


def _unbound(callback: Callable[..., None] | None) -> tuple[Callable[..., None] | None, object | None]:
    """(function, its object) for a bound method, which would be one more object to keep."""
    func = getattr(callback, "__func__", None)
    return (func, getattr(callback, "__self__", None)) if func is not None else (callback, None)


class Listener:
    """``handler`` as an event callback: one argument, a precomputed signature, and, with
    ``on_error``, no exception into LiveKit's emitter (``on_error`` gets the handler's name).

    One slotted object per subscription, not a closure (function, its dict, cells, tuple)
    nor bound methods: a call's callbacks die with its session, which is collected as cyclic
    garbage, so every object kept here is one more for the process's full collection."""

    __slots__ = ("__name__", "_error", "_error_owner", "_handler", "_owner")
    __signature__ = ONE_ARGUMENT

    def __init__(self, handler: Callable[[Any], None], on_error: Callable[[str], None] | None = None) -> None:
        self.__name__ = getattr(handler, "__name__", "handler")
        self._handler, self._owner = _unbound(handler)
        self._error, self._error_owner = _unbound(on_error)

    def __call__(self, ev: Any) -> None:
        if self._error is None:
            self._run(ev)
            return
        try:
            self._run(ev)
        except Exception:
            if self._error_owner is None:
                self._error(self.__name__)
            else:
                self._error(self._error_owner, self.__name__)

    def _run(self, ev: Any) -> None:
        if self._owner is None:
            self._handler(ev)  # type: ignore[misc]
        else:
            self._handler(self._owner, ev)  # type: ignore[misc]
