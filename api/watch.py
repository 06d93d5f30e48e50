"""The exhibitor desk's debug view of one device: its raw messages as they arrive, what the
mapping made of each (readings, notes, or the refusal), and every refusal ingest reported on
its errors topic (including publishes the broker refused, which ingest learns of from the
broker's log).

Fed by the api's one MQTT connection on its network thread; only exhibitor devices are kept,
a bounded ring each, so the city's own traffic costs a dictionary lookup per message.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Any

import orjson

from smartcity.errors import ContractError, reason_code
from smartcity.formats.decoding import decode_device_message
from smartcity.models import Source, format_ts
from smartcity.registry import Registry
from smartcity.topics import TopicFilter, device_id_from_topic

KEEP = 100  # entries per device
SHOWN_BYTES = 600


def _text(payload: bytes) -> str:
    return payload[:SHOWN_BYTES].decode("utf-8", "backslashreplace")


class DeviceWatch:
    def __init__(self, registry: Registry, root: str) -> None:
        self.registry = registry
        self.root = root
        self._errors = TopicFilter(f"{root}/devices/+/errors")
        self._devices = f"{root}/devices/"
        self._entries: dict[str, deque[dict[str, Any]]] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def filters(self) -> list[tuple[TopicFilter, int]]:
        """The hub already follows telemetry and the devices' own topics; the desk adds the
        error reports."""
        return [(self._errors, 1)]

    def receive(self, topic: str, payload: bytes, retained: bool,
                now_ms: int | None = None) -> None:
        if retained:
            return  # an old message replayed on (re)connect, not what the device just sent
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if topic.endswith("/errors") and self._errors.matches(topic):
            reported = topic.split("/")[-2]
            if self._watched(reported):
                self._add(reported, self._report(payload, now_ms))
            return
        if topic.startswith(self._devices) or topic.endswith("/status"):
            return  # registration state and statuses: not what the device sends as readings
        device_id = device_id_from_topic(topic, self.root)
        if device_id is None or not self._watched(device_id):
            return
        self._add(device_id, self.judge(topic, payload, now_ms))

    def judge(self, topic: str, payload: bytes, now_ms: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"kind": "message", "time": format_ts(now_ms), "topic": topic,
                                 "payload": _text(payload), "readings": [], "notes": []}
        try:
            mapped = decode_device_message(topic, payload, self.registry, self.root,
                                           now_ms=now_ms)
        except ContractError as e:
            entry.update(refused=_refusal(str(e.reason), [(p.field, p.message)
                                                          for p in e.problems]))
            return entry
        entry["readings"] = [{"time": format_ts(r.ts_ms), "metrics": r.metrics}
                             for r in mapped.readings]
        entry["notes"] = mapped.notes
        return entry

    def _report(self, payload: bytes, now_ms: int) -> dict[str, Any]:
        try:
            body = orjson.loads(payload)
            problems = [(e["field"], e["message"]) for e in body.get("errors", [])]
            return {"kind": "refused", "time": body.get("ts") or format_ts(now_ms),
                    "topic": body.get("topic", ""), "payload": body.get("payload", ""),
                    "refused": _refusal(body.get("reason", ""), problems)}
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            return {"kind": "refused", "time": format_ts(now_ms), "topic": "",
                    "payload": _text(payload), "refused": _refusal("unreadable report", [])}

    def _watched(self, device_id: str) -> bool:
        device = self.registry.get(device_id)
        return device is not None and device.source is Source.LIVE

    def _add(self, device_id: str, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["n"] = next(self._counter)
            self._entries.setdefault(device_id, deque(maxlen=KEEP)).append(entry)

    def since(self, device_id: str, after: int) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._entries.get(device_id, ()) if e["n"] > after]

    def forget(self, device_id: str) -> None:
        with self._lock:
            self._entries.pop(device_id, None)


def _refusal(reason: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    return {"reason": reason, "reason_code": int(reason_code(reason)),
            "problems": [{"field": f, "message": m} for f, m in problems]}
