"""MQTT helpers for tests: a collecting subscriber, a QoS 1 publisher, and polling."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from smartcity.settings import MqttSettings

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Poll until ``predicate()`` is truthy and return it; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def connect(settings: MqttSettings, client_id: str | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or
                         f"test-{uuid.uuid4().hex[:10]}", protocol=mqtt.MQTTv5)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    client.connect(settings.host, settings.port)
    client.loop_start()
    if not connected.wait(10):
        raise AssertionError("test client could not connect to the broker")
    return client


def close(client: mqtt.Client) -> None:
    """Disconnect and stop the network thread, so no socket outlives the test."""
    client.disconnect()
    client.loop_stop()


@contextmanager
def collecting(settings: MqttSettings, *filters: str) -> Iterator[list[Received]]:
    """Subscribe to ``filters`` (QoS 1) and collect every message into the yielded list."""
    got: list[Received] = []
    subscribed = threading.Semaphore(0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:10]}",
                         protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: got.append(Received(m.topic, bytes(m.payload), m.qos,
                                                            bool(m.retain)))
    client.on_subscribe = lambda *a: subscribed.release()

    def on_connect(c: mqtt.Client, *_: object) -> None:
        for f in filters:
            c.subscribe(f, qos=1)

    client.on_connect = on_connect
    client.connect(settings.host, settings.port)
    client.loop_start()
    for _ in filters:
        if not subscribed.acquire(timeout=10):
            raise AssertionError(f"could not subscribe to {filters}")
    try:
        yield got
    finally:
        client.disconnect()
        client.loop_stop()


def publish(settings: MqttSettings, topic: str, payload: bytes | str, qos: int = 1,
            retain: bool = False) -> None:
    """Publish one message and wait until the broker has it."""
    client = connect(settings)
    try:
        client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
