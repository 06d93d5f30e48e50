"""JSON codec: payload bytes to validated readings and back.

``decode`` is a pure function of (topic, payload); ingest, replay backfill and tests all use
it, so a payload is judged the same way wherever it enters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from smartcity.errors import FieldProblem, InvalidPayload
from smartcity.models import TELEMETRY_MODELS, DeviceStatus, Source, Telemetry, format_ts
from smartcity.topics import DEFAULT_ROOT, Domain, Kind, parse_device_topic


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated telemetry message, ready to store."""

    domain: Domain
    device_id: str
    ts_ms: int
    seq: int
    source: Source
    metrics: dict[str, float]


def problems_of(error: ValidationError) -> list[FieldProblem]:
    out = []
    for e in error.errors(include_url=False):
        field = ".".join(str(p) for p in e["loc"]) or "payload"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "is not a known field of this domain (metrics carry their unit: water_level_cm)"
        elif e["type"] == "missing":
            msg = "is required"
        out.append(FieldProblem(field, msg))
    return out


def validate_payload(model: type[Telemetry], payload: bytes) -> Telemetry:
    try:
        # pydantic's own JSON parser in strict mode: "12" is not a number, and RFC 3339
        # strings still parse because JSON has no datetime type.
        return model.model_validate_json(payload)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise InvalidPayload("payload is not valid JSON",
                                 [FieldProblem("payload", first["msg"])]) from None
        raise InvalidPayload("payload does not match the contract", problems_of(e)) from None


def decode(topic: str, payload: bytes, root: str = DEFAULT_ROOT) -> Reading:
    """Decode a telemetry message; raise a ContractError naming the field at fault."""
    parsed = parse_device_topic(topic, root)
    if parsed.kind is not Kind.TELEMETRY:
        raise InvalidPayload("not a telemetry topic", [FieldProblem("topic", topic[:80])])
    model = TELEMETRY_MODELS[parsed.domain]
    if not payload.lstrip()[:1] == b"{":
        raise InvalidPayload("payload must be a JSON object", [FieldProblem(
            "payload", 'must be a JSON object such as {"ts": ..., "seq": ..., "<metric>": ...}')])
    t = validate_payload(model, payload)
    return Reading(parsed.domain, parsed.device_id, t.ts, t.seq, t.source, t.metrics())


def decode_status(payload: bytes) -> DeviceStatus:
    try:
        return DeviceStatus.model_validate_json(payload)
    except ValidationError as e:
        raise InvalidPayload("status does not match the contract", problems_of(e)) from None


def dump(model: BaseModel) -> bytes:
    """Encode a contract model as compact JSON, leaving out unset metrics."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    if isinstance(model, Telemetry | DeviceStatus) and isinstance(data.get("ts"), int):
        data["ts"] = format_ts(data["ts"])
    return orjson.dumps(data)


def encode_reading(reading: Reading) -> bytes:
    """A reading back to its wire form (what a device would have sent)."""
    body: dict[str, Any] = {"ts": format_ts(reading.ts_ms), "seq": reading.seq}
    if reading.source is not Source.LIVE:
        body["source"] = reading.source.value
    body.update(reading.metrics)
    return orjson.dumps(body)
