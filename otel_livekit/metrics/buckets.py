"""Histogram bucket boundaries sized for voice, shared by our catalogue and the Views that
fix LiveKit's own instruments."""

from __future__ import annotations

LATENCY_SECONDS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75,
    1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0,
)  # fmt: skip
"""10 ms to 10 s, dense below one second where a voice agent's budget lives."""

GENAI_DURATION_SECONDS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""The GenAI semantic conventions' advice for operation duration and time to first chunk."""

GENAI_TOKENS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
"""The GenAI semantic conventions' advice for ``gen_ai.client.token.usage``."""

SESSION_SECONDS: tuple[float, ...] = (
    5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
)  # fmt: skip
"""Call lengths, 5 s to 2 h."""

COUNT_PER_SESSION: tuple[float, ...] = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)
"""Small counts per session (turns, interruptions, tool calls)."""

TOKENS_PER_SECOND: tuple[float, ...] = (5, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500, 1000)
"""LLM output speed."""

FAST_SECONDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
)  # fmt: skip
"""On-device model inference (VAD), 0.1 ms to 250 ms."""
