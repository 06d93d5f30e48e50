"""The live hub: the broker's readings, statuses, alerts, simulation state and exhibitor
registrations, fanned out to every connected screen (``WS /api/v1/live`` and its SSE twin).

Two halves, joined by a deque:

- the MQTT edge, on the network thread of the api's one MQTT connection
  (:class:`~api.link.MqttLink`): judges each message (only valid readings of devices
  in the registry go on), encodes it once and appends it to the inbox. It never calls into
  the event loop, so a replay pushing 10k messages a second costs the loop nothing per
  message;
- the fan-out, a task on the event loop: every ``tick_s`` it drains the inbox, keeps the
  state a new screen's snapshot needs, and puts each event into the outbox of every client
  whose filter wants it. Readings times clients are kept within a budget per tick: beyond
  it, readings wait in line, a device's newer reading replacing its waiting one
  (:class:`~api.live.buffer.Pacer`), so a replay at 10k messages a second is coalesced
  rather than outrunning the api. When most clients fall behind (the loop itself is
  saturated), the budget halves, and grows back as they catch up.

A client's outbox is bounded and coalesces when full (:mod:`api.live.buffer`); one that stays
full for ``behind_limit_s`` or misses an event is closed (WS 1013, SSE stream ended) and
counted, so a stalled screen never holds the others back.

The snapshot's readings are the ones the hub has seen since it started: it does not warm
itself from InfluxDB, whose last values come per metric, each at its own time, without the
``seq`` and ``source`` of a reading. The city's devices report every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from api.link import MqttLink
from api.live.buffer import Pacer
from api.live.client import GOING_AWAY, TRY_AGAIN_LATER, LiveClient
from api.live.filter import LiveFilter
from api.live.wire import (
    DeviceAction,
    Event,
    EventType,
    alert_event,
    device_event,
    device_topics,
    ping_event,
    reading_event,
    simulation_event,
    snapshot_event,
    status_event,
)
from smartcity.alerts import AlertState, decode_alert
from smartcity.codec import Reading, decode_status
from smartcity.control import STOPPED, decode_state, state_topic
from smartcity.errors import ContractError, FieldProblem
from smartcity.formats.decoding import decode_device_message
from smartcity.ids import check_id
from smartcity.logs import truncate
from smartcity.models import Source
from smartcity.profiles import Change, apply_profile, decode_profile
from smartcity.registry import DeviceInfo, Registry
from smartcity.settings import LiveSettings
from smartcity.topics import (
    NATIVE_LEVEL,
    TopicFilter,
    check_domain,
    native_filter,
    parse_device_topic,
    profile_filter,
)

log = logging.getLogger(__name__)

def now_ms() -> int:
    return int(time.time() * 1000)


def decode_readings(topic: str, payload: bytes, root: str, received_ms: int,
                    registry: Registry) -> list[Reading]:
    """The one place the live stream decodes telemetry, so the codec's entry point can change
    here alone."""
    return decode_device_message(topic, payload, registry, root, now_ms=received_ms).readings


FORGET = "forget"
"""``Event.action`` of an inbox entry that only removes state (an empty retained message)."""


def _forget(kind: EventType, name: str, device_id: str | None = None) -> Event:
    return Event(kind, b"", key=(kind.value, name), device_id=device_id, action=FORGET)


@dataclass(frozen=True)
class LiveStats:
    clients: int
    connections: int
    received: int
    readings: int
    invalid: int
    overflowed: int
    events: int
    delivered: int
    coalesced: int
    dropped_clients: int
    held: int
    budget: int


class LiveHub:
    def __init__(self, settings: LiveSettings, registry: Registry, edge: MqttLink) -> None:
        self.settings = settings
        self.registry = registry
        self.edge = edge
        self.root = edge.settings.root
        self._prefix = self.root + "/"
        self._native = f"{self.root}/{NATIVE_LEVEL}/"
        self._state_topic = str(state_topic(self.root))
        self._inbox: deque[Event] = deque()
        # Telemetry waits here undecoded until the next tick: every message, in order, up to
        # `decode_per_tick`; beyond that only the newest per topic (a screen shows a device's
        # newest value), so a replay at 10k messages a second costs the hub what its devices
        # cost, not what its messages do.
        self._pending: list[tuple[str, bytes, int]] = []
        self._newest: dict[str, tuple[bytes, int]] = {}
        self._pending_lock = threading.Lock()
        self.superseded = 0
        # Exhibitor devices announced so far, by the network thread; the registration route
        # also writes the registry, so "added" and "removed" are judged against this.
        self._announced: dict[str, DeviceInfo] = {
            d.device_id: d for d in registry if d.source is Source.LIVE}
        # What a new screen's snapshot holds; touched by the event loop only.
        self._readings: dict[Hashable, Event] = {}
        self._statuses: dict[str, Event] = {}
        self._alerts: dict[str, Event] = {}
        self._simulation: Event | None = None
        self._clients: set[LiveClient] = set()
        self._pacer = Pacer()
        self._budget = settings.delivery_budget
        self._task: asyncio.Task[None] | None = None
        self._shutting_down = False
        # counters: the first four written by the network thread only, the rest by the loop
        self.received = 0
        self.readings = 0
        self.invalid = 0
        self.overflowed = 0
        self.events = 0
        self.delivered = 0
        self.connections = 0
        self.dropped_clients = 0
        self._coalesced = 0
        self.on_reading: Callable[[Reading], None] | None = None  # the api's latest values
        edge.follow(self.filters(), self.receive)

    def filters(self) -> list[tuple[TopicFilter, int]]:
        """What the hub subscribes to besides statuses and the simulator state. Readings at
        QoS 0: a screen wants the newest, not a redelivery."""
        root = self.root
        return [(TopicFilter(f"{root}/+/+/telemetry"), 0),
                (TopicFilter(f"{root}/+/+/telemetry/+"), 0),
                (native_filter(root), 0),
                (TopicFilter(f"{root}/alerts/+/+"), 1),
                (profile_filter(root), 1)]

    # --- the MQTT edge, on the network thread ------------------------------------------

    def receive(self, topic: str, payload: bytes, retained: bool) -> None:
        self.received += 1
        if ("/telemetry" in topic and topic.startswith(self._prefix)) \
                or topic.startswith(self._native):
            with self._pending_lock:
                if len(self._pending) < self.settings.decode_per_tick:
                    self._pending.append((topic, payload, now_ms()))
                else:
                    if topic in self._newest:
                        self.superseded += 1
                    self._newest[topic] = (payload, now_ms())
            return
        self._take(topic, payload)

    def _take(self, topic: str, payload: bytes, received: int | None = None) -> None:
        try:
            items = self._judge(topic, payload, received)
        except ContractError as e:
            self.invalid += 1
            log.debug("live stream ignored %s (%s): %s", topic, e, truncate(payload))
            return
        except Exception:
            self.invalid += 1
            log.exception("live stream failed on %s: %s", topic, truncate(payload))
            return
        if not items:
            return
        if len(self._inbox) >= self.settings.inbox_max and \
                all(e.kind is EventType.READING for e in items):
            # The fan-out is not draining; the next readings supersede these anyway.
            self.overflowed += len(items)
            return
        self._inbox.extend(items)

    def _judge(self, topic: str, payload: bytes, received: int | None = None) -> list[Event]:
        if topic == self._state_topic:
            return [simulation_event(decode_state(payload) if payload else STOPPED, topic)]
        if not topic.startswith(self._prefix):
            raise ContractError("topic outside the city root", [FieldProblem("topic", topic)])
        levels = topic[len(self._prefix):].split("/")
        if levels[0] == "alerts":
            return self._alert(topic, levels, payload)
        if levels[0] == "devices":
            return self._profile(topic, payload)
        if (len(levels) >= 3 and levels[2] == "telemetry") or levels[0] == NATIVE_LEVEL:
            return self._telemetry(topic, payload, received)
        if len(levels) == 3 and levels[2] == "status":
            return self._status(topic, payload)
        raise ContractError("not a topic of the live stream", [FieldProblem("topic", topic)])

    def _take_pending(self) -> None:
        """Judge the telemetry that arrived since the last tick, the newest per topic."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
            newest, self._newest = self._newest, {}
        for topic, payload, received in pending:
            self._take(topic, payload, received)
        for topic, (payload, received) in newest.items():
            self._take(topic, payload, received)

    def _telemetry(self, topic: str, payload: bytes, received: int | None = None) -> list[Event]:
        received = now_ms() if received is None else received
        out = []
        readings = decode_readings(topic, payload, self.root, received, self.registry)
        for reading in readings:
            device = self.registry.get(reading.device_id)
            if device is None:
                raise ContractError("unknown device", [FieldProblem(
                    "device_id", f"{reading.device_id!r} is not registered")])
            if device.domain is not reading.domain:
                raise ContractError("wrong domain", [FieldProblem(
                    "domain", f"{reading.device_id!r} is a {device.domain.value} device")])
            undeclared = set(reading.metrics) - set(device.metrics) if device.metrics else ()
            if undeclared:
                raise ContractError("undeclared metric", [FieldProblem(
                    ", ".join(sorted(undeclared)), "was not declared at registration")])
            out.append(reading_event(reading, topic, received))
        if self.on_reading is not None:
            for reading in readings:
                self.on_reading(reading)
        self.readings += len(out)
        return out

    def _status(self, topic: str, payload: bytes) -> list[Event]:
        parsed = parse_device_topic(topic, self.root)
        if not payload:
            return [_forget(EventType.STATUS, parsed.device_id, parsed.device_id)]
        return [status_event(parsed.domain, parsed.device_id, decode_status(payload), topic)]

    def _alert(self, topic: str, levels: list[str], payload: bytes) -> list[Event]:
        if len(levels) != 3:
            raise ContractError("not an alert topic", [FieldProblem("topic", topic)])
        domain = check_domain(levels[1])
        alert_id = check_id(levels[2], "alert_id")
        alert = decode_alert(payload)
        if alert is None:
            return [_forget(EventType.ALERT, alert_id)]
        if alert.alert_id != alert_id or alert.domain is not domain:
            raise ContractError("alert does not match its topic", [FieldProblem(
                "alert_id", f"{alert.domain.value}/{alert.alert_id} on {topic!r}")])
        return [alert_event(alert, topic)]

    def _profile(self, topic: str, payload: bytes) -> list[Event]:
        profile = decode_profile(topic, payload, self.root)
        device_id = profile.device_id
        existing = self.registry.get(device_id)
        if apply_profile(self.registry, profile) is Change.REFUSED:
            raise ContractError("not an exhibitor device", [FieldProblem(
                "device_id", f"{device_id!r} is one of the city's own devices, or its profile "
                             "does not say 'live'; a profile neither replaces nor removes a "
                             "city device")])
        # The registration route also writes the registry, so whether screens heard of the
        # device is judged against what the hub announced.
        announced = self._announced.get(device_id)
        if profile.device is None:
            gone = self._announced.pop(device_id, None) or existing
            return [device_event(DeviceAction.REMOVED, gone, self.root)] if gone else []
        if profile.device == announced:
            return []  # the same retained profile again (a reconnect)
        self._announced[device_id] = profile.device
        action = DeviceAction.ADDED if announced is None else DeviceAction.UPDATED
        return [device_event(action, profile.device, self.root)]

    # --- the fan-out, on the event loop ------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def aclose(self) -> None:
        self.shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def shutdown(self) -> None:
        """Close every stream (the server is stopping): streams never end by themselves,
        and the server waits for them."""
        self._shutting_down = True
        for client in list(self._clients):
            client.close(GOING_AWAY, "the api is shutting down")
            self.leave(client)

    async def _run(self) -> None:
        next_ping = time.monotonic() + self.settings.heartbeat_s
        while True:
            await asyncio.sleep(self.settings.tick_s)
            now = time.monotonic()
            ping = now >= next_ping
            if ping:
                next_ping = now + self.settings.heartbeat_s
            try:
                self.tick(now, ping)
            except Exception:
                log.exception("live stream fan-out failed; going on")

    def tick(self, now: float, ping: bool = False) -> None:
        """Drain the inbox, keep the snapshot state, hand each event to the clients that
        want it, and close clients that have fallen behind."""
        self._take_pending()
        inbox = self._inbox
        batch = [inbox.popleft() for _ in range(len(inbox))]
        out: list[Event] = []
        readings: list[Event] = []
        for event in batch:
            try:
                self._apply(event, readings if event.kind is EventType.READING else out)
            except Exception:
                log.exception("live stream could not apply %r; going on", event)
        allowance = max(1, self._budget // max(1, len(self._clients)) - len(out))
        registry = self.registry
        out.extend(r for r in self._pacer.offer(readings, allowance) if r.device_id in registry)
        if ping:
            out.append(ping_event(now_ms()))
        self.events += sum(1 for e in out if e.kind is not EventType.PING)
        for client in list(self._clients):
            self._deliver(client, out, now)
        self._adapt()

    def _adapt(self) -> None:
        clients = self._clients
        full = self.settings.delivery_budget
        behind = sum(1 for c in clients if c.outbox.behind_since is not None)
        if behind * 2 > len(clients):
            self._budget = max(len(clients), self._budget // 2)
        elif self._budget < full:
            self._budget = min(full, self._budget + max(1, full // 20))

    def _deliver(self, client: LiveClient, events: list[Event], now: float) -> None:
        box, flt = client.outbox, client.filter
        put = 0
        for event in events:
            if flt.everything or flt.accepts(event):
                box.put(event, now)
                put += 1
        self.delivered += put
        if box.lost:
            self._drop(client, "missed events it had no room for; reconnect for a fresh "
                               "snapshot")
        elif box.behind_for(now) > self.settings.behind_limit_s:
            self._drop(client, f"stayed more than {self.settings.behind_limit_s:g} s behind "
                               "the live stream; reconnect for a fresh snapshot")
        elif put:
            client.wake.set()

    def _drop(self, client: LiveClient, why: str) -> None:
        self.dropped_clients += 1
        log.info("closing a live stream client: it %s", why)
        client.close(TRY_AGAIN_LATER, "too slow: " + why)
        self.leave(client)

    def _apply(self, event: Event, out: list[Event]) -> None:
        kind = event.kind
        if kind is EventType.READING:
            self._readings.pop(event.key, None)  # re-inserted: the snapshot keeps arrival order
            self._readings[event.key] = event
            out.append(event)
        elif kind is EventType.STATUS:
            assert event.device_id is not None
            if event.action == FORGET:
                self._statuses.pop(event.device_id, None)
                return
            self._statuses[event.device_id] = event
            if event.device_id in self.registry:
                out.append(event)
        elif kind is EventType.ALERT:
            assert isinstance(event.key, tuple)
            alert_id = event.key[1]
            if event.action == FORGET:
                self._alerts.pop(alert_id, None)
                return
            if event.action == AlertState.CLEARED:
                self._alerts.pop(alert_id, None)
            else:
                self._alerts[alert_id] = event
            out.append(event)
        elif kind is EventType.SIMULATION:
            self._simulation = event
            out.append(event)
        elif kind is EventType.DEVICE:
            out.append(event)
            device_id = event.device_id
            if event.action == DeviceAction.REMOVED:
                for key in [k for k, e in self._readings.items() if e.device_id == device_id]:
                    del self._readings[key]
            elif device_id in self._statuses:
                out.append(self._statuses[device_id])  # a status it sent before it was known

    # --- clients -----------------------------------------------------------------------

    def join(self, flt: LiveFilter) -> LiveClient:
        """A new screen, with its snapshot; call on the event loop, so no event falls
        between the snapshot and the stream."""
        client = LiveClient(flt, self.snapshot(flt), self.settings.buffer)
        self.connections += 1
        if self._shutting_down:
            client.close(GOING_AWAY, "the api is shutting down")
        else:
            self._clients.add(client)
        return client

    def leave(self, client: LiveClient) -> None:
        if client in self._clients:
            self._clients.discard(client)
            self._coalesced += client.outbox.coalesced

    def snapshot(self, flt: LiveFilter) -> Event:
        registry = self.registry
        devices = [d for d in registry if flt.everything or flt.accepts_device(
            d.domain.value, d.device_id, device_topics(d, self.root) if flt.topics else ())]

        def wanted(e: Event) -> bool:
            return flt.everything or flt.accepts(e)

        return snapshot_event(
            now_ms(), devices,
            [e for e in self._readings.values() if e.device_id in registry and wanted(e)],
            [e for e in self._statuses.values() if e.device_id in registry and wanted(e)],
            [e for e in self._alerts.values() if wanted(e)],
            self._simulation if self._simulation and wanted(self._simulation) else None)

    def stats(self) -> LiveStats:
        clients = list(self._clients)
        return LiveStats(
            clients=len(clients), connections=self.connections, received=self.received,
            readings=self.readings, invalid=self.invalid, overflowed=self.overflowed,
            events=self.events, delivered=self.delivered,
            coalesced=self.superseded + self._coalesced + self._pacer.coalesced +
            sum(c.outbox.coalesced for c in clients),
            dropped_clients=self.dropped_clients, held=len(self._pacer), budget=self._budget)


def shutdown_streams(app: object) -> None:
    """End every live stream of ``app`` before its server stops: the server waits for open
    responses, and a stream never ends by itself."""
    hub = getattr(getattr(app, "state", None), "live", None)
    if isinstance(hub, LiveHub):
        hub.shutdown()
