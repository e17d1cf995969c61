"""OpenTelemetry for LiveKit Agents voice agents: traces to Langfuse, Jaeger or any OTLP
backend, and voice-pipeline metrics, from one call in the entrypoint."""

from __future__ import annotations

from .errors import ConfigurationError
from .export.backends import BACKENDS
from .metrics.catalogue import CATALOGUE, InstrumentSpec
from .metrics.pricing import PriceTable, load_prices
from .sessions.calls import set_call_attributes
from .sessions.hooks import (
    SessionInstrumentation,
    SessionSummary,
    instrument_session,
    instrumentation_of,
)
from .telemetry import Telemetry, current, setup_tracing

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "CATALOGUE",
    "ConfigurationError",
    "InstrumentSpec",
    "PriceTable",
    "SessionInstrumentation",
    "SessionSummary",
    "Telemetry",
    "__version__",
    "current",
    "instrument_session",
    "instrumentation_of",
    "load_prices",
    "set_call_attributes",
    "setup_tracing",
]
