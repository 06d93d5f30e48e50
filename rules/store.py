"""What the rules service keeps on disk: the engine's state, and alert points on their way
to InfluxDB.

Both are durable before the readings behind them are acknowledged, which is what lets the
broker forget those readings: the state file is replaced atomically (write, fsync, rename,
fsync the directory), and alert points go to ingest's on-disk spool first, drained into
InfluxDB by a thread that retries with backoff while the database is down, so the MQTT side
never waits for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from ingest.spool import Spool
from ingest.writer import Backoff, PointWriter
from smartcity.influx import InfluxRejected, InfluxUnavailable
from smartcity.models import format_ts

log = logging.getLogger(__name__)


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is none. An unreadable file is moved aside (and
        said loudly) rather than blocking the exhibit: the service starts fresh."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as e:
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            self.path.replace(aside)
            log.error("rules state %s is unreadable (%s); moved to %s, starting fresh: "
                      "active alerts may be raised again", self.path, e, aside)
            return None
        if not isinstance(data, dict):
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(orjson.dumps(data))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class AlertPoints:
    """Alert points, spooled on disk by :meth:`put` and written to InfluxDB by a thread.

    Guarantees: :meth:`put` returns once the lines are fsynced (or False if the spool is full);
    lines reach InfluxDB oldest first; lines InfluxDB refuses as malformed (4xx) are kept in
    ``dead_letter_dir`` and never retried; :meth:`stop` makes one last attempt and leaves the
    rest in the spool for the next start.
    """

    def __init__(self, sink: PointWriter, spool: Spool, dead_letter_dir: Path) -> None:
        self.sink = sink
        self.spool = spool
        self.dead_letter_dir = dead_letter_dir
        self.written = 0
        self.write_errors = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._backoff = Backoff()
        self._down_until = 0.0  # while InfluxDB is known down, new points only wake us then
        self._thread = threading.Thread(target=self._run, name="rules-influx", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if len(self.spool):
            log.info("%d batches of alert points from an earlier run wait for InfluxDB",
                     len(self.spool))

    def put(self, lines: list[str]) -> bool:
        if not self.spool.put(("\n".join(lines) + "\n").encode()):
            return False
        self._wake.set()
        return True

    def pending(self) -> int:
        return len(self.spool)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if time.monotonic() >= self._down_until:
                self._drain()
        self._drain()

    def _drain(self) -> None:
        while (oldest := self.spool.oldest()) is not None:
            path, body = oldest
            try:
                self.sink.write(body)
            except InfluxRejected as e:
                self._dead_letter(body, str(e))
            except InfluxUnavailable as e:
                self.write_errors += 1
                wait = self._backoff.next()
                self._down_until = time.monotonic() + wait
                log.warning("InfluxDB unavailable (%s); %d batches of alert points wait, next "
                            "try in %.1fs", e, len(self.spool), wait)
                return
            else:
                self.written += body.count(b"\n")
                if self._backoff.current:
                    log.info("InfluxDB reachable again; writing the alert points that waited")
                self._backoff.reset()
            self.spool.remove(path)

    def _dead_letter(self, body: bytes, error: str) -> None:
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        now = format_ts(int(time.time() * 1000))
        path = self.dead_letter_dir / f"{now[:10]}.lp"
        with path.open("ab") as f:
            f.write(f"# {now} {error}\n".encode())
            f.write(body)
        log.error("InfluxDB refused %d alert points, kept in %s: %s", body.count(b"\n"), path,
                  error)
