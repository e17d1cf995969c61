"""Why spans are exported 64 at a time (export/delivery/health.py ``SPAN_BATCH_SIZE``).

CPython (3.11, 3.12) counts every container it allocates toward the next young collection
and takes one back for each freed — but a collection resets the count to zero, and frees
below zero are lost. Objects made one at a time and freed in bulk (an exported batch of
queued spans) therefore count as if they were garbage. Same allocations, same garbage, only
the size of the bulk free changes:

    .venv/bin/python bench/gc_bulk_free.py
"""

from __future__ import annotations

import gc


class Obj:
    pass


def _cycle() -> None:
    a = Obj()
    a.self = a  # type: ignore[attr-defined]  # garbage only a collection frees: what drives them anyway


def collections(batch: int, n: int = 300_000, garbage_every: int = 4) -> int:
    gc.collect()
    hits = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        hits[0] += phase == "start"

    gc.callbacks.append(on_gc)
    held: list[Obj] = []
    for i in range(n):
        held.append(Obj())  # a span queued
        if i % garbage_every == 0:
            _cycle()
        if len(held) >= batch:
            held.clear()  # its batch exported: freed at once
    gc.callbacks.remove(on_gc)
    return hits[0]


if __name__ == "__main__":
    print("| objects freed together | collections (300,000 queued, 75,000 cyclic garbage) |")
    print("|---|---|")
    for b in (1, 30, 128, 256, 512, 2048):
        print(f"| {b} | {collections(b)} |")
