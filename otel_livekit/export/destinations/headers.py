"""OTLP header variables, parsed by us before the SDK sees them (OTel spec: comma-separated
``key=value``, percent-encoded), so a malformed entry is a configuration problem reported
with its value masked — and the SDK's own warning, which prints the whole value, is muted."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

from ... import environment_variables as ev

HEADER_VARIABLES = (
    ev.OTEL_EXPORTER_OTLP_HEADERS,
    ev.OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    ev.OTEL_EXPORTER_OTLP_METRICS_HEADERS,
    ev.OTEL_EXPORTER_OTLP_LOGS_HEADERS,
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_NAME = re.compile(r"^\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*([:=]?)(.*)$", re.S)


def parse_headers(raw: str) -> tuple[dict[str, str], list[str]]:
    """The entries that parse (names lower-cased, values percent-decoded), and the raw text
    of those that do not."""
    good: dict[str, str] = {}
    bad: list[str] = []
    for entry in raw.split(","):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name = unquote(name).strip()
        if not sep or not _TOKEN.match(name):
            bad.append(entry.strip())
            continue
        good[name.lower()] = unquote(value).strip()
    return good, bad


def masked_header_value(value: str) -> str:
    """``Authorization: Bearer abc`` → ``Authorization: <11 chars>``: the names (which
    say what is wrong) without the secrets."""
    out = []
    for entry in value.split(","):
        match = _NAME.match(entry)
        if match and match.group(2):
            out.append(f"{match.group(1)}{match.group(2)} <{len(match.group(3).strip())} chars>")
        else:
            out.append(f"<{len(entry.strip())} chars>")
    return ", ".join(out)


class _MaskSdkHeaderWarning(logging.Filter):
    """The SDK logs a malformed header entry whole ("Header format invalid! ... %s"); we
    report the same entry ourselves, masked, so its record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Header format invalid" not in str(record.msg)


SDK_HEADER_LOGGER = "opentelemetry.util.re"
_FILTER = _MaskSdkHeaderWarning()


def mute_sdk_header_warning() -> None:
    """Idempotent; done at import of the package (doctor and setup both build exporters)."""
    logger = logging.getLogger(SDK_HEADER_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
