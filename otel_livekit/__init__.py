"""OpenTelemetry for LiveKit Agents voice agents: traces to Langfuse, Jaeger or any OTLP
backend, and voice-pipeline metrics, from one call in the entrypoint."""

from __future__ import annotations

from .config import Config, check_config
from .errors import ConfigurationError
from .export.destinations.backends import BACKENDS
from .export.destinations.headers import mute_sdk_header_warning
from .metrics.budget import TurnBudget, on_turn_budget
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

# The SDK logs a malformed OTEL_EXPORTER_OTLP_*HEADERS value whole (the secret with it);
# otel_livekit reports it itself, masked.
mute_sdk_header_warning()

__all__ = [
    "BACKENDS",
    "CATALOGUE",
    "Config",
    "ConfigurationError",
    "InstrumentSpec",
    "PriceTable",
    "SessionInstrumentation",
    "SessionSummary",
    "Telemetry",
    "TurnBudget",
    "__version__",
    "check_config",
    "current",
    "instrument_session",
    "instrumentation_of",
    "load_prices",
    "on_turn_budget",
    "set_call_attributes",
    "setup_tracing",
]
