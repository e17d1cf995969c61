"""How often a second thread (standing for the agent's event loop) gets the GIL while an
export step runs on this one: the measure behind every GIL hand-over test."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable


def loop_turns(encode: Callable[[], object]) -> tuple[int, float]:
    """How often another thread (the agent's event loop) ran while ``encode`` ran, and the
    longest it waited: a ticker thread sleeping 50 µs (shorter than the 0.1 ms hand-over, so
    it is waiting for the GIL when one comes) notes every wake-up. Counting turns holds on a
    loaded 2-core machine where the worst wait is noise (a slow chunk)."""
    stamps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            time.sleep(0.00005)
            stamps.append(time.perf_counter())

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    time.sleep(0.02)
    gc.disable()  # a collection's pause is not what is measured here
    try:
        start = time.perf_counter()
        encode()
        end = time.perf_counter()
    finally:
        gc.enable()
    stop.set()
    ticker.join()
    inside = [s for s in stamps if start <= s <= end]
    marks = [start, *inside, end]
    return len(inside), max(b - a for a, b in itertools.pairwise(marks))


def turns_typically(encode: Callable[[], object]) -> int:
    return sorted(loop_turns(encode)[0] for _ in range(5))[2]  # the median of five runs


def worst_wait_at_best(encode: Callable[[], object]) -> float:
    return min(loop_turns(encode)[1] for _ in range(5))
