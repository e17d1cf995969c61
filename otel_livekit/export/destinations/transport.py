"""One OTLP/HTTP signal's transport, resolved from the settings.

Endpoint, headers, timeout, compression and TLS follow the ``OTEL_EXPORTER_OTLP_*``
variables (the per-signal one first, then the general one), resolved here once so the spool's
sender, the SDK's exporters and ``doctor`` all use the same values — and nothing reads them
back out of an SDK object's private fields.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from opentelemetry.exporter.otlp.proto.http import Compression

from ... import environment_variables as ev
from ...errors import ConfigurationError
from ...secrets import Secret

Signal = Literal["traces", "metrics", "logs"]
CompressionName = Literal["none", "gzip", "deflate"]

DEFAULT_BASE = "http://localhost:4318"
DEFAULT_TIMEOUT = 10.0
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Transport:
    """Where and how one signal is posted. Header values are secrets: never in a repr."""

    signal: Signal
    endpoint: str
    headers: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    compression: CompressionName = "none"
    certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None

    def request_headers(self) -> dict[str, str]:
        """What goes on the wire: the content type, the encoding, then the user's headers."""
        out = {"content-type": PROTOBUF}
        if self.compression != "none":
            out["content-encoding"] = self.compression
        out.update({k.lower(): v.reveal() for k, v in self.headers.items()})
        return out

    def compressor(self) -> Callable[[bytes], bytes]:
        if self.compression == "gzip":
            return gzip.compress
        if self.compression == "deflate":
            return zlib.compress
        return _identity

    def configure(self, session: requests.Session) -> requests.Session:
        """TLS verification and client certificate on a session this package sends with."""
        session.verify = self.certificate or True
        if cert := self.client_certificate:
            session.cert = (cert, self.client_key) if self.client_key else cert
        return session

    def exporter_arguments(self, session: requests.Session) -> dict[str, Any]:
        """The OTel OTLP/HTTP exporters' public constructor arguments, every one explicit."""
        return {
            "endpoint": self.endpoint,
            "headers": {k.lower(): v.reveal() for k, v in self.headers.items()},
            "timeout": self.timeout,
            "compression": Compression(self.compression if self.compression != "none" else "none"),
            "certificate_file": self.certificate,
            "client_certificate_file": self.client_certificate,
            "client_key_file": self.client_key,
            "session": self.configure(session),
        }


def _identity(data: bytes) -> bytes:
    return data


_PATHS: dict[Signal, str] = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


def _var(signal: Signal, name: str) -> str:
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}"


def _first(env: Mapping[str, str], signal: Signal, name: str) -> tuple[str, str] | None:
    """(variable, value) of the per-signal variable, else the general one."""
    for var in (_var(signal, name), f"OTEL_EXPORTER_OTLP_{name}"):
        if value := (env.get(var) or "").strip():
            return var, value
    return None


def timeout_seconds(env: Mapping[str, str], signal: Signal) -> float:
    """Seconds, as the OTel Python SDK reads these variables; 1000 or more is read as the
    milliseconds the OTLP spec names (``10000`` = 10 s), so either habit works."""
    found = _first(env, signal, "TIMEOUT")
    if found is None:
        return DEFAULT_TIMEOUT
    var, raw = found
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"must be a number (seconds, or milliseconds from 1000), got {raw!r}",
                                 variable=var) from None  # fmt: skip
    if not 0 < value < float("inf"):
        raise ConfigurationError(f"must be positive, got {raw!r}", variable=var)
    return value / 1000 if value >= 1000 else value


def compression_name(env: Mapping[str, str], signal: Signal) -> CompressionName:
    found = _first(env, signal, "COMPRESSION")
    if found is None:
        return "none"
    var, raw = found
    value = raw.lower()
    if value not in ("none", "gzip", "deflate"):
        raise ConfigurationError(f"must be gzip, deflate or none, got {raw!r}", variable=var)
    return value  # type: ignore[return-value]


def resolve_transport(
    signal: Signal,
    endpoint: str | None,
    preset_headers: Mapping[str, Secret],
    env: Mapping[str, str],
    parsed_headers: Mapping[str, Mapping[str, Secret]],
) -> Transport:
    """``endpoint`` is the backend preset's full URL, or None for the standard variables.
    ``parsed_headers`` are the header variables already parsed by the configuration."""
    if endpoint is None:
        if signal_endpoint := (env.get(_var(signal, "ENDPOINT")) or "").strip():
            endpoint = signal_endpoint
        else:
            base = (env.get(ev.OTEL_EXPORTER_OTLP_ENDPOINT) or "").strip() or DEFAULT_BASE
            endpoint = base.rstrip("/") + _PATHS[signal]
    # a preset's own headers (Langfuse's keys, Honeycomb's team) are the only ones it sends:
    # the general OTLP headers (a Collector's token) never reach the vendor
    headers: dict[str, Secret] = {k.lower(): v for k, v in preset_headers.items()}
    if not headers:
        for var in (_var(signal, "HEADERS"), ev.OTEL_EXPORTER_OTLP_HEADERS):
            if env.get(var):
                headers = {k.lower(): v for k, v in parsed_headers.get(var, {}).items()}
                break
    tls = {name: found[1] if (found := _first(env, signal, name)) else None
           for name in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")}  # fmt: skip
    return Transport(
        signal=signal, endpoint=endpoint, headers=headers, timeout=timeout_seconds(env, signal),
        compression=compression_name(env, signal), certificate=tls["CERTIFICATE"],
        client_certificate=tls["CLIENT_CERTIFICATE"], client_key=tls["CLIENT_KEY"],
    )  # fmt: skip
