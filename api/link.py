"""The api's MQTT link: devices' retained online/offline status, the simulator's retained
state, whether the broker is up, publishing the admin's control commands, and the one
subscription that feeds the live stream (:mod:`api.live`), which :meth:`MqttLink.follow`
attaches to this same connection.

A paho-mqtt client on its own network thread keeps a thread-safe map of device id to the last
status it published, and the last ``{root}/control/state``. It connects asynchronously and
reconnects on its own, so the api starts and serves (with ``/readyz`` saying so) while the
broker is down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker.mqtt import new_client, start, subscriptions
from smartcity.codec import decode_status
from smartcity.control import SimulatorState, decode_state, state_topic
from smartcity.errors import ContractError
from smartcity.logs import truncate
from smartcity.models import DeviceStatus
from smartcity.settings import MqttSettings
from smartcity.topics import Kind, TopicFilter, parse_device_topic, status_filter

log = logging.getLogger(__name__)

Listener = Callable[[str, bytes, bool], None]
"""Called on the network thread with (topic, payload, retained) for every message."""


class NotPublished(Exception):
    """The broker is unreachable or did not acknowledge a publish in time."""


class MqttLink:
    """Subscribes to ``{root}/+/+/status`` and ``{root}/control/state`` and remembers each
    device's last status and the simulator's last state.

    Guarantees: callbacks never raise (a bad message is logged at debug level and counted in
    :attr:`rejected`); an empty retained message forgets the device; reads are safe from any
    thread.
    """

    def __init__(self, settings: MqttSettings, client_id: str | None = None) -> None:
        self.settings = settings
        self._status_filter = status_filter(settings.root)
        self._filter = str(self._status_filter)
        self._control_state_topic = str(state_topic(settings.root))
        self._lock = threading.Lock()
        self._states: dict[str, DeviceStatus] = {}
        self._simulator: SimulatorState | None = None
        self._connected = threading.Event()
        self._stopping = False
        self._extra: list[tuple[str, int]] = []
        self._listeners: list[Listener] = []
        self.received = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._client = new_client(settings, client_id, role="api")
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_connect_fail = self._on_connect_fail

    @property
    def broker(self) -> str:
        """Where the broker is, without credentials (for logs and /readyz)."""
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def follow(self, filters: Sequence[tuple[TopicFilter, int]], listener: Listener) -> None:
        """Also subscribe to ``filters`` (with their QoS) and hand every message, the statuses
        and simulator state included, to ``listener`` (and to every listener that followed
        before); call before :meth:`start`. The
        listener runs on the network thread: it must be quick and must not raise."""
        self._extra += subscriptions(filters)
        self._listeners.append(listener)

    def start(self) -> None:
        start(self._client, self.settings)

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def state(self, device_id: str) -> DeviceStatus | None:
        with self._lock:
            return self._states.get(device_id)

    def states(self) -> dict[str, DeviceStatus]:
        with self._lock:
            return dict(self._states)

    def simulator(self) -> SimulatorState | None:
        """The simulator's last retained state; None if none was ever published."""
        with self._lock:
            return self._simulator

    def publish(self, topic: str, payload: bytes, timeout_s: float = 5.0, *,
                retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement (blocking: call it
        from a worker thread); :class:`NotPublished` if it does not come."""
        if not self.connected:
            raise NotPublished(f"not connected to the MQTT broker {self.broker}")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout_s)
        except (ValueError, RuntimeError) as e:  # paho: refused, or its queue is full
            raise NotPublished(str(e)) from None
        if not info.is_published():
            raise NotPublished(f"the MQTT broker {self.broker} did not acknowledge in "
                               f"{timeout_s:g}s")

    def handle(self, topic: str, payload: bytes) -> None:
        """Apply one status (or simulator state) message; raises :class:`ContractError` if it
        is not one."""
        if topic == self._control_state_topic:
            state = decode_state(payload) if payload else None
            with self._lock:
                self._simulator = state
            return
        parsed = parse_device_topic(topic, self.settings.root)
        if parsed.kind is not Kind.STATUS:
            raise ContractError("not a status topic")
        with self._lock:
            if not payload:
                self._states.pop(parsed.device_id, None)
                return
        status = decode_status(payload)
        with self._lock:
            self._states[parsed.device_id] = status

    # --- paho callbacks, on the network thread -----------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("MQTT broker %s refused the connection: %s", self.broker, reason_code)
            return
        client.subscribe([(self._filter, 1), (self._control_state_topic, 1), *self._extra])
        self.last_error = None
        self._connected.set()
        log.info("connected to MQTT broker %s, following %s", self.broker, self._filter)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_error = "cannot connect"
        log.debug("cannot connect to MQTT broker %s; retrying", self.broker)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any,
                       flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        if self._connected.is_set() and not self._stopping:
            self.last_error = f"connection lost: {reason_code}"
            log.warning("lost MQTT broker %s (%s); reconnecting", self.broker, reason_code)
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        payload = bytes(msg.payload)
        if topic == self._control_state_topic or (
                topic.endswith("/status") and self._status_filter.matches(topic)):
            self._on_status(topic, payload)
        for listener in self._listeners:
            try:
                listener(topic, payload, bool(msg.retain))
            except Exception:
                log.exception("live stream failed on %s: %s", topic, truncate(payload))

    def _on_status(self, topic: str, payload: bytes) -> None:
        # One bad status must not stop the others: log with its topic, count, go on.
        self.received += 1
        try:
            self.handle(topic, payload)
        except ContractError as e:
            self.rejected += 1
            log.debug("ignored status on %s (%s): %s", topic, e, truncate(payload))
        except Exception:
            self.rejected += 1
            log.exception("status on %s failed: %s", topic, truncate(payload))
