"""A bounded on-disk spool of OTLP protobuf requests, shared by the job processes of a machine.

Each file is one encoded ``Export*ServiceRequest``, written atomically (temporary name, then
rename), so a reader never sees half a batch. Whoever sends a file first claims it by
renaming it to ``<name>.claim-<pid>``: a rename succeeds for exactly one process, which is
what keeps an item from being sent twice. Claims of dead processes are given back. The
directory is capped in bytes; the oldest unclaimed files go first and are counted.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("otel_livekit")

SUFFIX = ".otlp"
CLAIM = ".claim-"
TMP = ".tmp-"


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    items: int
    """Spans or metric points in the request (from the name, so counting needs no parsing)."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _items(name: str) -> int:
    try:
        return int(name.split(SUFFIX, 1)[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


class SpoolDir:
    """The files of one destination. Every method is safe against other processes doing
    the same thing at the same time: a file that vanished was taken by someone else."""

    def __init__(self, directory: Path, max_bytes: int,
                 on_evicted: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self.directory = directory
        self.max_bytes = max_bytes
        self._on_evicted = on_evicted
        self._seq = itertools.count()
        self._full = False
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def write_claimed(self, data: bytes, items: int) -> Path:
        """Put a batch on disk, already claimed by this process (so no other process sends
        it while we try it), then apply the cap. Returns the claimed path."""
        pid = os.getpid()  # not cached: a forked job process has its own
        seq = next(self._seq)
        name = f"{time.time_ns():020d}-{pid}-{seq:06d}-{items}{SUFFIX}"
        tmp = self.directory / f"{TMP}{pid}-{seq}"
        claimed = self.directory / f"{name}{CLAIM}{pid}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, claimed)
        self._enforce_cap()
        return claimed

    def release(self, claimed: Path) -> None:
        """Give a claimed file back to the spool (the send failed; someone retries later)."""
        with contextlib.suppress(FileNotFoundError):  # evicted meanwhile
            os.rename(claimed, claimed.with_name(claimed.name.split(CLAIM, 1)[0]))

    def remove(self, claimed: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(claimed)

    def claim_oldest(self) -> SpoolFile | None:
        """Claim the oldest unclaimed file; ``None`` when there is none left to take."""
        for name in sorted(n for n in self._names() if n.endswith(SUFFIX)):
            src = self.directory / name
            dst = self.directory / f"{name}{CLAIM}{os.getpid()}"
            try:
                os.rename(src, dst)  # atomic: exactly one process wins
            except FileNotFoundError:
                continue  # another process claimed or evicted it
            return SpoolFile(dst, _items(name))
        return None

    def reclaim_dead(self) -> int:
        """Hand back files claimed by processes that died mid-send (killed, ``os._exit``)
        and remove their half-written temporaries. Returns how many files came back."""
        back = 0
        for name in self._names():
            if CLAIM in name:
                pid = name.rsplit(CLAIM, 1)[1]
                if pid.isdigit() and not pid_alive(int(pid)):
                    try:
                        os.rename(self.directory / name, self.directory / name.split(CLAIM, 1)[0])
                        back += 1
                    except FileNotFoundError:
                        pass
            elif name.startswith(TMP):
                pid = name[len(TMP) :].split("-", 1)[0]
                if pid.isdigit() and not pid_alive(int(pid)):
                    self.remove(self.directory / name)
        return back

    def pending(self) -> list[SpoolFile]:
        """Every spooled file, claimed or not, oldest first."""
        return [SpoolFile(self.directory / n, _items(n))
                for n in sorted(self._names()) if not n.startswith(TMP)]  # fmt: skip

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.directory)
        except FileNotFoundError:
            return []

    def _enforce_cap(self) -> None:
        sizes: list[tuple[str, int]] = []
        with os.scandir(self.directory) as it:
            for entry in it:
                try:
                    sizes.append((entry.name, entry.stat().st_size))
                except FileNotFoundError:
                    continue
        total = sum(size for _, size in sizes)
        evicted = 0
        for name, size in sorted(sizes):
            if total <= self.max_bytes:
                break
            if not name.endswith(SUFFIX):
                continue  # claimed (in flight) or temporary: not ours to drop
            try:
                os.unlink(self.directory / name)
            except FileNotFoundError:
                continue  # sent or evicted by another process meanwhile
            total -= size
            evicted += _items(name)
        with self._lock:
            if evicted:
                if not self._full:
                    logger.warning(
                        "otel_livekit: spool %s is full (%d bytes): dropping the oldest batches "
                        "(counted in otel_livekit.export.items, outcome=dropped)",
                        self.directory, self.max_bytes,
                    )  # fmt: skip
                self._full = True
            elif self._full and total <= self.max_bytes // 2:
                self._full = False
        if evicted and self._on_evicted is not None:
            self._on_evicted(evicted)
