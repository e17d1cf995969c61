"""Estimated cost from an overridable price table.

The shipped table (``prices.json``) is a small set of public list prices, an *estimate*
for dashboards; users override or extend it with a file or a dict. A model missing from
the table costs nothing rather than a guess.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

from livekit.agents.telemetry.trace_types import gen_ai_provider_name

from .. import environment_variables as ev
from ..errors import ConfigurationError

PriceSource = Union[str, Path, Mapping[str, Any], None]  # noqa: UP007 - a runtime alias on 3.10

SECTIONS = ("llm", "tts", "stt")
LLM_FIELDS = frozenset({"input", "cached_input", "cache_write", "output", "audio_input",
                        "audio_output"})  # fmt: skip
FIELDS = {"llm": LLM_FIELDS, "tts": frozenset({"per_million_characters"}),
          "stt": frozenset({"per_minute"})}  # fmt: skip


@functools.lru_cache(maxsize=256)
def normalize_provider(provider: str | None) -> str:
    """LiveKit's own normalization (``api.openai.com`` → ``openai``), so metric labels and
    price keys agree with the ``gen_ai.provider.name`` LiveKit puts on spans. Cached: it
    runs for every metrics event, over a handful of distinct providers."""
    if not provider:
        return "unknown"
    try:
        return gen_ai_provider_name(provider) or provider
    except Exception:
        return provider


@dataclass(frozen=True)
class PriceTable:
    llm: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    stt: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    _found: dict[tuple[str, str, str], Mapping[str, float] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Lookups per (section, provider, model): a miss scans the table, once per model."""

    def _find(self, section: str, provider: str, model: str) -> Mapping[str, float] | None:
        key = (section, provider, model)
        try:
            return self._found[key]
        except KeyError:
            pass
        table: Mapping[str, Mapping[str, float]] = getattr(self, section)
        hit = table.get(f"{provider}/{model}")
        if hit is None:  # a provider spelled differently: match the model alone
            hit = next((v for k, v in table.items() if k.split("/", 1)[-1] == model), None)
        if len(self._found) < 4096:  # a handful of models in practice; never unbounded
            self._found[key] = hit
        return hit

    def llm_cost(
        self,
        provider: str,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input: int = 0,
        cache_write: int = 0,
        audio_input: int = 0,
        audio_output: int = 0,
    ) -> float | None:
        p = self._find("llm", provider, model)
        if p is None:
            return None
        base_in = p.get("input", 0.0)
        text_in = max(0, input_tokens - cached_input - audio_input)
        text_out = max(0, output_tokens - audio_output)
        usd = (
            text_in * base_in
            + cached_input * p.get("cached_input", base_in)
            + cache_write * p.get("cache_write", base_in)
            + audio_input * p.get("audio_input", base_in)
            + text_out * p.get("output", 0.0)
            + audio_output * p.get("audio_output", p.get("output", 0.0))
        )
        return usd / 1e6

    def tts_cost(self, provider: str, model: str, characters: int) -> float | None:
        p = self._find("tts", provider, model)
        return None if p is None else characters * p.get("per_million_characters", 0.0) / 1e6

    def stt_cost(self, provider: str, model: str, audio_seconds: float) -> float | None:
        p = self._find("stt", provider, model)
        return None if p is None else audio_seconds / 60 * p.get("per_minute", 0.0)


def _validate(raw: Mapping[str, Any], origin: str) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {s: {} for s in SECTIONS}
    for section, entries in raw.items():
        if section.startswith("_"):
            continue
        if section not in SECTIONS or not isinstance(entries, Mapping):
            raise ConfigurationError(
                f"{origin}: unknown price section {section!r}; expected {', '.join(SECTIONS)}"
            )
        for key, prices in entries.items():
            if "/" not in key or not isinstance(prices, Mapping):
                raise ConfigurationError(f"{origin}: {section}.{key} must be 'provider/model': {{…}}")
            bad = set(prices) - FIELDS[section]
            if bad:
                raise ConfigurationError(
                    f"{origin}: {section}.{key} has unknown field(s) {', '.join(sorted(bad))}; "
                    f"known: {', '.join(sorted(FIELDS[section]))}"
                )
            for name, value in prices.items():
                if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                    raise ConfigurationError(f"{origin}: {section}.{key}.{name} must be ≥ 0")
            out[section][key] = {k: float(v) for k, v in prices.items()}
    return out


def default_prices() -> dict[str, Any]:
    text = resources.files("otel_livekit").joinpath("prices.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def load_prices(source: PriceSource = None, env: Mapping[str, str] | None = None) -> PriceTable:
    """The shipped table, overlaid entry by entry with ``source`` (a dict or a JSON file),
    else with the file named by ``OTEL_LIVEKIT_PRICES``."""
    tables = _validate(default_prices(), "otel_livekit/prices.json")
    origin = "prices="
    if source is None and env and env.get(ev.OTEL_LIVEKIT_PRICES):
        source, origin = env[ev.OTEL_LIVEKIT_PRICES], ev.OTEL_LIVEKIT_PRICES
    if isinstance(source, (str, Path)):
        try:
            overlay = json.loads(Path(source).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{origin} {source}: cannot read a JSON price table ({exc})") from None
        if not isinstance(overlay, Mapping):
            raise ConfigurationError(f"{origin} {source}: the price table must be a JSON object")
        source = overlay
    if source is not None:
        for section, entries in _validate(source, origin).items():
            tables[section].update(entries)
    return PriceTable(tables["llm"], tables["tts"], tables["stt"])
