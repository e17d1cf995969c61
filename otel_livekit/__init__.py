"""OpenTelemetry for LiveKit Agents voice agents: traces to Langfuse, Jaeger or any OTLP
backend, and voice-pipeline metrics, from one call in the entrypoint."""

from __future__ import annotations

from .backends import BACKENDS
from .errors import ConfigurationError
from .telemetry import Telemetry, current, setup_tracing

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "ConfigurationError",
    "Telemetry",
    "__version__",
    "current",
    "setup_tracing",
]
