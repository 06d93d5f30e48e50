"""A secured Mosquitto for tests: the dynamic security plugin with every service account, and
an MQTT v5 session that records what the broker answers (CONNACK, SUBACK, PUBACK reason codes,
messages, disconnections)."""

from __future__ import annotations

import secrets
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.dynsec import SERVICES, write_initial_config
from launcher.servers import Mosquitto, start_with_retry
from smartcity.settings import MqttSettings
from tests.mqtt import Received, wait_for

NOT_AUTHORIZED = 0x87


@dataclass
class SecuredBroker:
    server: Mosquitto
    root: str
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.server.port

    def settings(self, username: str | None = None, password: str | None = None) -> MqttSettings:
        """Settings logging in as ``username`` (a service's password unless given)."""
        if username is None:
            return MqttSettings(url=f"mqtt://127.0.0.1:{self.port}", root=self.root)
        password = password if password is not None else self.passwords[username]
        return MqttSettings(url=f"mqtt://{username}:{password}@127.0.0.1:{self.port}",
                            root=self.root)

    def session(self, username: str | None = None, password: str | None = None,
                **options: Any) -> Session:
        if username is not None and password is None:
            password = self.passwords[username]
        return Session(self.port, username, password, **options)


def start_secured(workdir: Path, root: str, extra_config: str = "") -> SecuredBroker:
    passwords = {s: secrets.token_hex(12) for s in SERVICES}
    config = write_initial_config(workdir / "dynamic-security.json", root, passwords)
    server = start_with_retry(Mosquitto, workdir / "broker", dynsec_config=config,
                              extra_config=extra_config)
    assert isinstance(server, Mosquitto)
    return SecuredBroker(server, root, passwords)


class Session:
    """One MQTT v5 connection. It does not retry a refused connection, and after a lost one
    it tries again once with the same credentials (as a device would)."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 *, will: tuple[str, bytes] | None = None, client_id: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"sec-{uuid.uuid4().hex[:10]}")
        self.connacks: list[Any] = []
        self.disconnects: list[Any] = []
        self.messages: list[Received] = []
        self._subacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self._lock = threading.Lock()
        c = self.client
        if username is not None:
            c.username_pw_set(username, password)
        if will is not None:
            c.will_set(will[0], will[1], qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda cl, u, f, reason, p: self.disconnects.append(reason)
        c.on_message = lambda cl, u, m: self.messages.append(
            Received(m.topic, bytes(m.payload), m.qos, bool(m.retain)))
        c.on_subscribe = lambda cl, u, mid, reasons, p: self._subacks.__setitem__(
            mid, [r.value for r in reasons])
        c.on_publish = lambda cl, u, mid, reason, p: self._pubacks.__setitem__(mid, reason.value)
        c.reconnect_delay_set(1, 1)
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        wait_for(lambda: self.connacks, what="the broker's CONNACK")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self.connacks.append(reason)
        if reason.is_failure:
            client.disconnect()

    @property
    def connected(self) -> bool:
        return bool(self.connacks) and not self.connacks[-1].is_failure \
            and self.client.is_connected()

    @property
    def refused(self) -> int | None:
        """The CONNACK reason code of a refused connection, None if it was accepted."""
        reason = self.connacks[0]
        return int(reason.value) if reason.is_failure else None

    def subscribe(self, *filters: str) -> list[int]:
        """SUBACK reason codes, one per filter (1: granted QoS 1, 0x87: not authorised)."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        assert mid is not None
        wait_for(lambda: mid in self._subacks, what=f"SUBACK for {filters}")
        return self._subacks[mid]

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (0, 0x10 no subscribers, 0x87)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_for(lambda: info.mid in self._pubacks, what=f"PUBACK on {topic}")
        return self._pubacks[info.mid]

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT, so the broker publishes the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
