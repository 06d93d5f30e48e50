"""A bounded on-disk spool for batches InfluxDB could not take.

While InfluxDB is down, ingest writes each batch here (fsynced) and then acknowledges its
messages, so the broker's queue does not have to hold the outage; the spool drains oldest
first when InfluxDB returns. When the spool is full, ingest stops acknowledging and the
broker keeps the messages instead: nothing is dropped either way.
"""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        for tmp in directory.glob("*.tmp"):  # half-written by a crash: its messages were
            tmp.unlink()                     # never acknowledged, the broker redelivers them
        self._files = sorted(directory.glob("*.lp.gz"))
        self._bytes = sum(f.stat().st_size for f in self._files)
        self._next = int(self._files[-1].name.split(".")[0]) + 1 if self._files else 0

    def __len__(self) -> int:
        return len(self._files)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def put(self, lines: bytes) -> bool:
        """Store a batch durably; False if it would not fit."""
        data = gzip.compress(lines, compresslevel=1)
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                return False
            path = self.directory / f"{self._next:012d}.lp.gz"
            self._next += 1
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(path)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._files.append(path)
            self._bytes += len(data)
            return True

    def oldest(self) -> tuple[Path, bytes] | None:
        with self._lock:
            if not self._files:
                return None
            path = self._files[0]
        return path, gzip.decompress(path.read_bytes())

    def remove(self, path: Path) -> None:
        with self._lock:
            size = path.stat().st_size
            path.unlink()
            self._files.remove(path)
            self._bytes -= size
