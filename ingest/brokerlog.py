"""Publishes the broker refused, read from Mosquitto's log, so a device that publishes on a
wrong topic (``tele/booth/SENSOR`` with Tasmota's default FullTopic, ``city/flood/<id>/data``)
is told so on its errors topic and its page, like any message ingest refused itself.

Why the log: Mosquitto 2.0 tells only the publisher (a PUBACK with 0x87 under MQTT 5,
nothing under 3.1.1) and offers no event a client can subscribe to; with ``log_type debug``
it writes ``Denied PUBLISH from <client id> (... '<topic>', ... (<n> bytes))`` and, on
connect, ``New client connected from ... as <client id> (..., u'<username>')``. Device
usernames are issued by the exhibit (``dev-<id>``), so a refused topic is traced to its device
by the account, never by a client id the device chose. The payload is not in the log, only
its size.

The broker writes the file (``log_dest file``, opened for appending); the watcher reads what
was added every half second and, past ``max_bytes``, empties the file, which the broker's
appending writes then fill again from the start. Debug logging costs the broker a line per
message it receives and sends: bench/broker_log.py measures it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.dynsec import DEVICE_USER_PREFIX
from smartcity.errors import FieldProblem
from smartcity.formats import is_native
from smartcity.formats.mapping import topics_to_use
from smartcity.registry import DeviceInfo
from smartcity.topics import status_topic, telemetry_topic

log = logging.getLogger(__name__)

_CONNECTED = re.compile(r"New client connected from \S+ as (\S+) \(p\d+, c\d+, k\d+"
                        r"(?:, u'([^']*)')?\)")
_DENIED = re.compile(r"Denied PUBLISH from (\S+) \(d\d, q\d, r\d, m\d+, '(.*)', \.\.\. "
                     r"\((\d+) bytes\)\)")
MAX_CLIENTS = 100_000


@dataclass(frozen=True)
class Refused:
    device_id: str
    topic: str
    size: int


class BrokerLog:
    """The pure part: lines in, refused publishes of device accounts out."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    def feed(self, line: str) -> Refused | None:
        if "Denied PUBLISH" in line:
            m = _DENIED.search(line)
            if m is None:
                return None
            user = self._users.get(m.group(1), "")
            if not user.startswith(DEVICE_USER_PREFIX):
                return None  # a service, or a client whose connection we did not see
            return Refused(user.removeprefix(DEVICE_USER_PREFIX), m.group(2), int(m.group(3)))
        if "New client connected" in line:
            m = _CONNECTED.search(line)
            if m is not None:
                if len(self._users) > MAX_CLIENTS:
                    self._users.clear()
                self._users[m.group(1)] = m.group(2) or ""
        return None


def problems(device: DeviceInfo, refused: Refused, root: str) -> list[FieldProblem]:
    """What to tell the exhibitor: the topic used, and the topics to use."""
    if is_native(device.format):
        use = topics_to_use(device, root)
    else:
        telemetry = str(telemetry_topic(device.domain, device.device_id, root))
        use = [telemetry, f"{telemetry}/<metric>"]
    use.append(str(status_topic(device.domain, device.device_id, root)))
    return [FieldProblem("topic", f"the broker refused a publish of {refused.size} bytes on "
                                  f"{refused.topic[:200]!r}: this device may publish only on "
                                  f"{', '.join(use)}")]


class BrokerLogWatcher:
    """Follows the broker's log file on its own thread and hands each refused publish of a
    device to ``on_refused`` (which must not raise: it is caught and logged)."""

    def __init__(self, path: Path, on_refused: Callable[[Refused], None],
                 max_bytes: int = 16 * 2**20, interval_s: float = 0.5) -> None:
        self.path = path
        self.on_refused = on_refused
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self.parser = BrokerLog()
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-log", daemon=True)
        self._pos = 0
        self._rest = b""

    def start(self) -> None:
        # What the log held before we started was reported (or not) by an earlier run; the
        # connections in it still tell us who is who.
        self._read(report=False)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._read(report=True)
            except OSError as e:
                log.debug("broker log %s unreadable: %s", self.path, e)
            except Exception:  # the watcher must outlive any surprise in the log
                log.exception("broker log %s: could not read", self.path)

    def _read(self, report: bool) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._pos:  # emptied (by us or an operator): start again
            self._pos, self._rest = 0, b""
        if size == self._pos:
            return
        with self.path.open("rb") as f:
            f.seek(self._pos)
            data = f.read(size - self._pos)
        self._pos += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        for raw in lines:
            refused = self.parser.feed(raw.decode("utf-8", "replace"))
            if refused is not None and report:
                self.refused += 1
                try:
                    self.on_refused(refused)
                except Exception:
                    log.exception("could not report a refused publish on %s", refused.topic)
        if self._pos >= self.max_bytes:
            # Appending writers continue at the new end; a line written between the read
            # above and this truncation is lost (a refused publish is rare; a window of
            # microseconds).
            with self.path.open("r+b") as f:
                f.truncate(0)
            self._pos, self._rest = 0, b""
