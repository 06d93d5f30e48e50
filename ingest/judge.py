"""Judging one message: lines of line protocol to store, or a rejection saying why.

No I/O. The clock comes in as ``now_ms``, the time the message arrived: the MQTT edge passes
its receipt time; a caller judging a recording should pass the recorded arrival (without it,
the wall clock is taken). The MQTT edge calls it for every message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ingest.fastdecode import FastDecoder
from smartcity.errors import ContractError, FieldProblem, MqttReasonCode, Reason, reason_code
from smartcity.formats.decoding import decode_device_message
from smartcity.registry import Registry
from smartcity.topics import device_id_from_topic
from storage.lineprotocol import LineFormatter, LineProtocolError


@dataclass(frozen=True, slots=True)
class Rejection:
    topic: str
    device_id: str | None  # where to send the explanation, if the topic names a valid id
    reason: str
    problems: list[FieldProblem]
    payload: bytes

    @property
    def code(self) -> MqttReasonCode:
        return reason_code(self.reason)


@dataclass(slots=True)
class Accepted:
    device_id: str
    seq: int | None  # None for formats without a message counter (SenML, single values)
    # one point per reading, joined by newlines (a SenML pack may hold several); None for a
    # message that holds no readings (Tasmota's STATE, a SenML pack of voltages)
    line: str | None
    points: int = 1


@dataclass
class Judge:
    registry: Registry
    root: str
    max_payload_bytes: int
    fast: bool = True  # well-formed JSON readings skip the pydantic models (same verdicts)
    _format: LineFormatter = field(default_factory=LineFormatter)
    _fast: FastDecoder | None = None

    def __post_init__(self) -> None:
        if self.fast:
            self._fast = FastDecoder(self.root)

    def __call__(self, topic: str, payload: bytes, now_ms: int | None = None
                 ) -> Accepted | Rejection:
        """``now_ms`` defaults to the wall clock, for callers that judge as messages arrive."""
        if len(payload) > self.max_payload_bytes:
            return self._reject(topic, payload, Reason.TOO_LARGE, [FieldProblem(
                "payload", f"{len(payload)} bytes exceeds the limit of {self.max_payload_bytes}")])
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        readings = self._fast(topic, payload) if self._fast is not None else None
        if readings is None:
            try:
                readings = decode_device_message(topic, payload, self.registry, self.root,
                                                 now_ms=now_ms).readings
            except ContractError as e:
                return self._reject(topic, payload, e.reason, e.problems)
            if not readings:  # a message of the device's format that holds no readings
                return Accepted(device_id_from_topic(topic, self.root) or "", None, None, 0)
        first = readings[0]
        device = self.registry.get(first.device_id)
        if device is None:
            return self._reject(topic, payload, Reason.UNKNOWN_DEVICE, [FieldProblem(
                "device_id", f"{first.device_id!r} is not registered; register the device "
                             "before it publishes")])
        if device.domain is not first.domain:
            return self._reject(topic, payload, Reason.WRONG_DOMAIN, [FieldProblem(
                "domain", f"{first.device_id!r} is registered as a {device.domain.value} "
                          f"device, not {first.domain.value}")])
        if device.metrics:
            undeclared = [m for r in readings for m in r.metrics if m not in device.metrics]
            if undeclared:
                declared = ", ".join(device.metrics)
                return self._reject(topic, payload, Reason.UNDECLARED_METRIC, [FieldProblem(
                    m, f"{m} was not declared when {first.device_id!r} was registered; it "
                       f"declared: {declared}") for m in dict.fromkeys(undeclared)])
        try:
            lines = [self._format(r, device) for r in readings]
        except LineProtocolError as e:  # cannot happen with registry ids; kept as a guard
            return self._reject(topic, payload, Reason.UNSTORABLE, [FieldProblem("payload",
                                                                                 str(e))])
        return Accepted(first.device_id, first.seq, "\n".join(lines), len(lines))

    def _reject(self, topic: str, payload: bytes, reason: str,
                problems: list[FieldProblem]) -> Rejection:
        return Rejection(topic, device_id_from_topic(topic, self.root), reason, problems, payload)
