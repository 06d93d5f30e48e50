"""Judging one message: a line of line protocol to store, or a rejection saying why.

Pure: no I/O, no clock. The MQTT edge calls it for every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.lineprotocol import LineFormatter, LineProtocolError
from smartcity.codec import decode
from smartcity.errors import ContractError, FieldProblem
from smartcity.registry import Registry
from smartcity.topics import device_id_from_topic


@dataclass(frozen=True, slots=True)
class Rejection:
    topic: str
    device_id: str | None  # where to send the explanation, if the topic names a valid id
    reason: str
    problems: list[FieldProblem]
    payload: bytes


@dataclass(slots=True)
class Accepted:
    device_id: str
    seq: int
    line: str


@dataclass
class Judge:
    registry: Registry
    root: str
    max_payload_bytes: int
    _format: LineFormatter = field(default_factory=LineFormatter)

    def __call__(self, topic: str, payload: bytes) -> Accepted | Rejection:
        if len(payload) > self.max_payload_bytes:
            return self._reject(topic, payload, "payload too large", [FieldProblem(
                "payload", f"{len(payload)} bytes exceeds the limit of {self.max_payload_bytes}")])
        try:
            reading = decode(topic, payload, self.root)
        except ContractError as e:
            return self._reject(topic, payload, e.reason, e.problems)
        device = self.registry.get(reading.device_id)
        if device is None:
            return self._reject(topic, payload, "unknown device", [FieldProblem(
                "device_id", f"{reading.device_id!r} is not registered; register the device "
                             "before it publishes")])
        if device.domain is not reading.domain:
            return self._reject(topic, payload, "wrong domain", [FieldProblem(
                "domain", f"{reading.device_id!r} is registered as a {device.domain.value} "
                          f"device, not {reading.domain.value}")])
        try:
            line = self._format(reading, device)
        except LineProtocolError as e:  # cannot happen with registry ids; kept as a guard
            return self._reject(topic, payload, "unstorable value", [FieldProblem("payload",
                                                                                  str(e))])
        return Accepted(reading.device_id, reading.seq, line)

    def _reject(self, topic: str, payload: bytes, reason: str,
                problems: list[FieldProblem]) -> Rejection:
        return Rejection(topic, device_id_from_topic(topic, self.root), reason, problems, payload)
