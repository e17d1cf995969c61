"""One destination's sender: a background thread that posts spooled OTLP requests, one HTTP
attempt at a time, and backs off while the backend is down (honouring ``Retry-After``).

The exporter writes each batch to the spool *before* it is sent (write-ahead) and waits a
short while for this thread to deliver it; past that, or once the backend is known to be
down, or past the job-end deadline, the batch simply stays spooled and the exporter's worker
moves on. The same thread re-sends the spool (this process's and other processes') when the
backend answers again.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

from .health import ExportHealth
from .http_client import HttpClient
from .spool import SpoolDir

logger = logging.getLogger("otel_livekit")

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth trying again later; any other 4xx is a rejection the batch cannot fix."""
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 3600.0
RESCAN_EVERY = 5.0
MAX_HELD = 64
"""Batches kept queued (in memory, claimed) behind an attempt still waiting for its answer;
beyond them a batch goes straight to the spool, so a hung backend cannot grow the queue."""


class Outcome(enum.Enum):
    WAITING = "waiting"
    DELIVERED = "delivered"
    SPOOLED = "spooled"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Wire:
    """Where and how to post: the transport's endpoint, headers (content type, auth,
    compression) and per-attempt timeout, and the destination's client (TLS, proxy, health)."""

    endpoint: str
    headers: dict[str, str] = field(repr=False)  # auth headers: never in a repr
    timeout: float
    compress: Callable[[bytes], bytes]
    client: HttpClient


@dataclass(frozen=True)
class Answer:
    ok: bool
    retryable: bool
    retry_after: float | None = None


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def post(wire: Wire, data: bytes) -> Answer:
    """One HTTP attempt, no retry loop (the caller decides when to try again). The client
    counts the attempt and logs state changes."""
    try:
        reply = wire.client.post(wire.endpoint, wire.compress(data), wire.headers, wire.timeout)
    except Exception:  # refused, timeout, garbage answer, TLS: all worth another try
        return Answer(False, True)
    code = reply.status
    if 200 <= code < 300:
        return Answer(True, False)
    later = retry_after(reply.retry_after) if code in (429, 503) else None
    return Answer(False, code in RETRYABLE, later)


@dataclass(eq=False)
class _Job:
    path: Path | None
    data: bytes
    items: int
    state: Outcome = Outcome.WAITING


class Outbox:
    """Sends one destination's spool; ``submit`` is what the exporter calls per batch."""

    def __init__(self, spool: SpoolDir, wire: Wire, health: ExportHealth, *,
                 first_backoff: float = FIRST_BACKOFF, max_backoff: float = MAX_BACKOFF,
                 max_held: int = MAX_HELD) -> None:  # fmt: skip
        self.spool = spool
        self.wire = wire
        self.health = health
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._max_held = max_held
        self._cond = threading.Condition()
        self._fresh: deque[_Job] = deque()
        self._down_until: float | None = None
        self._failures_in_row = 0
        self._cut_at: float | None = None
        self._closed = False
        self._unanswered = False
        """An attempt outlived its exporter's wait: until the backend answers, don't wait."""
        self._write_failed = False
        name = f"otel_livekit-spool-{health.signal}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- the exporter's side -------------------------------------------------------------
    def submit(self, data: bytes, items: int) -> Outcome:
        """Spool the batch, then wait (at most one attempt's timeout, never past the cut)
        for it to be delivered. Never raises."""
        try:
            path: Path | None = self.spool.write_claimed(data, items)
        except OSError as exc:
            path = None
            if not self._write_failed:
                self._write_failed = True
                logger.warning("otel_livekit: cannot write the spool %s (%s): batches are sent "
                               "once and dropped if that fails", self.spool.directory, exc)  # fmt: skip
        job = _Job(path, data, items)
        with self._cond:
            if self._closed or self._down_until is not None:
                return self._park(job)
            if self._unanswered:
                return self._hold(job)
            if self._past_cut():
                return self._park(job)
            self._fresh.append(job)
            self._cond.notify_all()
            deadline = time.monotonic() + self.wire.timeout
            while job.state is Outcome.WAITING:
                limit = deadline if self._cut_at is None else min(deadline, self._cut_at)
                left = limit - time.monotonic()
                if left <= 0:  # no answer in time: the batch stays spooled
                    if job in self._fresh:  # not sent yet: any process may take it now
                        self._fresh.remove(job)
                        return self._park(job)
                    job.state = Outcome.SPOOLED if job.path is not None else Outcome.DROPPED
                    self._unanswered = True
                    break
                self._cond.wait(left)
            return job.state

    def cut_at(self, when: float | None) -> None:
        """From ``when`` (monotonic) on, exporters stop waiting for the backend: what they
        hand over stays spooled. ``None`` lifts it (a flush that finished in time)."""
        with self._cond:
            self._cut_at = when
            self._cond.notify_all()

    def close(self) -> None:
        """Stop after the attempt in flight; unsent batches stay spooled for the next process
        (handed over now: the attempt in flight may outlive the process)."""
        with self._cond:
            self._closed = True
            for job in self._fresh:
                self._park(job)
            self._fresh.clear()
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _past_cut(self) -> bool:
        return self._cut_at is not None and time.monotonic() >= self._cut_at

    def _hold(self, job: _Job) -> Outcome:
        """Queue the batch behind the attempt in flight, still claimed by this process: sent
        as soon as the backend answers, handed to the spool if it fails or the outbox closes,
        given back by the next process if this one is killed. The exporter does not wait.
        Held for one attempt's timeout at most, and no more than ``max_held`` batches."""
        if job.path is None or len(self._fresh) >= self._max_held:
            return self._park(job)
        job.state = Outcome.SPOOLED
        self._fresh.append(job)
        self._cond.notify_all()
        return job.state

    def _park(self, job: _Job) -> Outcome:
        """Leave the batch in the spool for later (or drop it when it could not be written)."""
        if job.path is None:
            job.state = Outcome.DROPPED
        else:
            self.spool.release(job.path)
            job.state = Outcome.SPOOLED
        return job.state

    # --- the sender thread ---------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(OSError):
            self.spool.reclaim_dead()
        while True:
            job = self._next_job()
            if job is None:
                return
            answer = post(self.wire, job.data)
            self._settle(job, answer)

    def _next_job(self) -> _Job | None:
        """The next batch to send: this process's fresh ones first, then the spool's oldest;
        sleeps through a backoff and between scans."""
        while True:
            with self._cond:
                if self._closed:  # close() handed every queued batch back to the spool
                    return None
                now = time.monotonic()
                if self._down_until is not None and now < self._down_until:
                    self._cond.wait(self._down_until - now)
                    continue
                if self._fresh:
                    return self._fresh.popleft()
            spooled = self._claim_spooled()
            if spooled is not None:
                return spooled
            with self._cond:
                if not self._fresh and not self._closed:
                    self._cond.wait(RESCAN_EVERY)

    def _claim_spooled(self) -> _Job | None:
        try:
            self.spool.reclaim_dead()
            while (f := self.spool.claim_oldest()) is not None:
                try:
                    data = f.path.read_bytes()
                except FileNotFoundError:
                    continue  # evicted between claim and read
                return _Job(f.path, data, f.items, Outcome.SPOOLED)
        except OSError as exc:
            logger.debug("otel_livekit: spool scan failed: %s", exc)
        return None

    def _settle(self, job: _Job, answer: Answer) -> None:
        health = self.health
        with self._cond:  # the file and the count change together
            if job.path is not None:
                if answer.ok or not answer.retryable:
                    self.spool.remove(job.path)
                else:
                    self.spool.release(job.path)
            waiting = job.state is Outcome.WAITING
            self._unanswered = False
            if answer.ok:
                self._down_until, self._failures_in_row = None, 0
                if waiting:
                    job.state = Outcome.DELIVERED
                else:
                    health.add(replayed=job.items)
            elif not answer.retryable:
                if waiting:
                    job.state = Outcome.DROPPED
                else:
                    health.add(dropped=job.items)
            else:
                self._back_off(answer.retry_after)
                if waiting:
                    job.state = Outcome.SPOOLED if job.path is not None else Outcome.DROPPED
                for other in self._fresh:  # they would fail too: leave them to the spool
                    self._park(other)
                self._fresh.clear()
            self._cond.notify_all()

    def _back_off(self, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            delay = min(self._first_backoff * 2**self._failures_in_row, self._max_backoff)
            delay *= random.uniform(0.8, 1.2)
        self._failures_in_row += 1
        self._down_until = time.monotonic() + delay
