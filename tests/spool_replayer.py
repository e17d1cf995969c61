"""A separate process that starts with a shared spool directory and replays it.

Usage: python spool_replayer.py URL READY_FILE GO_FILE. Prints the spans it replayed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from otel_livekit import setup_tracing


def main() -> None:
    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ready.write_text("")
    while not go.exists():  # start together with the other replayer
        time.sleep(0.005)
    t = setup_tracing("otlp", endpoint=url)
    assert t.spooler is not None
    (traces,) = [b for b in t.spooler.outboxes if b.health.signal == "traces"]
    end = time.monotonic() + 60
    while traces.spool.pending() and time.monotonic() < end:
        time.sleep(0.05)
    t.shutdown()
    print(traces.health.replayed)


if __name__ == "__main__":
    main()
