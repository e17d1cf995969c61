"""The session report's cost on the event loop at a call's close, by the call's length.

LiveKit emits ``close`` on the agent's event loop and ends the ``agent_session`` span right
after, so the report (LiveKit's ``SessionReport`` plus ours, serialised for the span event
and the log record) is built there. Each length runs a real offline call of that many text
turns with ``setup_tracing("otlp")`` to a loopback backend and times the close handler;
medians of ``--repeat`` calls::

    python bench/bench_report_close.py --turns 4 40 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import backend


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, nargs="+", default=[4, 40])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    from otel_livekit import setup_tracing
    from otel_livekit.offline import OfflineLLM, run_offline_session
    from otel_livekit.sessions import features

    took: list[float] = []
    close = features._CallState.on_close

    def timed(self: Any, *a: Any, **kw: Any) -> None:
        started = time.perf_counter()
        close(self, *a, **kw)
        took.append((time.perf_counter() - started) * 1000)

    features._CallState.on_close = timed  # type: ignore[method-assign]
    with backend("healthy") as url:
        setup_tracing("otlp", endpoint=url)
        asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=0, in_job=False))  # warm-up
        print("| turns in the call | close handler on the loop, median (ms) | min | max |")
        print("|---|---|---|---|")
        for turns in args.turns:
            took.clear()
            for _ in range(args.repeat):
                asyncio.run(run_offline_session(text_turns=("hello",) * turns, audio_turns=0,
                                                in_job=False, llm_=OfflineLLM(ttft=0.01)))  # fmt: skip
            print(f"| {turns} | {statistics.median(took):.1f} | {min(took):.1f} | {max(took):.1f} |")


if __name__ == "__main__":
    main()
