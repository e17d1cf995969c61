"""The catalogue's metrics in prometheus-client's multiprocess files, shared by job processes.

prometheus-client gives every process its own files (``counter_<pid>.db``, …) and the
worker's ``MultiProcessCollector`` reads them all at every scrape. LiveKit runs each call in
a new job process, so after 1,000 calls a scrape would read thousands of files (seconds,
see ``bench/RESULTS.md``) until the worker restarts. Here every job process *adds what it
recorded since its last write* to one shared file per type (counter, histogram, gauge),
under an exclusive ``flock``; a scrape reads a fixed number of files however many calls
came and went. The file format is prometheus-client's (``MmapedDict``), so LiveKit's
collector reads it unchanged. LiveKit's job processes end with ``os._exit`` after the job's
shutdown callbacks, where ``setup_tracing()`` flushes, so nothing here relies on ``atexit``.

The gauge (sessions active) is different: a process's value is only true while it lives. So
each process writes its gauge values to a file of its own (``gauge_sum_<pid>-otel-livekit.db``;
the collector sums ``sum`` gauges over files), removed when its sink shuts down — and, when
the process is killed (LiveKit kills a job that misses its shutdown window), by a tiny reaper
process started beside it, which notices its parent is gone within half a second. Any sink
that starts also removes the gauge files of processes that no longer exist.

Without ``fcntl`` (Windows) each process keeps its own files, as prometheus-client does.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.mmap_dict import MmapedDict, mmap_key

from .prometheus_families import Family
from .prometheus_names import bound_label

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

GAUGE_PREFIX = "gauge_sum"
"""The collector sums a ``sum`` gauge over files (and needs no per-process liveness)."""
SHARED_ID = "shared-otel-livekit"
"""File id of the shared files: ``counter_shared-otel-livekit.db`` (no ``_``: the collector
splits file names on it)."""
LOCK_NAME = "otel-livekit.lock"
"""Not ``*.db``: the collector ignores it; LiveKit's worker wipes it with the rest at start."""

_GAUGE_FILE = re.compile(rf"^{GAUGE_PREFIX}_(\d+)-otel-livekit\.db$")

_REAPER = """
import os, sys, time
parent, path = int(sys.argv[1]), sys.argv[2]
while os.getppid() == parent and os.path.exists(path):
    time.sleep(0.5)
try:
    os.unlink(path)
except OSError:
    pass
"""
"""Runs beside a job process: when its parent (the job) is gone — killed or ended — or its
gauge file was removed by a clean shutdown, it removes the file and exits."""

Sample = tuple[str, str, float]
"""(file prefix, mmap key, this process's cumulative value)."""


class MultiprocessFiles:
    """This process's contribution to the multiprocess directory. Not thread-safe: the sink
    writes under its lock."""

    def __init__(self, directory: str, process_id: str | None = None) -> None:
        self.directory = directory
        self.process_id = process_id or f"{os.getpid()}-otel-livekit"
        self.shared = fcntl is not None
        self._pid = os.getpid()
        self._added: dict[tuple[str, str], float] = {}  # what this process has added so far
        self._keys: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}
        self.gauge_path = os.path.join(directory, f"{GAUGE_PREFIX}_{self.process_id}.db")
        self._reaper: subprocess.Popen[bytes] | None = None
        remove_dead_gauges(directory)

    def write(self, families: Iterable[Family]) -> None:
        if os.getpid() != self._pid:  # a fork: the child's totals include the parent's
            return
        pending: dict[str, list[tuple[str, float]]] = {}
        for prefix, key, value in self._samples(families):
            if self._added.get((prefix, key)) != value:  # new (even if 0: every bucket shows) or changed
                pending.setdefault(prefix, []).append((key, value))
        for prefix, updates in pending.items():
            if prefix == GAUGE_PREFIX:
                self._set_gauges(updates)
            else:
                self._add(prefix, updates)

    def close(self) -> None:
        """Take back this process's gauges (an ended process has no active session) by
        removing its gauge file; its counters and histograms stay counted."""
        if os.getpid() != self._pid:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.gauge_path)
        if self._reaper is not None:  # nothing left for it to remove: stop it now, and reap it
            with contextlib.suppress(Exception):
                self._reaper.terminate()
                self._reaper.wait(1)

    def _set_gauges(self, updates: list[tuple[str, float]]) -> None:
        """This process's own gauge file: absolute values, no lock (only it writes). Each
        series also gets a 0 in the shared gauge file, so it reads 0 (not absent) once every
        process that had it is gone."""
        new = [(key, 0.0) for key, _ in updates if (GAUGE_PREFIX, key) not in self._added]
        if new and self.shared:
            self._add(GAUGE_PREFIX, new)
        file: Any = MmapedDict(self.gauge_path)  # type: ignore[no-untyped-call]
        try:
            for key, value in updates:
                file.write_value(key, value, 0.0)
                self._added[(GAUGE_PREFIX, key)] = value
        finally:
            file.close()
        if self._reaper is None:
            self._reaper = _start_reaper(self.gauge_path)

    def _add(self, prefix: str, updates: list[tuple[str, float]]) -> None:
        """Add this process's increase of each sample since its last write."""
        file_id = SHARED_ID if self.shared else self.process_id
        path = os.path.join(self.directory, f"{prefix}_{file_id}.db")
        with self._locked():
            file: Any = MmapedDict(path)  # type: ignore[no-untyped-call]
            try:
                for key, value in updates:
                    delta = value - self._added.get((prefix, key), 0.0)
                    current = file.read_value(key)[0]
                    file.write_value(key, current + delta, 0.0)
                    self._added[(prefix, key)] = value
            finally:
                file.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.shared:
            yield
            return
        fd = os.open(os.path.join(self.directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _samples(self, families: Iterable[Family]) -> Iterator[Sample]:
        """Prometheus-client's own layout: ``X_total``; per-bucket (not cumulative)
        ``X_bucket`` with ``le`` and ``X_sum`` (the collector adds ``_count``); gauge ``X``."""
        for fam in families:
            for row, value in fam.rows:
                if fam.type == "histogram":
                    bounds, counts, total = value  # type: ignore[misc]
                    names = (*fam.label_names, "le")
                    for bound, count in zip((*map(bound_label, bounds), "+Inf"), counts, strict=True):
                        yield "histogram", self._key(fam, f"{fam.name}_bucket", names, (*row, bound)), count
                    yield "histogram", self._key(fam, f"{fam.name}_sum", fam.label_names, row), total
                elif fam.type == "counter":
                    yield "counter", self._key(fam, f"{fam.name}_total", fam.label_names, row), value  # type: ignore[misc]
                else:
                    yield GAUGE_PREFIX, self._key(fam, fam.name, fam.label_names, row), value  # type: ignore[misc]

    def _key(self, fam: Family, sample: str, names: tuple[str, ...], row: tuple[str, ...]) -> str:
        cache = (sample, names, row)
        key = self._keys.get(cache)
        if key is None:
            key = mmap_key(fam.name, sample, list(names), list(row), fam.documentation)
            self._keys[cache] = key
        return key


def _start_reaper(path: str) -> subprocess.Popen[bytes] | None:
    """Best effort: without it a killed process's gauges are removed by the next sink start."""
    try:
        return subprocess.Popen(
            [sys.executable, "-S", "-c", _REAPER, str(os.getpid()), path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=True, start_new_session=True,  # outlives a kill of the job's group
        )  # fmt: skip
    except OSError:
        return None


def remove_dead_gauges(directory: str) -> None:
    """Remove the gauge files of processes that no longer exist (killed before any reaper
    could act, or a whole machine restart)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = _GAUGE_FILE.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
