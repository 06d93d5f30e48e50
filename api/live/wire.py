"""The live stream's messages (``WS /api/v1/live`` and its SSE twin): pure, no I/O.

Every event is encoded once, as JSON, when it arrives; the same bytes go to every screen that
wants it. The SSE form (``event: <type>`` + ``data:``) is built from them on first use.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from enum import StrEnum
from typing import Any

import orjson

from smartcity.alerts import Alert
from smartcity.codec import Reading
from smartcity.control import SimulatorState
from smartcity.models import DeviceStatus
from smartcity.registry import DeviceInfo
from smartcity.topics import Domain, profile_topic, status_topic, telemetry_topic


class EventType(StrEnum):
    SNAPSHOT = "snapshot"
    READING = "reading"
    STATUS = "status"
    ALERT = "alert"
    SIMULATION = "simulation"
    DEVICE = "device"
    PING = "ping"


class DeviceAction(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


class Event:
    """One message of the stream, encoded once.

    ``key`` says which pending events a newer one supersedes for a screen that has fallen
    behind (the newest reading of a device with the same metrics, a device's newest status,
    an alert's newest event, the newest simulation state); ``domain``, ``device_id`` and
    ``topics`` are what the filters look at; ``inner`` is the model's own JSON where the
    snapshot embeds it without the ``type`` (alerts, simulation state).
    """

    __slots__ = ("_sse", "_text", "action", "data", "device_id", "domain", "inner", "key",
                 "kind", "topics")

    def __init__(self, kind: EventType, data: bytes, *, key: Hashable | None = None,
                 domain: str | None = None, device_id: str | None = None,
                 topics: tuple[str, ...] = (), inner: bytes | None = None,
                 action: str | None = None) -> None:
        self.kind = kind
        self.data = data
        self.key = key
        self.domain = domain
        self.device_id = device_id
        self.topics = topics
        self.inner = inner
        self.action = action
        self._text: str | None = None
        self._sse: bytes | None = None

    @property
    def text(self) -> str:
        """The JSON as text, for a WebSocket text frame."""
        if self._text is None:
            self._text = self.data.decode()
        return self._text

    @property
    def sse(self) -> bytes:
        """The event in ``text/event-stream`` form; a ping is a comment line."""
        if self._sse is None:
            if self.kind is EventType.PING:
                self._sse = b": ping\n\n"
            else:
                self._sse = b"event: " + self.kind.value.encode() + b"\ndata: " + self.data \
                    + b"\n\n"
        return self._sse

    def __repr__(self) -> str:
        return f"Event({self.kind.value}, {self.data[:80]!r})"


def _with_type(kind: EventType, inner: bytes) -> bytes:
    # {"a":1} -> {"type":"alert","a":1} without decoding again.
    head = b'{"type":"' + kind.value.encode() + b'"'
    return head + (b"," + inner[1:] if inner != b"{}" else b"}")


def reading_key(device_id: str, metrics: Iterable[str]) -> tuple[str, str, tuple[str, ...]]:
    """Readings supersede one another per device and metric set: a device that sends each
    metric on its own topic keeps one pending reading per metric."""
    return (EventType.READING.value, device_id, tuple(sorted(metrics)))


def reading_event(reading: Reading, topic: str, received_ms: int) -> Event:
    body: dict[str, Any] = {
        "type": "reading", "device_id": reading.device_id, "domain": reading.domain.value,
        "ts": reading.ts_ms, "seq": reading.seq, "source": reading.source.value,
        "metrics": reading.metrics, "received": received_ms,
    }
    return Event(EventType.READING, orjson.dumps(body),
                 key=reading_key(reading.device_id, reading.metrics),
                 domain=reading.domain.value, device_id=reading.device_id, topics=(topic,))


def status_event(domain: Domain, device_id: str, status: DeviceStatus, topic: str) -> Event:
    body = {"type": "status", "device_id": device_id, "domain": domain.value,
            **status.model_dump(mode="json")}
    return Event(EventType.STATUS, orjson.dumps(body), key=(EventType.STATUS.value, device_id),
                 domain=domain.value, device_id=device_id, topics=(topic,))


def alert_event(alert: Alert, topic: str) -> Event:
    inner = orjson.dumps(alert.model_dump(mode="json", exclude_none=True))
    return Event(EventType.ALERT, _with_type(EventType.ALERT, inner),
                 key=(EventType.ALERT.value, alert.alert_id), domain=alert.domain.value,
                 device_id=alert.device_id, topics=(topic,), inner=inner,
                 action=alert.state.value)


def simulation_event(state: SimulatorState, topic: str) -> Event:
    inner = orjson.dumps(state.model_dump(mode="json"))
    return Event(EventType.SIMULATION, _with_type(EventType.SIMULATION, inner),
                 key=(EventType.SIMULATION.value,), topics=(topic,), inner=inner)


def device_topics(device: DeviceInfo, root: str) -> tuple[str, ...]:
    """The topics a device is known by, for the ``topic`` filter of devices."""
    return (str(telemetry_topic(device.domain, device.device_id, root)),
            str(status_topic(device.domain, device.device_id, root)),
            str(profile_topic(device.device_id, root)))


def device_event(action: DeviceAction, device: DeviceInfo, root: str) -> Event:
    body = {"type": "device", "action": action.value, "device": device.model_dump(mode="json")}
    return Event(EventType.DEVICE, orjson.dumps(body),
                 key=(EventType.DEVICE.value, device.device_id), domain=device.domain.value,
                 device_id=device.device_id, topics=device_topics(device, root),
                 action=action.value)


def ping_event(now_ms: int) -> Event:
    return Event(EventType.PING, orjson.dumps({"type": "ping", "time": now_ms}),
                 key=(EventType.PING.value,))


def snapshot_event(now_ms: int, devices: Sequence[DeviceInfo], readings: Iterable[Event],
                   statuses: Iterable[Event], alerts: Iterable[Event],
                   simulation: Event | None) -> Event:
    """What a screen gets on connecting; readings and statuses in their message form, alerts
    and the simulation state as their models' JSON."""
    body = {
        "type": "snapshot", "time": now_ms,
        "devices": [d.model_dump(mode="json") for d in devices],
        "readings": [orjson.Fragment(e.data) for e in readings],
        "statuses": [orjson.Fragment(e.data) for e in statuses],
        "alerts": [orjson.Fragment(e.inner or b"{}") for e in alerts],
        "simulation": orjson.Fragment(simulation.inner) if simulation and simulation.inner
        else None,
    }
    return Event(EventType.SNAPSHOT, orjson.dumps(body))
