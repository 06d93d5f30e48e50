"""One simulated device's own MQTT connection.

A last will belongs to a connection, so each device connects on its own: when the simulator
dies, the broker marks every one of its devices offline, as it would real ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from simulators.simulation import DeviceRef
from smartcity.codec import dump
from smartcity.models import DeviceState, DeviceStatus
from smartcity.settings import MqttSettings
from smartcity.topics import Topic, status_topic

log = logging.getLogger(__name__)

# The will has no time: it is fixed when the device connects, long before it applies.
OFFLINE_WILL = dump(DeviceStatus(state=DeviceState.OFFLINE))
# QoS 1 messages kept while the broker is away (paho's queue); beyond it readings are dropped
# and counted, so an unreachable broker cannot eat the memory.
MAX_QUEUED_MESSAGES = 10_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def status_payload(state: DeviceState, ts_ms: int | None = None) -> bytes:
    return dump(DeviceStatus(state=state, ts=ts_ms))


def client_id(root: str, device_id: str) -> str:
    # The root is part of the id so that two cities (or two tests) on one broker do not take
    # over each other's sessions; the broker's ACLs never rely on client ids.
    return f"sim-{root.replace('/', '-')}-{device_id}"


class DeviceLink:
    """A device's MQTT client: retained online status on every (re)connect, a retained
    offline will, QoS 1 publishes counted until the broker acknowledges them."""

    def __init__(self, settings: MqttSettings, device: DeviceRef,
                 clock: Callable[[], int] = wall_ms) -> None:
        self.device_id = device.device_id
        self.status_topic = status_topic(device.domain, device.device_id, settings.root)
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._sent = self._acked = self._dropped = 0
        self._closing = False
        self._refused = False
        self.connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=client_id(settings.root, device.device_id),
                                   protocol=mqtt.MQTTv5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers, and reconnects."""
        c, s = self._client, self._settings
        c.will_set(str(self.status_topic), OFFLINE_WILL, qos=1, retain=True)
        if s.username:
            c.username_pw_set(s.username, s.password)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        c.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        c.loop_start()

    def publish(self, topic: Topic, payload: bytes, retain: bool = False) -> bool:
        """Publish with QoS 1; False if the message was dropped because the queue is full.

        While the broker is away paho keeps the message and sends it on reconnect."""
        with self._lock:
            self._sent += 1
        info = self._client.publish(str(topic), payload, qos=1, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self._sent -= 1
                self._dropped += 1
                dropped = self._dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("%s: broker unreachable and queue full, %d readings dropped",
                            self.device_id, dropped)
            return False
        return True

    @property
    def pending(self) -> int:
        """QoS 1 messages the broker has not acknowledged yet."""
        with self._lock:
            return self._sent - self._acked

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def announce_offline(self) -> None:
        """Say goodbye: a clean disconnect does not send the will."""
        if self.connected.is_set():
            self.publish(self.status_topic, status_payload(DeviceState.OFFLINE, self._clock()),
                         retain=True)

    def disconnect(self) -> None:
        """Leave cleanly (no will) and tell the network thread to stop; :meth:`close` waits."""
        self._closing = True
        self._client.disconnect()

    def close(self) -> None:
        self.disconnect()
        self._client.loop_stop()
        # paho closes its wake-up socket pair only when the client is freed; breaking the
        # cycle through our callbacks frees it now rather than in some later GC pass.
        self._client.on_connect = self._client.on_disconnect = self._client.on_publish = None

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            log.error("%s: broker refused the connection: %s", self.device_id, reason)
            return
        # Again after every reconnect: the broker may have published the will meanwhile.
        self.publish(self.status_topic, status_payload(DeviceState.ONLINE, self._clock()),
                     retain=True)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Any) -> None:
        self.connected.clear()
        if not self._closing:
            log.warning("%s: lost the broker (%s); reconnecting", self.device_id, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Any) -> None:
        with self._lock:
            self._acked += 1
            first_refusal = reason.is_failure and not self._refused
            self._refused = self._refused or reason.is_failure
        if first_refusal:  # e.g. not authorised for this topic; later refusals are alike
            log.error("%s: the broker refused a publish: %s", self.device_id, reason)
