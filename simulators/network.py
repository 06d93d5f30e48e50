"""Many MQTT connections, one thread: every simulated device keeps its own connection (so
its last will is its own) and one selector drives them all.

A last will belongs to a connection, so each device connects on its own: when the simulator
dies, the broker marks every one of its devices offline, as it would real ones. A thread per
connection does not scale past a few hundred devices; here paho's clients run without their
own threads (``loop_read``/``loop_write``/``loop_misc``), their sockets in one
``selectors`` selector (epoll: no limit of 1024 descriptors), all in the thread that calls
:meth:`Network.poll`. Nothing here is thread-safe: publish and poll from that one thread.

Publishes are written at once (paho writes inline when no write callback is set); a socket
whose kernel buffer is full is watched for writability until paho's queue drains.
Connections are opened a few dozen at a time (the broker's listen backlog is finite) and
each reconnects on its own with a backoff; a refused connection backs off every device that
is not connected yet, so a missing broker costs one attempt per second, not one per device.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker.mqtt import RECONNECT_MIN_S, new_client, next_delay
from smartcity.settings import MqttSettings
from smartcity.topics import Topic

log = logging.getLogger(__name__)

# QoS 1 messages kept while the broker is away (paho's queue); beyond it readings are dropped
# and counted, so an unreachable broker cannot eat the memory.
MAX_QUEUED_MESSAGES = 10_000
MAX_CONNECTING = 64
CONNECT_TIMEOUT_S = 5.0
MISC_EVERY_S = 1.0  # keepalive pings and timeouts


class Link:
    """One MQTT connection: QoS 1 publishes counted until the broker acknowledges them, an
    optional retained last will, and ``on_connect`` called after every (re)connection."""

    def __init__(self, network: Network, client_id: str, *,
                 will: tuple[Topic, bytes] | None = None,
                 on_connect: Callable[[Link], None] | None = None,
                 on_message: Callable[[Link, str, bytes], None] | None = None) -> None:
        self.network = network
        self.client_id = client_id
        self.connected = False
        self.connecting = False
        self.retry_at = 0.0
        self.backoff_s = float(RECONNECT_MIN_S)
        self.sent = self.acked = self.dropped = 0
        self.refused = False
        self.closing = False
        self.writing = False
        self._on_connect_cb = on_connect
        self._on_message_cb = on_message
        s = network.settings
        c = self.client = new_client(s, client_id, v5=False, will=will)
        c.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        c.connect_timeout = CONNECT_TIMEOUT_S
        c.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close

    @property
    def pending(self) -> int:
        """QoS 1 messages the broker has not acknowledged yet."""
        return self.sent - self.acked

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Publish with QoS 1; False if dropped because paho's queue is full. While the broker
        is away paho keeps the message and sends it on reconnection."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("%s: broker unreachable and queue full, %d messages dropped",
                            self.client_id, self.dropped)
            return False
        self.sent += 1
        if not self.writing and self.client.want_write():
            self.network.watch_writes(self)
        return True

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    # --- paho callbacks, in the network thread ------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.network.selector.register(sock, selectors.EVENT_READ, self)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.network.selector.unregister(sock)
        self.writing = False

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        self.connecting = False
        self.network.connected(self)
        if reason.is_failure:
            log.error("%s: broker refused the connection: %s", self.client_id, reason)
            self.network.retry_later(self)
            return
        self.connected = True
        self.backoff_s = float(RECONNECT_MIN_S)
        if self._on_connect_cb:
            self._on_connect_cb(self)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        was = self.connected
        self.connected = self.connecting = False
        if self.closing:
            return
        if was:
            log.warning("%s: lost the broker (%s); reconnecting", self.client_id, reason)
        self.network.retry_later(self)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        self.acked += 1
        if reason.is_failure and not self.refused:  # e.g. not authorised; later ones alike
            self.refused = True
            log.error("%s: the broker refused a publish: %s", self.client_id, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._on_message_cb:
            self._on_message_cb(self, msg.topic, bytes(msg.payload))


class Network:
    """Drives :class:`Link` s from the calling thread."""

    def __init__(self, settings: MqttSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.selector = selectors.DefaultSelector()
        self._clock = clock
        self._links: list[Link] = []
        self._order = itertools.count()
        self._to_connect: list[tuple[float, int, Link]] = []  # a heap by due time
        self._connecting: set[Link] = set()
        self._writers: set[Link] = set()
        self._hold_until = 0.0  # after a refused connection, nobody new tries before this
        self._next_misc = 0.0
        self.connect_failures = 0

    @property
    def links(self) -> list[Link]:
        return self._links

    def add(self, link: Link) -> Link:
        self._links.append(link)
        heapq.heappush(self._to_connect, (0.0, next(self._order), link))
        return link

    def all_connected(self) -> bool:
        return all(link.connected for link in self._links)

    def pending(self) -> int:
        return sum(link.pending for link in self._links if link.connected)

    def watch_writes(self, link: Link) -> None:
        sock = link.client.socket()
        if sock is not None and not link.writing:
            self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, link)
            link.writing = True
            self._writers.add(link)

    def retry_later(self, link: Link) -> None:
        self._connecting.discard(link)
        link.retry_at = self._clock() + link.backoff_s
        link.backoff_s = next_delay(link.backoff_s)
        heapq.heappush(self._to_connect, (link.retry_at, next(self._order), link))

    def connected(self, link: Link) -> None:
        self._connecting.discard(link)

    def poll(self, timeout: float) -> None:
        """Connect what is due, then handle network events for up to ``timeout`` seconds."""
        now = self._clock()
        self._connect_due(now)
        for key, mask in self.selector.select(max(0.0, timeout)):
            link: Link = key.data
            client = link.client
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()
        for link in list(self._writers):
            sock = link.client.socket()
            if sock is None or not link.client.want_write():
                if sock is not None and link.writing:
                    self.selector.modify(sock, selectors.EVENT_READ, link)
                link.writing = False
                self._writers.discard(link)
        now = self._clock()
        if now >= self._next_misc:
            self._next_misc = now + MISC_EVERY_S
            for link in self._links:
                if link.connected or link.connecting:
                    link.client.loop_misc()

    def _connect_due(self, now: float) -> None:
        if now < self._hold_until:
            return
        queue = self._to_connect
        while queue and queue[0][0] <= now and len(self._connecting) < MAX_CONNECTING:
            _, _, link = heapq.heappop(queue)
            if link.closing or link.connected or link.connecting:
                continue
            link.connecting = True
            self._connecting.add(link)
            try:
                # Blocks for the TCP handshake only: immediate on a reachable broker.
                link.client.reconnect()
            except OSError as e:
                link.connecting = False
                self.connect_failures += 1
                if self.connect_failures == 1 or self.connect_failures % 100 == 0:
                    log.warning("cannot connect to the broker at %s:%d (%s); retrying",
                                self.settings.host, self.settings.port, e)
                self.retry_later(link)
                self._hold_until = link.retry_at
                return

    def close(self) -> None:
        """Leave cleanly (the broker then publishes no will) and release every socket."""
        for link in self._links:
            link.closing = True
            if link.client.socket() is not None:
                link.client.disconnect()
        self.selector.close()
