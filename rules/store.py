"""What the rules service keeps on disk: the engine's state.

It is durable before the readings behind it are acknowledged, which is what lets the broker
forget those readings: the state file is replaced atomically (write, fsync, rename, fsync the
directory). Alert points are made durable the same way, in storage's outbox spool.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

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
