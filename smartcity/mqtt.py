"""MQTT clients of the services that must lose nothing (ingest, rules).

A persistent session (fixed client id, clean start off, bounded session expiry) with manual
acknowledgements and a bounded Receive Maximum: the broker keeps what a service has not
acknowledged across crashes and reconnects, and sends it no more unacknowledged messages than
it asked for. Both services get exactly the same session semantics from here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.settings import MqttSettings

log = logging.getLogger(__name__)


def persistent_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A v5 client that acknowledges by hand (``client.ack(mid, qos)``), not yet connected."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    return client


def connect_persistent(client: mqtt.Client, settings: MqttSettings, session_expiry_s: int,
                       receive_maximum: int) -> None:
    """Connect in the background (paho reconnects by itself) and start the network thread."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = receive_maximum
    client.connect_async(settings.host, settings.port, settings.keepalive_s,
                         clean_start=False, properties=props)
    client.loop_start()


class Subscription:
    """Subscribes ``topic`` (and ``more`` filters) at QoS 1 on every (re)connect, in one
    SUBSCRIBE, and numbers the connections.

    Message ids restart with each connection, so an acknowledgement carries the generation
    its message arrived on and is sent only while that connection lasts: the broker
    redelivers the rest. ``accepting`` goes False when the service stops taking messages."""

    def __init__(self, settings: MqttSettings, topic: str, *more: str) -> None:
        self.settings = settings
        self.topic = topic
        self.topics = (topic, *more)
        self.generation = 0
        self.accepting = True
        self.subscribed = threading.Event()

    def attach(self, client: mqtt.Client) -> None:
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = lambda *a: self.subscribed.set()

    def ack(self, client: mqtt.Client, mid: int, qos: int, generation: int) -> None:
        if qos and generation == self.generation:
            client.ack(mid, qos)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.generation += 1
        client.subscribe([(t, 1) for t in self.topics])
        log.info("connected to %s (session %s), subscribing to %s", self.settings.address,
                 "resumed" if flags.session_present else "new", ", ".join(self.topics))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self.accepting:
            log.warning("lost the broker (%s); reconnecting", reason)
