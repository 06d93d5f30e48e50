"""The error hierarchy of the event contract.

Every rejection carries the name of the field (or topic level) at fault, so the message that
reaches a device maker on its errors topic says what to fix, not just that something failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContractError(ValueError):
    """A value does not follow the event contract."""

    def __init__(self, reason: str, problems: list[FieldProblem] | None = None) -> None:
        self.reason = reason
        self.problems = problems or []
        detail = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{reason}: {detail}" if detail else reason)


class InvalidId(ContractError):
    pass


class InvalidTopic(ContractError):
    pass


class InvalidPayload(ContractError):
    pass


class Reason(StrEnum):
    """Why ingest refused a message: the ``reason`` of a report on ``{root}/devices/{id}/errors``
    and of a ``device_rejections`` point. :data:`REASON_CODES` gives each its MQTT 5 code."""

    # the topic
    OUTSIDE_ROOT = "topic outside the city root"
    TOPIC_LEVELS = "wrong number of topic levels"
    UNKNOWN_DOMAIN = "unknown domain"
    INVALID_ID = "invalid id"
    TOPIC_KIND = "unknown topic kind"
    NOT_TELEMETRY = "not a telemetry topic"
    UNKNOWN_TOPIC_METRIC = "unknown metric in topic"
    NATIVE_TOPIC = "topic not in the device's format"
    BROKER_REFUSED = "publish refused by the broker"
    # the payload
    TOO_LARGE = "payload too large"
    NOT_JSON = "payload is not valid JSON"
    UNKNOWN_FORMAT = "unrecognised payload format"
    NOT_A_NUMBER = "payload is not a number"
    CONTRACT = "payload does not match the contract"
    INVALID_SENML = "invalid SenML"
    UNKNOWN_METRIC = "unknown metric"
    WRONG_UNIT = "wrong unit"
    UNDECLARED_METRIC = "undeclared metric"
    # the device
    UNKNOWN_DEVICE = "unknown device"
    WRONG_DOMAIN = "wrong domain"
    # ingest itself
    UNSTORABLE = "unstorable value"


class MqttReasonCode(IntEnum):
    """The MQTT 5 reason codes (OASIS MQTT 5.0, section 2.4) a rejection is reported with."""

    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    NOT_AUTHORIZED = 0x87
    TOPIC_NAME_INVALID = 0x90
    PACKET_TOO_LARGE = 0x95
    PAYLOAD_FORMAT_INVALID = 0x99

    @property
    def spec_name(self) -> str:
        """The code's name as the MQTT 5 specification writes it."""
        return _SPEC_NAMES[self]


_SPEC_NAMES = {
    MqttReasonCode.IMPLEMENTATION_SPECIFIC_ERROR: "Implementation specific error",
    MqttReasonCode.NOT_AUTHORIZED: "Not authorized",
    MqttReasonCode.TOPIC_NAME_INVALID: "Topic Name invalid",
    MqttReasonCode.PACKET_TOO_LARGE: "Packet too large",
    MqttReasonCode.PAYLOAD_FORMAT_INVALID: "Payload format invalid",
}

_C = MqttReasonCode
REASON_CODES: dict[Reason, MqttReasonCode] = {
    # "The Topic Name is not malformed, but is not accepted by this Client or Server."
    Reason.OUTSIDE_ROOT: _C.TOPIC_NAME_INVALID,
    Reason.TOPIC_LEVELS: _C.TOPIC_NAME_INVALID,
    Reason.UNKNOWN_DOMAIN: _C.TOPIC_NAME_INVALID,
    Reason.INVALID_ID: _C.TOPIC_NAME_INVALID,
    Reason.TOPIC_KIND: _C.TOPIC_NAME_INVALID,
    Reason.NOT_TELEMETRY: _C.TOPIC_NAME_INVALID,
    Reason.UNKNOWN_TOPIC_METRIC: _C.TOPIC_NAME_INVALID,
    Reason.NATIVE_TOPIC: _C.TOPIC_NAME_INVALID,
    # "The packet exceeded the maximum permissible size."
    Reason.TOO_LARGE: _C.PACKET_TOO_LARGE,
    # "The payload format does not match the specified Payload Format Indicator": the
    # nearest code for a payload that cannot be decoded or does not follow the contract.
    Reason.NOT_JSON: _C.PAYLOAD_FORMAT_INVALID,
    Reason.UNKNOWN_FORMAT: _C.PAYLOAD_FORMAT_INVALID,
    Reason.NOT_A_NUMBER: _C.PAYLOAD_FORMAT_INVALID,
    Reason.CONTRACT: _C.PAYLOAD_FORMAT_INVALID,
    Reason.INVALID_SENML: _C.PAYLOAD_FORMAT_INVALID,
    Reason.UNKNOWN_METRIC: _C.PAYLOAD_FORMAT_INVALID,
    Reason.WRONG_UNIT: _C.PAYLOAD_FORMAT_INVALID,
    Reason.UNDECLARED_METRIC: _C.PAYLOAD_FORMAT_INVALID,
    # "The PUBLISH is not authorized": the device is not one the exhibit knows, or speaks
    # for a domain it was not registered as.
    Reason.UNKNOWN_DEVICE: _C.NOT_AUTHORIZED,
    Reason.WRONG_DOMAIN: _C.NOT_AUTHORIZED,
    # The broker's own answer to a publish outside the device's topics, seen in its log.
    Reason.BROKER_REFUSED: _C.NOT_AUTHORIZED,
    # "The PUBLISH is valid but is not accepted by this Server."
    Reason.UNSTORABLE: _C.IMPLEMENTATION_SPECIFIC_ERROR,
}


def reason_code(reason: str) -> MqttReasonCode:
    """The MQTT 5 reason code of a rejection reason; reasons outside :class:`Reason` (none
    reach a device today) are an implementation specific error."""
    try:
        return REASON_CODES[Reason(reason)]
    except ValueError:
        return MqttReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
