"""The one exception otel_livekit raises, and only at setup."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Bad or missing configuration, found at setup; the message names what to fix."""
