"""The MQTT edge of the rules service: readings in, alert events out, nothing lost.

The session is persistent (fixed client id, clean start off, bounded session expiry), so
readings published while the service is down wait in the broker and are judged on its
return. Messages are acknowledged by hand, per batch, only after:

1. the batch's alert points are in the on-disk spool (InfluxDB is written from there by a
   thread, so a database outage never stalls the MQTT side),
2. its alert events are published and acknowledged by the broker (QoS 1, retained),
3. the engine state that includes the batch is saved to disk (atomic replace + fsync).

A crash anywhere before 3 leaves the batch unacknowledged: the broker redelivers it and the
engine, restored from the last save, judges it again to the same events with the same ids,
which overwrite their own retained messages and InfluxDB points. After 3, a redelivered
reading is older than its state machine's last one and is skipped.

Clearing: the ``cleared`` event is published *not* retained (live subscribers see it), then
an empty retained message removes the alert from the topic, so a screen connecting later
never sees a cleared alert. Readings are not taken from a shared subscription: a device's
whole stream must reach the one engine holding its state.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from broker.mqtt import Session, Subscription, new_client, start
from broker.registrysync import wait_for_registry
from rules.engine import Engine
from rules.feed import follow_story, is_profile, judge, profile_change, readings_of
from rules.settings import RulesSettings
from rules.silence import Silence
from rules.store import StateFile
from rules.wording import ward_names
from smartcity import control, logs
from smartcity.alerts import Alert, AlertState, encode_alert
from smartcity.city import City, load_city
from smartcity.codec import Reading
from smartcity.models import format_ts
from smartcity.profiles import Change
from smartcity.registry import Registry
from smartcity.rulefile import RuleSet, load_rules
from smartcity.topics import (
    TopicFilter,
    alert_topic,
    native_filter,
    profile_filter,
    telemetry_filter,
    value_filter,
)
from storage.alerts import alert_line
from storage.batches import collect
from storage.influx import InfluxClient
from storage.lineprotocol import LineProtocolError
from storage.outbox import Entry, Outbox, WriteStats
from storage.spool import Spool

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # how long stop() waits for the broker to take events still in flight


@dataclass(slots=True)
class Delivery:
    """A message the rules worker judges, and what acknowledges it once its alerts are
    saved."""

    readings: list[Reading]  # empty: not valid (ingest reports it); just acknowledged
    mid: int
    qos: int
    generation: int  # the MQTT connection it arrived on; acks never cross connections
    removed: str | None = None  # a device removed by its profile: withdraw its alerts


@dataclass
class RulesStats:
    received: int = 0
    undecodable: int = 0
    batches: int = 0
    published: int = 0
    save_errors: int = 0
    points_dropped: int = 0


class RulesService:
    def __init__(self, settings: RulesSettings, registry: Registry | None = None,
                 rules: RuleSet | None = None, city: City | None = None) -> None:
        self.settings = settings
        city = city or load_city(settings.city_file, scale=settings.scale)
        ruleset = (rules or load_rules(settings.rules_file)).with_city(city)
        self.registry = registry or city.registry()
        self.engine = Engine(ruleset, self.registry, ward_names(city))
        self.silence = Silence(round(settings.silent_after_s * 1000))
        self.stats = RulesStats()
        state_dir = settings.state_dir
        self.state = StateFile(state_dir / "state.json")
        self.heartbeat_path = state_dir / "heartbeat.json"
        self.influx = InfluxClient(settings.influx)
        # Alert points go into the outbox's spool, durable before their readings are
        # acknowledged, and reach InfluxDB from there: a database outage never stalls MQTT.
        self.points: Outbox[Entry] = Outbox(
            self.influx, Spool(state_dir / "spool", settings.spool_max_bytes),
            state_dir / "dead-letter", WriteStats(), name="rules-influx")
        self._lock = threading.Lock()  # the engine: worker thread vs. readers of active()
        self._queue: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._unacked: list[Delivery] = []
        self._stopping = threading.Event()
        self._stopping_at = 0.0
        self._puback = threading.Condition()
        self._pubacked: set[int] = set()
        self._orphans = self._restore()
        self._worker = threading.Thread(target=self._run, name="rules-worker", daemon=True)
        root = settings.mqtt.root
        # Exhibitor devices registered at run time reach the engine through this registry.
        self.profiles = profile_filter(root)
        self.state_topic = str(control.state_topic(root))
        self.session = Subscription(settings.mqtt, telemetry_filter(root),
                                    value_filter(root), native_filter(root), self.profiles,
                                    TopicFilter(self.state_topic))
        self.subscribed = self.session.subscribed
        self.client = self._make_client()

    def _restore(self) -> list[Alert]:
        data = self.state.load()
        if data is None:
            return []
        orphans = self.engine.restore(data)
        log.info("restored %d active alerts from %s", len(self.engine.active()), self.state.path)
        return orphans

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = new_client(s.mqtt, s.client_id, manual_ack=True)
        self.session.attach(client)
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, stop: threading.Event | None = None) -> bool:
        """Read the device registry, then take the session's readings; False if ``stop`` was
        set first. The worker (and its heartbeat) runs meanwhile."""
        s = self.settings
        self.points.start()
        self._worker.start()
        # An exhibitor device's readings judged before its profile arrived would be skipped.
        if not wait_for_registry(s.mqtt, self.registry, "rules", stop or threading.Event()):
            return False
        start(self.client, s.mqtt, Session(s.session_expiry_s, s.receive_maximum))
        return True

    def stop(self) -> None:
        """Judge, publish, save and acknowledge what has arrived, then leave; the session stays
        with the broker, which queues readings for us until we return."""
        self.session.accepting = False
        self._stopping_at = time.monotonic()
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(STOP_GRACE_S + 30)
        self.client.disconnect()  # queued acks leave before the DISCONNECT
        self.client.loop_stop()
        self.points.stop()
        self.influx.close()
        log.info("stopped: %s; engine %s; %d active alerts", asdict(self.stats),
                 asdict(self.engine.counters), len(self.active()))

    def active(self) -> list[Alert]:
        with self._lock:
            return self.engine.active()

    def alive(self) -> bool:
        """False once the worker has died of a bug: the process should exit and be restarted,
        so the broker redelivers what the worker had not acknowledged."""
        return self._worker.is_alive() or self._stopping.is_set()

    # -- MQTT callbacks (network thread) ---------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not self.session.accepting:
            return  # not acknowledged: the broker redelivers it when we are back
        if is_profile(msg.topic, self.profiles):
            self._on_profile(msg)
            return
        if msg.topic == self.state_topic:
            self._on_simulator(msg)
            return
        self.stats.received += 1
        readings = readings_of(msg.topic, bytes(msg.payload), self.registry,
                               self.settings.mqtt.root,
                               now_ms=int(time.time() * 1000))
        if readings is None:
            self.stats.undecodable += 1
        self._queue.put(Delivery(readings or [], msg.mid, msg.qos, self.session.generation))

    def _on_profile(self, msg: mqtt.MQTTMessage) -> None:
        """An exhibitor device registered, changed or removed; acknowledged at once."""
        changed = profile_change(self.registry, msg.topic, bytes(msg.payload),
                                 self.settings.mqtt.root)
        if changed is not None and changed.change is Change.REMOVED:
            # Acknowledged by the worker, once the device's alerts are withdrawn and saved.
            self._queue.put(Delivery([], msg.mid, msg.qos, self.session.generation,
                                 removed=changed.device_id))
            return
        self.session.ack(self.client, msg.mid, msg.qos, self.session.generation)

    def _on_simulator(self, msg: mqtt.MQTTMessage) -> None:
        """The simulator's clock: a story played compressed on the exhibit clock makes the
        rules' hold times compressed alike."""
        follow_story(self.engine, bytes(msg.payload))
        self.session.ack(self.client, msg.mid, msg.qos, self.session.generation)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused an alert publication (mid %d): %s", mid, reason)
        with self._puback:
            self._pubacked.add(mid)
            self._puback.notify_all()

    # -- worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        if self._orphans:
            log.warning("clearing %d alerts whose rule or device is gone", len(self._orphans))
            if self._publish(self._orphans):
                self._save()
        next_beat = 0.0
        done = False
        while not done:
            batch, done = collect(self._queue, self.settings.batch_size,
                                  self.settings.save_interval_s)
            if batch:
                self._process(batch)
            if time.monotonic() >= next_beat:
                self._tell_silent()
                self._beat()
                next_beat = time.monotonic() + self.settings.heartbeat_interval_s

    def _process(self, batch: list[Delivery]) -> None:
        self.stats.batches += 1
        events: list[Alert] = []
        heard: set[str] = set()
        now = int(time.time() * 1000)
        with self._lock:
            for item in batch:
                for reading in item.readings:
                    heard.add(reading.device_id)
                    self.silence.heard(reading.device_id, now, reading.ts_ms)
                events.extend(judge(self.engine, item.readings, item.removed))
            events.extend(self.silence.resumed(self.engine.active(), heard,
                                               {e.alert_id for e in events}))
            self.silence.forget(e.alert_id for e in events if not e.active)
        if events:
            self._store_points(events)
            if not self._publish(events):
                return  # stopping without the broker: unsaved, unacknowledged, redelivered
        self._unacked.extend(batch)
        if self._save():
            self._ack(self._unacked)
            self._unacked = []

    def _tell_silent(self) -> None:
        """Republish, with ``silent_since``, the alerts whose sensor has gone quiet."""
        with self._lock:
            silent = self.silence.check(self.engine.active(), int(time.time() * 1000))
        if silent:
            for alert in silent:
                log.warning("%s: %s has sent nothing since %s", alert.alert_id,
                            alert.device_id, alert.silent_since)
            self._store_points(silent)
            self._publish(silent)

    def _store_points(self, events: Sequence[Alert]) -> None:
        lines = []
        for event in events:
            try:
                lines.append(alert_line(event))
            except LineProtocolError as e:
                log.error("alert %s cannot be stored in InfluxDB: %s", event.alert_id, e)
        if lines and not self.points.spool_now(lines):
            self.stats.points_dropped += len(lines)
            log.error("alert spool full (%d bytes): %d alert points not stored in InfluxDB "
                      "(the alerts are still published)", self.points.spool.size_bytes,
                      len(lines))

    def _publish(self, events: Sequence[Alert]) -> bool:
        """Publish and wait until the broker has every message; False if we are stopping and
        the broker did not take them in time."""
        root = self.settings.mqtt.root
        mids: set[int] = set()
        for event in events:
            topic = str(alert_topic(event.domain, event.alert_id, root))
            log.info("%s %s %s: %s", event.state.value, event.level.value, event.alert_id,
                     event.title_en)
            cleared = event.state is AlertState.CLEARED
            mids.add(self.client.publish(topic, encode_alert(event), qos=1,
                                         retain=not cleared).mid)
            if cleared:
                mids.add(self.client.publish(topic, b"", qos=1, retain=True).mid)
        with self._puback:
            while not mids <= self._pubacked:
                if self._stopping.is_set() and \
                        time.monotonic() - self._stopping_at > STOP_GRACE_S:
                    log.error("the broker did not take %d alert messages before stopping; "
                              "their readings will be judged again", len(mids - self._pubacked))
                    return False
                self._puback.wait(0.2)
            self._pubacked -= mids
        self.stats.published += len(events)
        return True

    def _save(self) -> bool:
        try:
            with self._lock:
                data = self.engine.dump()
            self.state.save(data)
        except (OSError, ValueError) as e:
            self.stats.save_errors += 1
            log.error("cannot save the rules state to %s (%s); holding acknowledgements",
                      self.state.path, e)
            return False
        return True

    def _ack(self, items: list[Delivery]) -> None:
        for item in items:
            self.session.ack(self.client, item.mid, item.qos, item.generation)

    def _beat(self) -> None:
        """A file the container healthcheck reads: fresh while the worker turns, and saying
        whether the broker link is up."""
        body = {"ts": format_ts(int(time.time() * 1000)), "connected": self.client.is_connected(),
                "active": len(self.active()), "points_pending": self.points.pending(),
                **asdict(self.stats), **asdict(self.engine.counters)}
        try:
            tmp = self.heartbeat_path.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(body))
            tmp.replace(self.heartbeat_path)
        except OSError as e:
            log.warning("cannot write the heartbeat %s: %s", self.heartbeat_path, e)


def main(settings: RulesSettings) -> int:
    logs.setup("rules", settings.log_level)
    service = RulesService(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("judging %d devices against rules %s from %s; state in %s", len(service.registry),
             ", ".join(service.engine.rules), settings.rules_file or "the built-in HCMC rules",
             settings.state_dir)
    service.start(stop)
    code = 0
    while not stop.wait(1.0):
        if not service.alive():
            log.error("the rules worker died (see above); exiting so that a restart picks up")
            code = 1
            break
    log.info("stopping")
    service.stop()
    return code

