"""The whole device registry before judging a reading: every retained profile, read first.

A service restarting with a persistent session gets the readings queued for it at once,
before the retained ``{root}/devices/+/profile`` messages its fresh subscription brings: it
would judge an exhibitor's readings against a registry that does not know the device yet,
refuse them as "unknown device" and acknowledge them, losing them. So ingest, the rules and
the api's live stream read the registry on a separate, clean connection first:

1. subscribe to the profiles and to a marker topic of their own (QoS 0 both: the broker
   writes QoS 0 messages out in the order it queues them, no in-flight window reorders them);
2. once subscribed, publish a random marker on that topic;
3. every retained profile was queued before the marker, so when the marker arrives the
   registry is complete; only then does the service connect its persistent session.

Profiles that change afterwards reach the services on their sessions as before.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from broker.mqtt import connect, new_client
from smartcity.profiles import take_profile
from smartcity.registry import Registry
from smartcity.settings import MqttSettings
from smartcity.topics import check_root, profile_filter

log = logging.getLogger(__name__)


class RegistryUnavailable(RuntimeError):
    """The broker could not be reached, or did not deliver the marker, in time."""


def sync_topic(root: str, service: str) -> str:
    """Where ``service`` publishes its markers (its broker role may publish and read it)."""
    return f"{check_root(root)}/services/{service}/sync"


class _Snapshot:
    def __init__(self, settings: MqttSettings, registry: Registry, service: str) -> None:
        self.settings = settings
        self.registry = registry
        self.profiles = profile_filter(settings.root)
        self.marker_topic = f"{sync_topic(settings.root, service)}/{secrets.token_hex(8)}"
        self.marker = secrets.token_bytes(16)
        self.done = threading.Event()
        self.seen = 0
        self.refused: str | None = None
        self.client = new_client(settings, role=f"{service}-registry")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            return
        client.subscribe([(str(self.profiles), 0), (self.marker_topic, 0)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any],
                      properties: Any) -> None:
        if any(r.is_failure for r in reasons):
            self.refused = f"subscription refused: {', '.join(str(r) for r in reasons)}"
            return
        client.publish(self.marker_topic, self.marker, qos=0)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.marker_topic:
            if bytes(msg.payload) == self.marker:
                self.done.set()
            return
        if self.profiles.matches(msg.topic):
            self.seen += 1
            take_profile(self.registry, msg.topic, bytes(msg.payload), self.settings.root)

    def run(self, timeout_s: float) -> int:
        s = self.settings
        try:
            connect(self.client, s)
        except OSError as e:
            raise RegistryUnavailable(f"broker {s.address} unreachable: {e}") from None
        self.client.loop_start()
        try:
            deadline = time.monotonic() + timeout_s
            while not self.done.wait(0.05):
                if self.refused:
                    raise RegistryUnavailable(f"broker {s.address} refused: {self.refused}")
                if time.monotonic() > deadline:
                    raise RegistryUnavailable(f"no marker back from {s.address} within "
                                              f"{timeout_s:.0f}s")
            return self.seen
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def sync_registry(settings: MqttSettings, registry: Registry, service: str,
                  timeout_s: float = 10.0) -> int:
    """Apply every retained profile to ``registry``; the number of profiles read. Raises
    :class:`RegistryUnavailable` if the broker cannot be asked within ``timeout_s``."""
    return _Snapshot(settings, registry, service).run(timeout_s)


def wait_for_registry(settings: MqttSettings, registry: Registry, service: str,
                      stop: threading.Event, attempt_timeout_s: float = 10.0) -> bool:
    """:func:`sync_registry`, retried until it succeeds or ``stop`` is set (False then): a
    service that must not judge without the registry waits for the broker this way."""
    delay = 0.5
    while not stop.is_set():
        try:
            n = sync_registry(settings, registry, service, attempt_timeout_s)
        except RegistryUnavailable as e:
            log.warning("device registry not read yet (%s); retrying in %.0fs", e, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
            continue
        log.info("device registry read: %d exhibitor profiles, %d devices in all", n,
                 len(registry))
        return True
    return False
