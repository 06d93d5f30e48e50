"""The outbox: line protocol on its way to InfluxDB, batched, written, spooled, drained.

Guarantees (what ingest and rules rely on):
- An entry handed to :meth:`Outbox.submit` is acknowledged (the ``ack`` callback, in arrival
  order, a batch at a time) only after the batch holding it is stored: written to InfluxDB,
  put in the on-disk spool, or, if InfluxDB refused the lines as malformed (4xx), written to
  the dead-letter file. Entries without a line ride along and are acknowledged with it.
- Lines handed to :meth:`Outbox.spool_now` are durable (fsynced in the spool) when it returns
  True; the outbox's thread writes them to InfluxDB from there.
- The caller never waits for the database: submit only puts an entry on a queue.
- While InfluxDB is unreachable (network, 5xx, 429), batches go to the spool; when the spool is
  full, the writer holds its batch and retries with backoff, acknowledging nothing, so the
  broker keeps the rest of the stream. The spool drains oldest first when InfluxDB returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from smartcity.models import format_ts
from storage.batches import collect
from storage.influx import InfluxRejected, InfluxUnavailable
from storage.spool import Spool

log = logging.getLogger(__name__)


class PointWriter(Protocol):
    """Stores line protocol; raises InfluxRejected (4xx) or InfluxUnavailable (retry later)."""

    def write(self, lines: bytes) -> None: ...


class Entry(Protocol):
    """What the outbox batches: a message's lines (several for a SenML pack, or None for a
    message with nothing to store) and how many points they hold, for the counters."""

    @property
    def line(self) -> str | None: ...

    @property
    def points(self) -> int: ...


E = TypeVar("E", bound=Entry)


@dataclass
class WriteStats:
    # Each counter is written by the outbox's thread only.
    stored: int = 0
    spooled: int = 0
    unspooled: int = 0
    dead_lettered: int = 0
    write_errors: int = 0
    batches: int = 0
    write_seconds: float = 0.0

    def record_write(self, points: int, seconds: float) -> None:
        self.stored += points
        self.batches += 1
        self.write_seconds += seconds


@dataclass
class Backoff:
    first: float = 0.5
    limit: float = 15.0
    current: float = 0.0

    def next(self) -> float:
        self.current = min(self.limit, self.current * 2 if self.current else self.first)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class Outbox(Generic[E]):
    def __init__(self, sink: PointWriter, spool: Spool, dead_letter_dir: Path,
                 stats: WriteStats, *, ack: Callable[[list[E]], None] | None = None,
                 batch_size: int = 5000, batch_interval_s: float = 0.25,
                 name: str = "outbox") -> None:
        self.sink = sink
        self.ack = ack
        self.spool = spool
        self.dead_letter_dir = dead_letter_dir
        self.stats = stats
        self.batch_size = batch_size
        self.batch_interval_s = batch_interval_s
        self._queue: queue.SimpleQueue[E | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._down_until = 0.0  # while InfluxDB is known down, skip straight to the spool
        self._backoff = Backoff()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if len(self.spool):
            log.info("the spool %s holds %d batches from an earlier run; draining",
                     self.spool.directory, len(self.spool))

    def submit(self, entry: E) -> None:
        self._queue.put(entry)

    def spool_now(self, lines: list[str]) -> bool:
        """Make the lines durable at once (False if the spool is full); the outbox's thread
        writes them to InfluxDB. For a caller that acknowledges its input itself."""
        if not self.spool.put(("\n".join(lines) + "\n").encode()):
            return False
        self.stats.spooled += len(lines)
        return True

    def qsize(self) -> int:
        return self._queue.qsize()

    def pending(self) -> int:
        """Batches waiting in the spool."""
        return len(self.spool)

    def stop(self, timeout: float = 30.0) -> None:
        """Store and acknowledge everything submitted so far, try the spool once more, then
        end the thread; what InfluxDB did not take stays in the spool for the next start."""
        self._queue.put(None)
        self._stopping.set()
        self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        done = False
        while not done:
            batch, done = collect(self._queue, self.batch_size, self.batch_interval_s)
            if batch:
                self._store(batch)
                if self.ack is not None:
                    self.ack(batch)
            self._drain_spool()

    def _store(self, batch: list[E]) -> None:
        lines = [e.line for e in batch if e.line is not None]
        if not lines:
            return
        body = ("\n".join(lines) + "\n").encode()
        points = sum(e.points for e in batch if e.line is not None)
        while True:
            if time.monotonic() >= self._down_until and self._write(body, points):
                return
            if self.spool.put(body):
                self.stats.spooled += points
                return
            # Spool full too: hold this batch unacknowledged; the broker keeps the stream.
            wait = self._backoff.next()
            log.error("InfluxDB unreachable and spool full (%d bytes); holding %d lines, "
                      "retrying in %.1fs", self.spool.size_bytes, len(lines), wait)
            if self._stopping.is_set():
                return  # unacknowledged: redelivered to the next start
            time.sleep(wait)
            self._down_until = 0.0

    def _write(self, body: bytes, count: int) -> bool:
        """Try to store; True if the batch is settled (stored or dead-lettered)."""
        for attempt in range(3):
            started = time.perf_counter()
            try:
                self.sink.write(body)
            except InfluxRejected as e:
                self._dead_letter(body, str(e))
                self.stats.dead_lettered += count
                return True
            except InfluxUnavailable as e:
                self.stats.write_errors += 1
                if attempt < 2:
                    time.sleep(0.1 * 4**attempt)  # a blip: 0.1 s, then 0.4 s
                    continue
                wait = self._backoff.next()
                self._down_until = time.monotonic() + wait
                log.warning("InfluxDB unavailable (%s); spooling, next try in %.1fs", e, wait)
                return False
            self.stats.record_write(count, time.perf_counter() - started)
            if self._backoff.current:
                log.info("InfluxDB reachable again")
            self._backoff.reset()
            return True
        return False

    def _drain_spool(self) -> None:
        """Oldest first, while nothing new waits: new batches go before old ones, so a long
        spool never holds up the acknowledgements of the live stream."""
        while len(self.spool) and time.monotonic() >= self._down_until:
            oldest = self.spool.oldest()
            if oldest is None:
                return
            path, body = oldest
            count = body.count(b"\n")
            if not self._write(body, count):
                return
            self.spool.remove(path)
            self.stats.unspooled += count
            log.info("drained %d points from the spool (%d files left)", count, len(self.spool))
            if self._queue.qsize():
                return

    def _dead_letter(self, body: bytes, error: str) -> None:
        """InfluxDB refused these lines (1.x stores the good points of a partial write, so
        what it refused is in the error). Keep them for an engineer; retrying cannot help."""
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        now_ms = int(time.time() * 1000)
        path = self.dead_letter_dir / f"{format_ts(now_ms)[:10]}.lp"
        with path.open("ab") as f:
            f.write(f"# {format_ts(now_ms)} {error}\n".encode())
            f.write(body)
        log.error("InfluxDB refused a batch of %d lines, kept in %s: %s",
                  body.count(b"\n"), path, error)
