"""The replay's MQTT edge: a paho client driven by the scheduler's own thread.

No ``loop_start()``, not even ``loop()``: the scheduler calls :meth:`MqttPublisher.service`
(its own select() on paho's socket) while it waits for the next due time, so a publish goes
onto the socket in the scheduler's thread the moment it is due, not whenever a network thread
gets the GIL; and without paho's wake-up socket pair, a publish costs one system call, not
two. MQTT 3.1.1: a replay needs no v5 feature, and paho handles v3 acknowledgements with
less work.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from broker.mqtt import RECONNECT_MIN_S, connect, new_client, next_delay
from smartcity.settings import MqttSettings

log = logging.getLogger(__name__)

READ_AT_UNACKED = 32
IDLE_S = 0.001
READ_EVERY_S = 0.5  # keep-alive


class PublishError(RuntimeError):
    pass


def no_delay(client: mqtt.Client) -> None:
    """Turn off Nagle's algorithm, which paho leaves on: with it, a small publish that follows
    another waits for the broker's delayed TCP ACK, up to 40 ms late."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Publisher(Protocol):
    """Where a replay sends its messages.

    Guarantees: messages go out in the order of :meth:`publish` calls; :meth:`publish` does
    not wait for the network; :meth:`unacked` counts messages handed over but not yet accepted
    (QoS 1/2: acknowledged by the broker; QoS 0: written to the socket), including any queued
    while the connection is down, so a caller bounding it loses nothing. :meth:`service`
    processes network events for at most ``timeout`` seconds. :meth:`close` waits for
    :meth:`unacked` to reach zero, at most ``timeout`` seconds, and returns what is left.
    """

    @property
    def window(self) -> int:
        """The most unacknowledged messages a caller should allow."""
        ...

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None: ...

    def service(self, timeout: float) -> None: ...

    def unacked(self) -> int: ...

    def close(self, timeout: float) -> int: ...


class MqttPublisher:
    def __init__(self, settings: MqttSettings, *, inflight: int = 1000,
                 client_id: str | None = None, connect_timeout: float = 10.0) -> None:
        self.settings = settings
        self.inflight = inflight
        self._published = 0
        self._accepted = 0
        self._connected = threading.Event()
        self._refused: str | None = None
        self._next_reconnect = 0.0
        self._backoff = float(RECONNECT_MIN_S)
        self._last_read = 0.0
        self._qos2: set[int] = set()  # message ids in the QoS 2 handshake
        self.client = new_client(settings, client_id, role="replay", v5=False)
        self.client.max_inflight_messages_set(inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._connect(connect_timeout)

    def _connect(self, timeout: float) -> None:
        try:
            connect(self.client, self.settings)
        except OSError as e:
            raise PublishError(f"cannot reach the broker at {self.settings.host}:"
                               f"{self.settings.port}: {e}") from e
        deadline = time.monotonic() + timeout
        while not self._connected.is_set():
            if self._refused or time.monotonic() > deadline:
                self.client.disconnect()
                raise PublishError(f"the broker did not accept the connection: "
                                   f"{self._refused or 'no answer'}")
            if not self._loop_once(0.05):
                raise PublishError("the broker closed the connection")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        no_delay(client)
        self._backoff = float(RECONNECT_MIN_S)
        if self._connected.is_set():
            log.info("reconnected to the broker")
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self._connected.is_set() and reason.is_failure:
            log.warning("lost the broker (%s); reconnecting", reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self._accepted += 1
        self._qos2.discard(mid)

    @property
    def window(self) -> int:
        return self.inflight

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishError(f"could not publish on {topic[:100]}: "
                               f"{mqtt.error_string(info.rc)}")
        self._published += 1  # NO_CONN: queued by paho, sent after the reconnect
        if qos == 2:
            self._qos2.add(info.mid)

    def unacked(self) -> int:
        return self._published - self._accepted

    def _loop_once(self, timeout: float) -> bool:
        """One round of paho's external-loop API; False if the connection is down."""
        client = self.client
        sock = client.socket()
        if sock is None:
            return False
        want = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock], want, [], timeout)
        except (OSError, ValueError):
            return False
        ok = MQTTErrorCode.MQTT_ERR_SUCCESS
        if readable and client.loop_read() != ok:
            return False
        if writable and client.loop_write() != ok:
            return False
        return client.loop_misc() == ok

    def service(self, timeout: float) -> None:
        now = time.monotonic()
        unacked = self.unacked()
        if (not self._qos2 and not self.client.want_write() and unacked < READ_AT_UNACKED
                and (timeout < IDLE_S or not unacked) and now - self._last_read < READ_EVERY_S
                and self.client.socket() is not None):
            # Acknowledgements are read when there is time to spare (and before too many pile
            # up: paho walks all unacknowledged messages for each one). Reading each as it
            # comes would wake the scheduler once more per message; on a busy machine every
            # wake-up is a chance to be scheduled late. A QoS 2 message cannot wait: the broker
            # passes it on only once our PUBREL answers its PUBREC.
            time.sleep(timeout)
            return
        self._last_read = now
        if self._loop_once(timeout):
            return
        now = time.monotonic()
        if now < self._next_reconnect:
            time.sleep(max(0.0, min(timeout, self._next_reconnect - now)))
            return
        try:
            self.client.reconnect()
        except OSError as e:
            log.warning("broker unreachable (%s); retrying in %.1fs", e, self._backoff)
            self._next_reconnect = now + self._backoff
            self._backoff = next_delay(self._backoff)

    def close(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.unacked() and time.monotonic() < deadline:
            self._last_read = 0.0
            self.service(0.05)
        left = self.unacked()
        self.client.disconnect()  # written at once: no network thread
        return left
