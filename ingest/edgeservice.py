"""Ingest on its own lean MQTT v5 edge (:mod:`ingest.edge`) instead of paho-mqtt.

Everything past the edge is the same service: the judge, the writer and its spool and dead
letters, the reports, the stats. What changes: the registry is read in full before the
persistent session connects, messages arrive many to a socket read, and a batch's PUBACKs
leave in one write once the batch is stored.
"""

from __future__ import annotations

import logging
import threading

from ingest import wire
from ingest.edge import EdgeOptions, MqttEdge
from ingest.service import IngestService, Item
from smartcity.registry import Registry
from smartcity.settings import IngestSettings

log = logging.getLogger(__name__)

_REPORT_PROPS: wire.Props = ((0x01, 1), (0x03, "application/json"))  # UTF-8; content type


class EdgeIngestService(IngestService):
    reads_registry_itself = True  # before every (re)connect of its session: ingest.edge
    def _make_edge(self) -> threading.Event:
        s = self.settings
        qos1, no_retained = wire.sub_options(1), wire.sub_options(1, retain_handling=2)
        profiles = str(self.profiles)
        self._topics: dict[bytes, str] = {}  # topic bytes -> str: a city has few topics
        self._accepting = True
        self.edge = MqttEdge(s.mqtt, EdgeOptions(
            client_id=s.client_id,
            filters=(*((str(f), qos1) for f in self.telemetry_filters), (profiles, no_retained)),
            registry_filter=profiles, session_expiry_s=s.session_expiry_s,
            receive_maximum=s.receive_maximum), self._on_messages, self._on_registry)
        return self.edge.subscribed

    def _start_edge(self) -> None:
        self.edge.start()

    def _stop_accepting(self) -> None:
        self._accepting = False

    def _stop_edge(self) -> None:
        self.edge.stop()

    def _connected(self) -> bool:
        return self.edge.is_connected()

    # -- the edge's thread ------------------------------------------------------------------

    def _topic(self, raw: bytes) -> str:
        topic = self._topics.get(raw)
        if topic is None:
            if len(self._topics) > 100_000:
                self._topics.clear()
            topic = self._topics[raw] = raw.decode(errors="replace")
        return topic

    def _on_registry(self, publishes: list[wire.Publish]) -> None:
        for raw, payload, _, _ in publishes:
            self._apply_profile(self._topic(raw), payload)
        log.info("read the device registry: %d profiles; %d devices registered",
                 len(publishes), len(self.registry))

    def _on_messages(self, publishes: list[wire.Publish], generation: int) -> None:
        if not self._accepting:
            return  # not acknowledged: the broker redelivers them to the next ingest
        profile_acks: list[int] = []
        for raw, payload, pid, qos in publishes:
            topic = self._topic(raw)
            if topic.endswith("/profile") and self.profiles.matches(topic):
                self._apply_profile(topic, payload)
                profile_acks.append(pid)
                continue
            self._take(topic, payload, pid, qos, generation)
        self.edge.ack(generation, profile_acks)

    def _report(self, topic: str, body: bytes, user: list[tuple[str, str]]) -> None:
        self.edge.publish(topic, body, (*_REPORT_PROPS, *((0x26, kv) for kv in user)))

    # -- the writer's thread ----------------------------------------------------------------

    def _ack(self, items: list[Item]) -> None:
        by_generation: dict[int, list[int]] = {}
        for item in items:
            if item.qos:
                by_generation.setdefault(item.generation, []).append(item.mid)
        for generation, mids in by_generation.items():
            self.edge.ack(generation, mids)


def make_service(settings: IngestSettings, registry: Registry) -> IngestService:
    """Ingest on the edge its settings name."""
    if settings.edge == "paho":
        return IngestService(settings, registry)
    return EdgeIngestService(settings, registry)
