"""The writer thread: batches lines by size and time, stores them, then acknowledges.

Guarantees (what the MQTT edge relies on):
- A message is acknowledged only after the batch holding it is stored: written to InfluxDB,
  put in the on-disk spool, or, if InfluxDB refused the lines as malformed (4xx), written to
  the dead-letter file. Rejected messages ride along and are acknowledged in arrival order.
- The network loop never waits for the database: it only puts items on a queue.
- While InfluxDB is unreachable (network, 5xx, 429), batches go to the spool; when the spool is
  full, the writer holds its batch and retries with backoff, acknowledging nothing, so the
  broker keeps the rest of the stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ingest.spool import Spool
from ingest.stats import Stats
from smartcity.influx import InfluxRejected, InfluxUnavailable
from smartcity.models import format_ts

log = logging.getLogger(__name__)

POLL_S = 0.005
BLIP_S = 0.5  # a failed write that took longer than this is no blip


class PointWriter(Protocol):
    """Stores line protocol; raises InfluxRejected (4xx) or InfluxUnavailable (retry later)."""

    def write(self, lines: bytes) -> None: ...


@dataclass(slots=True)
class Item:
    # What to store for the message: its readings' points (several lines for a SenML pack),
    # a rejection's record, or None; acknowledged with the batch it arrived in either way.
    line: str | None
    mid: int
    qos: int
    generation: int  # the MQTT connection it arrived on; acks never cross connections
    points: int = 1  # readings among the lines, for the stored/spooled counters


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


class BatchWriter:
    def __init__(self, sink: PointWriter, ack: Callable[[list[Item]], None], spool: Spool,
                 dead_letter_dir: Path, stats: Stats, batch_size: int,
                 batch_interval_s: float) -> None:
        self.sink = sink
        self.ack = ack
        self.spool = spool
        self.dead_letter_dir = dead_letter_dir
        self.stats = stats
        self.batch_size = batch_size
        self.batch_interval_s = batch_interval_s
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._down_until = 0.0  # while InfluxDB is known down, skip straight to the spool
        self._backoff = Backoff()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: Item) -> None:
        self._queue.put(item)

    def qsize(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float = 30.0) -> None:
        """Store and acknowledge everything submitted so far, then end the thread."""
        self._queue.put(None)
        self._stopping.set()
        self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        done = False
        while not done:
            batch, done = self._collect()
            if batch:
                self._store(batch)
                self.ack(batch)
            if not done:
                self._drain_spool()

    def _collect(self) -> tuple[list[Item], bool]:
        """Wait for the first item (briefly, so the spool gets drained while idle), then take
        items until the batch is full or the oldest has waited batch_interval_s."""
        batch: list[Item] = []
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return batch, False
        if first is None:
            return batch, True
        batch.append(first)
        deadline = time.monotonic() + self.batch_interval_s
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                # Poll on a short tick: a blocking get() would wake this thread for every
                # message and hand the GIL back and forth with the MQTT thread (measured:
                # two context switches per message, a fifth of ingest's throughput).
                time.sleep(min(POLL_S, wait))
                continue
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _store(self, batch: list[Item]) -> None:
        lines = [i.line for i in batch if i.line is not None]
        if not lines:
            return
        body = ("\n".join(lines) + "\n").encode()
        points = sum(i.points for i in batch if i.line is not None)
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
                return  # unacknowledged: redelivered to the next ingest
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
                # Retry a blip (refused, a 503), not a write that ran into its timeout: a
                # hung InfluxDB would hold the batch three timeouts long before the spool.
                if attempt < 2 and time.perf_counter() - started < BLIP_S:
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
        if not len(self.spool) or time.monotonic() < self._down_until:
            return
        oldest = self.spool.oldest()
        if oldest is None:
            return
        path, body = oldest
        count = body.count(b"\n")
        if self._write(body, count):
            self.spool.remove(path)
            self.stats.unspooled += count
            log.info("drained %d points from the spool (%d files left)", count, len(self.spool))

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
