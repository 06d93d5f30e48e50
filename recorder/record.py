"""Recording what the broker carries into a recording file.

Two MQTT v5 connections, because one subscription cannot tell both things a replay needs:

- the *live* connection subscribes with Retain As Published and without the retained
  messages, so every record carries the retain flag its publisher set (a device's status
  replays as retained);
- a short-lived *snapshot* connection subscribes without Retain As Published, so the broker
  flags exactly the retained messages it held when recording began. These are recorded first,
  with the ``initial`` flag: the state of the city at the start. It disconnects once they
  have stopped arriving.

Subscriptions are QoS 2, so each record keeps the QoS its publisher used. Arrival times come
from the monotonic clock anchored to the wall clock once, so a clock step during a recording
cannot reorder it. The live session outlives a network blip (session expiry) and is ended on
a clean stop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker.mqtt import Session, connect, new_client
from recorder.fileformat import Header, Record, RecordingWriter
from recorder.publisher import no_delay
from smartcity.settings import MqttSettings
from smartcity.topics import TopicFilter

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 60
SNAPSHOT_QUIET_S = 0.5  # retained messages arrive in one burst after the SUBACK
SNAPSHOT_MAX_S = 10.0
STATS_EVERY_S = 10.0


class RecordError(RuntimeError):
    pass


@dataclass(frozen=True)
class RecordOptions:
    out: Path
    filters: tuple[TopicFilter, ...] = ()  # default: everything under the root
    retained: bool = True  # record the retained messages held when recording starts
    overwrite: bool = False
    note: str = ""
    flush_interval_s: float = 0.5
    max_frame_records: int = 1000


@dataclass
class RecordStats:
    received: int = 0
    initial: int = 0
    frames: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)


class Recorder:
    """:meth:`start` connects and subscribes (returns once subscribed and the retained state
    is recorded); :meth:`stop` disconnects and writes the rest. Records are on disk at most
    ``flush_interval_s`` after they arrive."""

    def __init__(self, settings: MqttSettings, options: RecordOptions) -> None:
        self.settings = settings
        self.options = options
        self.filters = options.filters or (TopicFilter(f"{settings.root}/#"),)
        self.stats = RecordStats()
        self._queue: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wall0 = time.time_ns()
        self._mono0 = time.monotonic_ns()
        self._live_retained: set[str] = set()
        self._initial_topics: set[str] = set()
        self._subscribed = threading.Semaphore(0)
        self._snapshot_last = 0.0
        self.failed = threading.Event()
        self._refused: str | None = None
        host = f"mqtt://{settings.host}:{settings.port}"  # never the credentials
        header = Header(started_ns=self._wall0, broker=host, root=settings.root,
                        filters=tuple(str(f) for f in self.filters), note=options.note,
                        extra={"hostname": _hostname()})
        self.writer = RecordingWriter(options.out, header, overwrite=options.overwrite,
                                      flush_interval_s=options.flush_interval_s,
                                      max_frame_records=options.max_frame_records)
        self._writer_thread = threading.Thread(target=self._write_loop, name="record-writer",
                                               daemon=True)
        self.live = self._client("live", self._on_live)

    def _client(self, role: str, on_message: Any) -> mqtt.Client:
        client = new_client(self.settings, role=f"record-{role}")
        client.on_message = on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _now_ns(self) -> int:
        return self._wall0 + time.monotonic_ns() - self._mono0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._writer_thread.start()
        live_opts = SubscribeOptions(qos=2, retainAsPublished=True,
                                     retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        self.live.on_connect = lambda c, u, f, reason, p: self._on_connect(c, reason, live_opts)
        self.live.on_disconnect = self._on_disconnect
        self._connect(self.live, Session(SESSION_EXPIRY_S))
        self._wait_subscribed(timeout)
        log.info("recording %s from %s:%d into %s", ", ".join(map(str, self.filters)),
                 self.settings.host, self.settings.port, self.options.out)
        if self.options.retained:
            self._snapshot(timeout)

    def _snapshot(self, timeout: float) -> None:
        snap = self._client("snapshot", self._on_snapshot)
        opts = SubscribeOptions(qos=2, retainAsPublished=False,
                                retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
        snap.on_connect = lambda c, u, f, reason, p: self._on_connect(c, reason, opts)
        self._connect(snap, Session(0))
        try:
            self._wait_subscribed(timeout)
            self._snapshot_last = time.monotonic()
            give_up = self._snapshot_last + SNAPSHOT_MAX_S
            while time.monotonic() < min(give_up, self._snapshot_last + SNAPSHOT_QUIET_S):
                time.sleep(0.05)
        finally:
            snap.disconnect()
            snap.loop_stop()
        log.info("recorded %d retained messages as the initial state", self.stats.initial)

    def _connect(self, client: mqtt.Client, session: Session) -> None:
        try:
            connect(client, self.settings, session)
        except OSError as e:
            raise RecordError(f"cannot reach the broker at {self.settings.host}:"
                              f"{self.settings.port}: {e}") from e
        client.loop_start()

    def _wait_subscribed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._subscribed.acquire(timeout=0.1):
            if self._refused:
                raise RecordError(f"the broker refused the connection: {self._refused}")
            if time.monotonic() > deadline:
                raise RecordError("the broker did not confirm the subscription within "
                                  f"{timeout:.0f}s")

    def stop(self) -> RecordStats:
        """Unsubscribe (ending the broker session), then write what is buffered and close."""
        props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        self.live.disconnect(properties=props)
        self.live.loop_stop()
        self._queue.put(None)
        if self._writer_thread.is_alive():
            self._writer_thread.join(30)
        try:
            self.writer.close()
        except OSError as e:
            self.stats.problems.append(f"could not write the last records: {e}")
        self.stats.frames = self.writer.frames_written
        self.stats.bytes = self.writer.bytes_written
        return self.stats

    # -- MQTT callbacks (network threads) ---------------------------------------------------

    def _on_connect(self, client: mqtt.Client, reason: Any, opts: SubscribeOptions) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            log.error("broker refused the connection: %s", reason)
            return
        # QoS 2 messages are handed over only after a PUBREC/PUBREL round trip; a
        # Nagle-delayed PUBREC would shift their arrival times by tens of milliseconds.
        no_delay(client)
        client.subscribe([(str(f), opts) for f in self.filters])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        for f, r in zip(self.filters, reasons, strict=False):
            if r.is_failure:
                log.error("broker refused the subscription to %s: %s", f, r)
        self._subscribed.release()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if reason.is_failure:
            log.warning("lost the broker (%s); reconnecting, the session keeps messages for "
                        "%ds", reason, SESSION_EXPIRY_S)

    def _on_live(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.retain:
                self._live_retained.add(msg.topic)
            self._queue.put(Record(self._now_ns(), msg.topic, bytes(msg.payload), msg.qos,
                                   bool(msg.retain)))

    def _on_snapshot(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Without Retain As Published only retained-at-subscribe messages carry the flag;
        # the others reach the live connection too.
        if not msg.retain:
            return
        self._snapshot_last = time.monotonic()
        with self._lock:
            # Already recorded live (published between the two subscriptions), or again after
            # a reconnect of the snapshot connection.
            if msg.topic in self._live_retained or msg.topic in self._initial_topics:
                return
            self._initial_topics.add(msg.topic)
            self.stats.initial += 1
            self._queue.put(Record(self._now_ns(), msg.topic, bytes(msg.payload), msg.qos,
                                   retain=True, initial=True))

    # -- writer thread ----------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            self._write_records()
        except Exception as e:  # disk full, file removed: nothing more can be recorded
            log.exception("cannot write %s", self.options.out)
            self.stats.problems.append(f"writing stopped: {e}")
            self.failed.set()

    def _write_records(self) -> None:
        next_stats = time.monotonic() + STATS_EVERY_S
        last_count = 0
        while True:
            now = time.monotonic()
            due = self.writer.flush_due_in(now)
            try:
                item = self._queue.get(timeout=min(due if due is not None else 1.0, 1.0))
            except queue.Empty:
                now = time.monotonic()
            else:
                if item is None:
                    return  # stop() flushes and closes
                now = time.monotonic()
                self.stats.received += 1
                self.writer.add(item, now)
            due = self.writer.flush_due_in(now)
            if due is not None and due <= 0:
                self.writer.flush()
            if now >= next_stats:
                rate = (self.stats.received - last_count) / STATS_EVERY_S
                log.info("recorded %d messages (%.0f msg/s), %d KiB", self.stats.received, rate,
                         self.writer.bytes_written // 1024)
                last_count, next_stats = self.stats.received, now + STATS_EVERY_S


def _hostname() -> str:
    import socket

    return socket.gethostname()


def record(settings: MqttSettings, options: RecordOptions, stop: threading.Event,
           duration_s: float | None = None) -> RecordStats:
    """Record until ``stop`` is set or ``duration_s`` has passed."""
    recorder = Recorder(settings, options)
    try:
        recorder.start()
    except RecordError:
        recorder.stop()
        options.out.unlink(missing_ok=True)  # holds only a header; would block a retry
        raise
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not recorder.failed.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or stop.wait(0.2 if left is None
                                                             else min(0.2, left)):
                break
    finally:
        stats = recorder.stop()
    if recorder.failed.is_set():
        raise RecordError("; ".join(stats.problems))
    return stats
