"""Ingest's MQTT v5 connection: a lean asyncio client on its own thread.

Guarantees (what the service relies on):
- Before each (re)connect of the persistent session, the device registry is read in full on
  a separate, clean connection: it subscribes to the retained profiles and sends a PINGREQ
  once the SUBACK is in. Mosquitto queues a subscription's retained messages while it handles
  the SUBSCRIBE, before it reads the next packet, so everything before the PINGRESP is the
  whole registry. Only then does the persistent session connect and get its queued telemetry.
- The persistent session subscribes to the profiles without retained messages (retain
  handling 2): registrations that change while it is connected, or while it is away, arrive
  in order with the telemetry.
- Acknowledgements go out only when the service calls :meth:`ack` (after the durable write),
  many PUBACKs in one write, and only on the connection their messages arrived on.
- Messages are handed over as they are read: one ``recv`` of up to 256 KiB, split into raw
  tuples (:mod:`ingest.wire`), no per-message object beyond them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ingest import wire
from smartcity.settings import MqttSettings

log = logging.getLogger(__name__)

OnMessages = Callable[[list[wire.Publish], int], None]  # messages, connection generation
OnRegistry = Callable[[list[wire.Publish]], None]
MAX_PENDING_REPORTS = 10_000


class EdgeError(ConnectionError):
    pass


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    client_id: str
    filters: tuple[tuple[str, int], ...]  # (topic filter, subscription options)
    registry_filter: str | None
    session_expiry_s: int
    receive_maximum: int


class _Link(asyncio.Protocol):
    """One TCP connection: splits what arrives into packets and hands them on."""

    def __init__(self, on_publishes: Callable[[list[wire.Publish]], None],
                 on_packet: Callable[[int, bytes], None]) -> None:
        self.on_publishes = on_publishes
        self.on_packet = on_packet
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_heard = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        publishes: list[wire.Publish] = []
        others: list[tuple[int, bytes]] = []
        try:
            used = wire.split(buf, publishes, others)
        except wire.ProtocolError as e:
            log.error("unreadable packet from the broker (%s); reconnecting", e)
            self.abort()
            return
        self.buf = buf[used:]
        self.last_heard = asyncio.get_running_loop().time()
        if publishes:
            self.on_publishes(publishes)
        for kind, body in others:
            self.on_packet(kind, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class MqttEdge:
    def __init__(self, settings: MqttSettings, options: EdgeOptions, on_messages: OnMessages,
                 on_registry: OnRegistry) -> None:
        self.settings = settings
        self.options = options
        self.on_messages = on_messages
        self.on_registry = on_registry
        self.generation = 0
        self.subscribed = threading.Event()
        self.connected = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ingest-mqtt", daemon=True)
        self._link: _Link | None = None
        self._waiters: dict[int, asyncio.Future[bytes]] = {}  # packet type -> next body
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        # Reports (QoS 1, outgoing): in flight by packet id, the rest waiting their turn.
        self._inflight: dict[int, tuple[str, bytes, wire.Props]] = {}
        self._pending: deque[tuple[str, bytes, wire.Props]] = deque()
        self._next_pid = 0
        self._send_quota = 20

    # -- the service's side (any thread) ----------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (acknowledgements first), DISCONNECT and end the thread; the
        session stays with the broker."""
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._begin_stop)
        self._thread.join(timeout)

    def ack(self, generation: int, packet_ids: list[int]) -> None:
        if packet_ids:
            self._loop.call_soon_threadsafe(self._send_acks, generation, packet_ids)

    def publish(self, topic: str, payload: bytes,
                props: wire.Props = ()) -> None:
        """QoS 1, queued; at most MAX_PENDING_REPORTS wait (the rest are dropped, logged)."""
        if threading.current_thread() is self._thread:
            self._queue_publish(topic, payload, props)
        else:
            self._loop.call_soon_threadsafe(self._queue_publish, topic, payload, props)

    def is_connected(self) -> bool:
        return self.connected

    # -- the loop thread -----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._main = self._loop.create_task(self._connect_forever())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._main)
        self._loop.close()

    def _begin_stop(self) -> None:
        self._stopping = True
        link = self._link
        if link is not None and link.transport is not None:
            link.write(wire.DISCONNECT_NORMAL)
            link.transport.close()  # flushes what is buffered, then closes
        elif self._main is not None:
            self._main.cancel()

    async def _connect_forever(self) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                if self.options.registry_filter:
                    await self._read_registry(self.options.registry_filter)
                await self._session()
                delay = 1.0
            except (OSError, EdgeError, TimeoutError) as e:
                if self._stopping:
                    return
                log.warning("lost the broker (%s); reconnecting in %.0f s", e, delay)
            finally:
                self.connected = False
                self._link = None
                self._fail_waiters()
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(15.0, delay * 2)

    async def _open(self, on_publishes: Callable[[list[wire.Publish]], None],
                    client_id: str, clean_start: bool, session_expiry_s: int,
                    receive_maximum: int) -> tuple[_Link, wire.Connack]:
        s = self.settings
        loop = asyncio.get_running_loop()
        tls = None
        if s.tls:  # mqtts://: the system's CAs, or SMARTCITY_MQTT_CA_FILE's
            tls = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        _, link = await asyncio.wait_for(loop.create_connection(
            lambda: _Link(on_publishes, self._on_packet), s.host, s.port, ssl=tls), 10)
        self._link = link
        link.write(wire.connect(client_id, keepalive_s=s.keepalive_s, clean_start=clean_start,
                                session_expiry_s=session_expiry_s,
                                receive_maximum=receive_maximum, username=s.username,
                                password=s.password))
        connack = wire.parse_connack(await self._expect(wire.CONNACK))
        if connack.reason_code >= 0x80:
            raise EdgeError(f"the broker refused the connection: reason code "
                            f"{connack.reason_code:#04x}")
        return link, connack

    async def _read_registry(self, topic_filter: str) -> None:
        got: list[wire.Publish] = []
        link, _ = await self._open(got.extend, f"{self.options.client_id}-registry", True, 0,
                                   65535)
        try:
            link.write(wire.subscribe(1, [(topic_filter, wire.sub_options(0))]))
            _, codes = wire.parse_suback(await self._expect(wire.SUBACK))
            if any(c >= 0x80 for c in codes):
                raise EdgeError(f"the broker refused the registry subscription: {codes}")
            link.write(wire.PINGREQ)
            await self._expect(wire.PINGRESP)
            self.on_registry(got)
            link.write(wire.DISCONNECT_NORMAL)
        finally:
            if link.transport is not None:
                link.transport.close()
            self._link = None

    async def _session(self) -> None:
        o = self.options
        generation = self.generation + 1

        def deliver(publishes: list[wire.Publish]) -> None:
            self.on_messages(publishes, generation)

        link, connack = await self._open(deliver, o.client_id, False, o.session_expiry_s,
                                         o.receive_maximum)
        self.generation = generation
        self._send_quota = connack.receive_maximum
        link.write(wire.subscribe(2, list(o.filters)))
        _, codes = wire.parse_suback(await self._expect(wire.SUBACK))
        if any(c >= 0x80 for c in codes):
            raise EdgeError(f"the broker refused a subscription: reason codes {codes}")
        self.connected = True
        log.info("connected to %s (session %s), subscribing to %s", self.settings.address,
                 "resumed" if connack.session_present else "new",
                 ", ".join(f for f, _ in o.filters))
        self.subscribed.set()
        self._resend_reports(connack.session_present)
        keepalive = asyncio.get_running_loop().create_task(self._keep_alive(link))
        try:
            await link.closed
        finally:
            keepalive.cancel()
        if not self._stopping:
            raise EdgeError("the broker closed the connection")

    async def _keep_alive(self, link: _Link) -> None:
        interval = max(1.0, self.settings.keepalive_s / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            if loop.time() - link.last_heard > 3 * interval:
                log.warning("the broker went silent; reconnecting")
                link.abort()
                return
            link.write(wire.PINGREQ)

    async def _expect(self, kind: int, timeout: float = 10.0) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self._waiters[kind] = future
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.pop(kind, None)

    def _fail_waiters(self) -> None:
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(EdgeError("connection closed"))
        self._waiters.clear()

    def _on_packet(self, kind: int, body: bytes) -> None:
        waiter = self._waiters.get(kind)
        if waiter is not None and not waiter.done():
            waiter.set_result(body)
        elif kind == wire.PUBACK:
            self._report_acked(int.from_bytes(body[:2], "big"))
        elif kind == wire.DISCONNECT:
            code, reason = wire.parse_disconnect(body)
            log.warning("the broker disconnected us: reason code %#04x %s", code, reason or "")

    def _send_acks(self, generation: int, packet_ids: list[int]) -> None:
        link = self._link
        if link is not None and generation == self.generation and self.connected:
            link.write(wire.pubacks([p for p in packet_ids if p]))

    # -- reports: QoS 1 publishes within the broker's Receive Maximum --------------------

    def _queue_publish(self, topic: str, payload: bytes,
                       props: wire.Props) -> None:
        if len(self._pending) >= MAX_PENDING_REPORTS:
            log.warning("report to %s dropped: %d reports wait for the broker", topic,
                        len(self._pending))
            return
        self._pending.append((topic, payload, props))
        self._send_pending()

    def _send_pending(self) -> None:
        link = self._link
        if link is None or not self.connected:
            return
        while self._pending and len(self._inflight) < self._send_quota:
            message = self._pending.popleft()
            pid = self._new_pid()
            self._inflight[pid] = message
            link.write(wire.publish(message[0], message[1], pid, props=message[2]))

    def _new_pid(self) -> int:
        while True:
            self._next_pid = self._next_pid % 65535 + 1
            if self._next_pid not in self._inflight:
                return self._next_pid

    def _report_acked(self, pid: int) -> None:
        if self._inflight.pop(pid, None) is not None:
            self._send_pending()

    def _resend_reports(self, session_present: bool) -> None:
        """The broker may not have our unacknowledged reports: send them again (with DUP when
        the session it kept them in survived)."""
        link = self._link
        if link is None:
            return
        inflight = list(self._inflight.items())
        if not session_present:
            self._inflight.clear()
            self._pending.extendleft(reversed([m for _, m in inflight]))
        else:
            for pid, (topic, payload, props) in inflight:
                link.write(wire.publish(topic, payload, pid, dup=True, props=props))
        self._send_pending()
