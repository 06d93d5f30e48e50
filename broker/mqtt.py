"""Every service's MQTT client, built one way.

:func:`new_client` gives a paho client with the broker account and TLS of the settings' URL
(``mqtts://user:password@host:8883``) and the one reconnect policy; :func:`start` connects
it in the background (paho reconnects by itself), :func:`connect` in the foreground for the
short-lived clients that must know at once whether the broker took them.

A :class:`Session` makes the connection persistent (fixed client id, clean start off,
bounded session expiry, bounded Receive Maximum): the broker keeps what a service has not
acknowledged across crashes and reconnects and sends it no more unacknowledged messages than
it asked for. :class:`Subscription` subscribes the contract's topic filters on every
(re)connect and acknowledges by hand, so ingest and rules lose nothing.
"""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.settings import MqttSettings
from smartcity.topics import Topic, TopicFilter

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 15
"""The reconnect policy of every client: wait a second, then twice as long each time, at
most this long, so a restarted broker is not stormed by every service at once."""


def next_delay(delay_s: float) -> float:
    """The wait after ``delay_s`` for clients that drive their own reconnects."""
    return min(float(RECONNECT_MAX_S), delay_s * 2)


@dataclass(frozen=True)
class Session:
    """A persistent session: what the broker keeps for a client while it is away."""

    expiry_s: int
    receive_maximum: int = 65535


def new_client(settings: MqttSettings, client_id: str | None = None, *, role: str = "client",
               v5: bool = True, manual_ack: bool = False,
               will: tuple[Topic, bytes] | None = None) -> mqtt.Client:
    """A client with the account and TLS of ``settings``, not yet connected.

    ``client_id`` names a persistent session; without one the client gets a fresh id
    ``smartcity-{role}-...``. ``will`` is published retained at QoS 1 if the connection is
    lost."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"smartcity-{role}-{uuid.uuid4().hex[:12]}",
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=manual_ack)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if will is not None:
        client.will_set(str(will[0]), will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    return client


def connect_properties(session: Session | None) -> Properties | None:
    if session is None:
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session.expiry_s
    props.ReceiveMaximum = session.receive_maximum
    return props


def start(client: mqtt.Client, settings: MqttSettings, session: Session | None = None) -> None:
    """Connect in the background and start the network thread; paho keeps reconnecting."""
    if session is None:
        client.connect_async(settings.host, settings.port, settings.keepalive_s)
    else:
        client.connect_async(settings.host, settings.port, settings.keepalive_s,
                             clean_start=False, properties=connect_properties(session))
    client.loop_start()


def connect(client: mqtt.Client, settings: MqttSettings, session: Session | None = None) -> None:
    """Open the connection now (OSError if the broker cannot be reached); the caller runs
    the network loop and waits for the broker's answer."""
    if session is None:
        client.connect(settings.host, settings.port, settings.keepalive_s)
    else:
        client.connect(settings.host, settings.port, settings.keepalive_s, clean_start=False,
                       properties=connect_properties(session))


def subscriptions(filters: Sequence[tuple[TopicFilter, int]]) -> list[tuple[str, int]]:
    """The contract's filters as paho takes them in one SUBSCRIBE."""
    return [(str(f), qos) for f, qos in filters]


class Subscription:
    """Subscribes ``topic`` (and ``more`` filters) at QoS 1 on every (re)connect, in one
    SUBSCRIBE, and numbers the connections.

    Message ids restart with each connection, so an acknowledgement carries the generation
    its message arrived on and is sent only while that connection lasts: the broker
    redelivers the rest. ``accepting`` goes False when the service stops taking messages."""

    def __init__(self, settings: MqttSettings, topic: TopicFilter, *more: TopicFilter) -> None:
        self.settings = settings
        self.topic = str(topic)
        self.topics = subscriptions([(t, 1) for t in (topic, *more)])
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
        client.subscribe(self.topics)
        log.info("connected to %s (session %s), subscribing to %s", self.settings.address,
                 "resumed" if flags.session_present else "new",
                 ", ".join(t for t, _ in self.topics))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self.accepting:
            log.warning("lost the broker (%s); reconnecting", reason)
