"""The MQTT edge of ingest: subscribe, judge, hand over to the writer, acknowledge when stored.

The session is persistent (fixed client id, clean start off, bounded session expiry) and
messages are acknowledged by hand only after their batch is stored, so a crash of ingest, of
the broker link or of InfluxDB loses nothing: the broker redelivers what was not acknowledged,
and a redelivered reading overwrites its identical point in InfluxDB.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.mqtt import Session, Subscription, new_client, start
from broker.registrysync import wait_for_registry
from ingest import brokerlog
from ingest.brokerlog import BrokerLogWatcher, Refused
from ingest.judge import Accepted, Judge, Rejection
from ingest.stats import Stats
from smartcity import logs
from smartcity.city import load_city
from smartcity.codec import dump
from smartcity.errors import Reason
from smartcity.models import DeviceError, ProblemOut, format_ts
from smartcity.profiles import Change, take_profile
from smartcity.registry import Registry
from smartcity.settings import IngestSettings
from smartcity.topics import (
    errors_topic,
    native_filter,
    profile_filter,
    telemetry_filter,
    value_filter,
)
from storage.influx import InfluxClient, InfluxError
from storage.lineprotocol import LineProtocolError, point_line, rejection_line
from storage.outbox import Outbox
from storage.spool import Spool

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Item:
    # What to store for the message: its readings' points (several lines for a SenML pack),
    # a rejection's record, or None; acknowledged with the batch it arrived in either way.
    line: str | None
    mid: int
    qos: int
    generation: int  # the MQTT connection it arrived on; acks never cross connections
    points: int = 1  # readings among the lines, for the stored/spooled counters


STATS_MEASUREMENT = "ingest_stats"


@dataclass
class ReportLimiter:
    """At most ``burst`` reports per device at once, refilled at ``rate`` per second, so a
    device stuck in a loop of bad messages cannot flood its errors topic or the log."""

    burst: float = 20.0
    rate: float = 2.0
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        tokens, last = self._tokens.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._tokens[key] = (tokens, now)
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._tokens[key] = (tokens - 1, now)
        if len(self._tokens) > 100_000:
            self._tokens.clear()
        return True, self._suppressed.pop(key, 0)


class IngestService:
    # The MQTT edge reads the device registry before its session connects (ingest.edge does,
    # on every reconnect); otherwise start() reads it first (broker.registrysync).
    reads_registry_itself = False

    def __init__(self, settings: IngestSettings, registry: Registry) -> None:
        self.settings = settings
        self.stats = Stats()
        self.judge = Judge(registry, settings.mqtt.root, settings.max_payload_bytes,
                           fast=settings.fast_validation)
        # Short timeouts: a hung InfluxDB sends batches to the spool within seconds, and the
        # stats points (their own client, their own thread) never wait on the writer's.
        short = settings.influx.model_copy(update={"timeout_s": settings.write_timeout_s})
        self.influx = InfluxClient(short)
        self._stats_influx = InfluxClient(short)
        state = settings.state_dir
        self.spool = Spool(state / "spool", settings.spool_max_bytes)
        self.writer: Outbox[Item] = Outbox(
            self.influx, self.spool, state / "dead-letter", self.stats, ack=self._ack,
            batch_size=settings.batch_size, batch_interval_s=settings.batch_interval_s,
            name="ingest-writer")
        self.heartbeat_path = state / "heartbeat.json"
        self._reports = ReportLimiter()
        self._stop_stats = threading.Event()
        self._stats_thread = threading.Thread(target=self._report_stats, name="ingest-stats",
                                              daemon=True)
        self._beat_thread = threading.Thread(target=self._heartbeat, name="ingest-heartbeat",
                                             daemon=True)
        root, group = settings.mqtt.root, settings.share_group
        self.registry = registry
        self.profiles = profile_filter(root)
        self.profile_changes = 0  # exhibitor devices added, updated or removed at run time
        self._last_rejection_ms: dict[str, int] = {}
        self.telemetry_filters = (telemetry_filter(root, group), value_filter(root, group),
                                  native_filter(root, group))
        self.subscribed = self._make_edge()
        self.broker_log = (BrokerLogWatcher(settings.broker_log, self._broker_refused)
                           if settings.broker_log else None)

    def _make_edge(self) -> threading.Event:
        """The MQTT connection (paho here); returns the event set once subscribed."""
        s = self.settings
        # Profiles are not shared: every ingest worker needs every device.
        self.session = Subscription(s.mqtt, *self.telemetry_filters, self.profiles)
        self.client = self._make_client()
        return self.session.subscribed

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = new_client(s.mqtt, s.client_id, manual_ack=True)
        self.session.attach(client)
        client.on_message = self._on_message
        # paho keeps its own bounded queue of outgoing QoS 1 messages (error reports here).
        client.max_queued_messages_set(10_000)
        return client

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, stop: threading.Event | None = None) -> bool:
        """Read the device registry, then take the session's readings; False if ``stop`` was
        set before the registry could be read (nothing was taken then)."""
        s = self.settings
        self.writer.start()
        self._beat_thread.start()
        self._stats_thread.start()
        # Not one reading judged before every exhibitor device is known: a reading of a
        # device not yet known would be refused and acknowledged, that is lost.
        if not self.reads_registry_itself and \
                not wait_for_registry(s.mqtt, self.registry, "ingest", stop or threading.Event()):
            return False
        self._start_edge()
        if self.broker_log is not None:
            self.broker_log.start()
        return True

    def stop(self) -> None:
        """Store and acknowledge what has arrived, then leave; the session stays with the broker,
        which keeps queueing for us until we return (or the session expires)."""
        self._stop_accepting()
        if self.broker_log is not None:
            self.broker_log.stop()
        self.writer.stop()
        self._stop_edge()
        self._stop_stats.set()
        self._stats_thread.join(5)
        self._beat_thread.join(5)
        self._write_stats()
        self.influx.close()
        self._stats_influx.close()
        log.info("stopped: %s", self.stats.snapshot())

    def _start_edge(self) -> None:
        s = self.settings
        start(self.client, s.mqtt, Session(s.session_expiry_s, s.receive_maximum))

    def _stop_accepting(self) -> None:
        self.session.accepting = False

    def _stop_edge(self) -> None:
        # paho sends queued packets in order, so the acks leave before the DISCONNECT.
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self) -> bool:
        return self.client.is_connected()

    # -- MQTT callbacks (network thread) ---------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not self.session.accepting:
            return  # not acknowledged: the broker redelivers it to the next ingest
        if msg.topic.endswith("/profile") and self.profiles.matches(msg.topic):
            self._apply_profile(msg.topic, bytes(msg.payload))
            self.session.ack(self.client, msg.mid, msg.qos, self.session.generation)
            return
        self._take(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.session.generation)

    def _take(self, topic: str, payload: bytes, mid: int, qos: int, generation: int) -> None:
        """Judge one telemetry message and hand it to the writer (on the network thread)."""
        self.stats.received += 1
        line, points = None, 0
        try:
            now_ms = int(time.time() * 1000)
            verdict = self.judge(topic, payload, now_ms)
            if isinstance(verdict, Accepted):
                self.stats.accepted += 1
                if verdict.seq is not None:
                    self.stats.record_seq(verdict.device_id, verdict.seq)
                line, points = verdict.line, verdict.points
            else:
                line = self._reject(verdict, now_ms)
        except Exception:  # one bad message must never stop ingest
            self.stats.rejected += 1
            self.stats.rejected_by_reason["internal error"] += 1
            log.exception("could not process a message on %s: %s", topic,
                          logs.truncate(payload))
        self.writer.submit(Item(line, mid, qos, generation, points))

    def _apply_profile(self, topic: str, payload: bytes) -> None:
        """An exhibitor device registered, changed or removed: applied before the next message
        is judged, and acknowledged at once (a profile is state, not a reading to store)."""
        change = take_profile(self.registry, topic, payload, self.settings.mqtt.root)
        if change in (Change.ADDED, Change.UPDATED, Change.REMOVED):
            self.profile_changes += 1

    def _reject(self, r: Rejection, now_ms: int) -> str | None:
        """Count, log, report to the device and return the ``device_rejections`` line to store
        with the message; nothing beyond the count for a report the rate limit holds back."""
        self.stats.rejected += 1
        self.stats.rejected_by_reason[r.reason] += 1
        allowed, suppressed = self._reports.allow(r.device_id or r.topic, time.monotonic())
        if not allowed:
            return None
        detail = "; ".join(str(p) for p in r.problems)
        log.warning("rejected %s: %s (%s); payload: %s%s", r.topic[:200], r.reason, detail,
                    logs.truncate(r.payload),
                    f" [{suppressed} more from this device not logged]" if suppressed else "")
        if r.device_id is None:
            return None
        code = r.code
        report = DeviceError(
            ts=format_ts(now_ms), topic=r.topic, reason=r.reason, reason_code=int(code),
            reason_code_name=code.spec_name,
            errors=[ProblemOut(field=p.field, message=p.message) for p in r.problems],
            payload=logs.truncate(r.payload, 300), suppressed=suppressed)
        self._report(str(errors_topic(r.device_id, self.settings.mqtt.root)), dump(report),
                     [("reason-code", str(int(code))), ("reason-code-name", code.spec_name),
                      ("reason-string", str(r.reason))])
        # One point per rejection: a later one in the same millisecond must not overwrite it.
        ts_ms = max(now_ms, self._last_rejection_ms.get(r.device_id, 0) + 1)
        if len(self._last_rejection_ms) > 100_000:
            self._last_rejection_ms.clear()
        self._last_rejection_ms[r.device_id] = ts_ms
        device = self.judge.registry.get(r.device_id)
        return rejection_line(r.device_id, r.reason, code, r.topic, detail, r.payload,
                              suppressed, ts_ms, device.source if device else None)

    def _broker_refused(self, refused: Refused) -> None:
        """A publish the broker refused to a device (its log's thread): reported and stored
        like a message ingest refused itself."""
        device = self.registry.get(refused.device_id)
        if device is None:
            return
        root = self.settings.mqtt.root
        rejection = Rejection(refused.topic, refused.device_id, Reason.BROKER_REFUSED,
                              brokerlog.problems(device, refused, root), b"")
        line = self._reject(rejection, int(time.time() * 1000))
        if line is not None:
            # Nothing to acknowledge (QoS 0): the broker never delivered the message.
            self.writer.submit(Item(line, 0, 0, 0, 0))

    def _report(self, topic: str, body: bytes, user: list[tuple[str, str]]) -> None:
        """Publish a JSON report at QoS 1. PUBLISH has no Reason String of its own: user
        properties carry the code and reason."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        props.UserProperty = user
        self.client.publish(topic, body, qos=1, properties=props)

    # -- writer thread -----------------------------------------------------------------------

    def _ack(self, items: list[Item]) -> None:
        for item in items:
            self.session.ack(self.client, item.mid, item.qos, item.generation)

    # -- stats -----------------------------------------------------------------------------

    def _report_stats(self) -> None:
        last = self.stats.stored + self.stats.spooled
        while not self._stop_stats.wait(self.settings.stats_interval_s):
            now = self.stats.stored + self.stats.spooled
            snap = self.stats.snapshot()
            log.info("%.0f msg/s stored; received %d, rejected %d, spooled %d, queue %d",
                     (now - last) / self.settings.stats_interval_s, snap["received"],
                     snap["rejected"], snap["spooled"], self.writer.qsize())
            last = now
            self._write_stats()

    def _heartbeat(self) -> None:
        """Its own thread, touching nothing that waits on InfluxDB or the broker: a stuck
        write never looks like a hung ingest."""
        while not self._stop_stats.is_set():
            try:
                self._beat()
            except OSError as e:
                log.warning("cannot write the heartbeat %s: %s", self.heartbeat_path, e)
            self._stop_stats.wait(self.settings.heartbeat_interval_s)

    def _beat(self) -> None:
        """A file the container healthcheck reads: fresh while the stats loop turns, and saying
        whether the broker link is up."""
        body = {"ts": format_ts(int(time.time() * 1000)),
                "connected": self._connected(), "subscribed": self.subscribed.is_set(),
                "queue": self.writer.qsize(),
                **self.stats.snapshot()}
        tmp = self.heartbeat_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(body))
        tmp.replace(self.heartbeat_path)

    def _write_stats(self) -> None:
        """One point for the operations board; skipped quietly while InfluxDB is down."""
        snap = self.stats.snapshot()
        snap["queue"] = self.writer.qsize()
        snap["spool_bytes"] = self.spool.size_bytes
        try:
            line = point_line(STATS_MEASUREMENT, {"client_id": self.settings.client_id}, snap,
                              int(time.time() * 1000))
            self._stats_influx.write(f"{line}\n".encode())
        except InfluxError as e:
            log.debug("ingest stats not stored: %s", e)
        except LineProtocolError as e:
            log.error("ingest stats cannot be stored: %s", e)


def main(settings: IngestSettings,
         make: Callable[[IngestSettings, Registry], IngestService] = IngestService) -> int:
    """Run until SIGINT or SIGTERM; ``make`` builds the service (the launcher passes
    :func:`ingest.edgeservice.make_service`, which picks the MQTT edge)."""
    logs.setup("ingest", settings.log_level)
    registry = load_city(settings.city_file, scale=settings.scale).registry()
    service = make(settings, registry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("storing into %s database %r; %d devices registered", settings.influx.url,
             settings.influx.db, len(registry))
    if service.start(stop):
        stop.wait()
    log.info("stopping")
    service.stop()
    return 0
