"""The one exception otel_livekit raises, and only at setup."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Bad or missing configuration, found at setup; the message names what to fix.
    ``variable`` is the setting at fault when there is one (the resolution replaces it by
    its default under the lenient policy)."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
