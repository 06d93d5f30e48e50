"""The codec: payload bytes to validated readings and back.

Pure functions, the one place a payload is judged: ingest, the rules, the live screens, replay
backfill and tests all call them, so a payload is judged the same way wherever it enters. The
clock comes in as ``now_ms`` (what "now" is for a reading without a time of its own).

:func:`decode_message` takes every format exhibitors' devices send, told apart by topic and
first byte:

- our JSON object on ``{root}/{domain}/{id}/telemetry``: metrics named with their units, and
  optionally ``ts``, ``seq`` and ``source`` (:mod:`smartcity.models`); without ``ts`` the
  reading is stamped when it arrived;
- a SenML pack (RFC 8428) on the same topic: a JSON array of records whose names and units
  map to our metrics through :data:`SENML_METRICS`. The topic and the account identify the
  device, so any base name is taken (a URN such as ``urn:dev:ow:10e2073a01080063:``); a record
  of a quantity the city does not measure (volts, a position) is left out with a note;
- a bare number on a single-value topic ``{root}/{domain}/{id}/telemetry/{metric}``
  (Tasmota, ESPHome and MicroPython sketches publish ``21.5``), stamped with the time it
  arrived. A JSON string (``"21.5"``) is refused like anywhere else in the contract: a number
  is sent as a number.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from smartcity.errors import FieldProblem, InvalidPayload, Reason
from smartcity.metrics import CATALOGUE, Senml
from smartcity.models import (
    METRIC_BOUNDS,
    TELEMETRY_MODELS,
    TS_MAX_MS,
    TS_MIN_MS,
    DeviceStatus,
    Source,
    Telemetry,
    format_ts,
)
from smartcity.topics import DEFAULT_ROOT, DeviceTopic, Domain, Kind, parse_device_topic


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated reading, ready to store: the metrics a device measured at one time."""

    domain: Domain
    device_id: str
    ts_ms: int
    seq: int | None  # the device's message counter; None for formats that have none
    source: Source
    metrics: dict[str, float]


def problems_of(error: ValidationError, metrics: Sequence[str] = ()) -> list[FieldProblem]:
    """The problems of a failed validation; ``metrics`` (the device's own) name what an
    unknown field should have been."""
    out = []
    for e in error.errors(include_url=False):
        field = ".".join(str(p) for p in e["loc"]) or "payload"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "is not a known field"
            if metrics:
                msg += f" (metrics carry their unit: {', '.join(metrics)})"
        elif e["type"] == "missing":
            msg = "is required"
        out.append(FieldProblem(field, msg))
    return out


def validate_payload(model: type[Telemetry], payload: bytes,
                     metrics: Sequence[str] = ()) -> Telemetry:
    try:
        # pydantic's own JSON parser in strict mode: "12" is not a number, and RFC 3339
        # strings still parse because JSON has no datetime type.
        return model.model_validate_json(payload)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise InvalidPayload(Reason.NOT_JSON,
                                 [FieldProblem("payload", first["msg"])]) from None
        raise InvalidPayload(Reason.CONTRACT,
                             problems_of(e, metrics or model.metric_names())) from None


def _telemetry_topic(topic: str, root: str) -> DeviceTopic:
    parsed = parse_device_topic(topic, root)
    if parsed.kind is not Kind.TELEMETRY:
        raise InvalidPayload(Reason.NOT_TELEMETRY, [FieldProblem("topic", topic[:80])])
    return parsed


def decode(topic: str, payload: bytes, root: str = DEFAULT_ROOT,
           now_ms: int | None = None) -> Reading:
    """Decode our JSON object on a telemetry topic; raise a ContractError naming the field at
    fault. ``now_ms`` stamps a reading without ``ts`` (default: the wall clock).
    :func:`decode_message` takes every format."""
    parsed = _telemetry_topic(topic, root)
    if parsed.metric is not None or not payload.lstrip()[:1] == b"{":
        raise InvalidPayload("payload must be a JSON object", [FieldProblem(
            "payload", 'must be a JSON object such as {"<metric>": ..., "ts": ..., "seq": ...}')])
    return _decode_object(parsed, payload, int(time.time() * 1000) if now_ms is None else now_ms)


def decode_message(topic: str, payload: bytes, root: str = DEFAULT_ROOT, *,
                   now_ms: int, metrics: Sequence[str] = (),
                   notes: list[str] | None = None) -> list[Reading]:
    """Every reading of a telemetry message in any accepted format, oldest first; raise a
    ContractError whose reason is a :class:`~smartcity.errors.Reason`, naming the field at
    fault. ``now_ms`` is when the message arrived: the time of a reading without one, and what
    SenML's relative times count from. ``metrics`` are the device's declared metrics, named in
    hints and used to recognise a SenML record by its unit alone; what was left out of the
    message (and why) is appended to ``notes``."""
    parsed = _telemetry_topic(topic, root)
    if parsed.metric is not None:
        return [_decode_value(parsed, payload, now_ms)]
    head = payload.lstrip()[:1]
    if head == b"{":
        return [_decode_object(parsed, payload, now_ms, metrics)]
    if head == b"[":
        return _decode_senml(parsed, payload, now_ms, metrics, notes)
    metric = (metrics or METRIC_BOUNDS[parsed.domain])
    first = next(iter(metric))
    raise InvalidPayload(Reason.UNKNOWN_FORMAT, [FieldProblem("payload", (
        f'must be a JSON object ({{"{first}": ...}}) or a SenML pack '
        f'([{{"n": "{first}", "v": ...}}]); a bare number goes to the single-value topic '
        f"{topic[:80]}/{first}"))])


def _decode_object(parsed: DeviceTopic, payload: bytes, now_ms: int,
                   metrics: Sequence[str] = ()) -> Reading:
    t = validate_payload(TELEMETRY_MODELS[parsed.domain], payload, metrics)
    return Reading(parsed.domain, parsed.device_id, now_ms if t.ts is None else t.ts, t.seq,
                   t.source, t.metrics())


# -- metrics, names and units --------------------------------------------------------------

# A SenML record's name is either our metric (no unit, or the metric's own) or one of its
# plain names with one of its units (RFC 8428 and the RFC 8798 unit registry), converted by
# the factor: the catalogue says which.
SENML_METRICS: dict[str, Senml] = {name: m.senml for name, m in CATALOGUE.items()}
_BY_PLAIN_NAME = {name: metric for metric, m in SENML_METRICS.items() for name in m.names}

if set(CATALOGUE) != {n for b in METRIC_BOUNDS.values() for n in b}:
    raise RuntimeError("the metric catalogue must name every metric of the payload models, "
                       "and only those")


class _Refusal(Exception):
    def __init__(self, reason: Reason, field: str, message: str) -> None:
        self.reason, self.problem = reason, FieldProblem(field, message)


_POSITION_UNITS = ("lat", "lon", "m")  # RFC 8428 section 12.1: a record's position


def _metric_and_factor(domain: Domain, name: str, unit: str | None, name_field: str,
                       unit_field: str, declared: Sequence[str] = ()) -> tuple[str, float] | str:
    """Our metric for a SenML (name, unit) and the factor from that unit to the metric's, or
    a note saying why the record is left out (a quantity the city does not measure).

    A name that is none of ours (a URN, an address) is recognised by its unit when exactly one
    of the device's metrics (its declared ones, or else its domain's) comes in that unit."""
    key = name.lower()
    known = METRIC_BOUNDS[domain]
    if key in known:
        own = SENML_METRICS[key].unit
        if unit is None or unit == own:
            return key, 1.0
        hint = f"send u {own!r} or none" if own else "send no unit"
        raise _Refusal(Reason.WRONG_UNIT, unit_field, f"{key} is in its own unit, not "
                                                      f"{unit[:20]!r}: {hint}")
    metric = _BY_PLAIN_NAME.get(key)
    if metric is None and unit is not None:
        candidates = [m for m in (declared or known) if m in known]
        by_unit = [m for m in candidates
                   if unit == SENML_METRICS[m].unit or unit in SENML_METRICS[m].units]
        if len(by_unit) == 1:
            return by_unit[0], float(SENML_METRICS[by_unit[0]].units.get(unit, 1))
        if not any(unit == SENML_METRICS[m].unit or unit in SENML_METRICS[m].units
                   for m in known):
            if unit in ("lat", "lon"):
                return (f"{unit!r} records (the device's position) are not used: the city "
                        "places the device where it was registered")
            return (f"{name[:40]!r} in {unit[:20]!r} is not a {domain.value} metric; left out "
                    f"(this device stores: {', '.join(declared or known)})")
    if metric is None or metric not in known:
        names = ", ".join(sorted({*known, *(n for m in known for n in SENML_METRICS[m].names)}))
        what = (f"means {metric}, which is not a {domain.value} metric" if metric
                else f"is not a {domain.value} metric")
        raise _Refusal(Reason.UNKNOWN_METRIC, name_field, f"{name[:40]!r} {what}; send one of: "
                                                          f"{names}")
    units = SENML_METRICS[metric].units
    if unit not in units:
        given = f"comes in {unit[:20]!r}" if unit is not None else "has no unit (u or bu)"
        raise _Refusal(Reason.WRONG_UNIT, unit_field if unit is not None else name_field,
                       f"{name[:40]!r} {given}; send it in {' or '.join(units)}, or name it "
                       f"{metric}")
    return metric, float(units[unit])


_JSON_KINDS = {bool: "a boolean", str: "a string", list: "an array", dict: "an object",
               type(None): "null"}


def _checked(domain: Domain, metric: str, value: Any, field: str) -> float:
    """``value`` if it is a finite number within the metric's plausible range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise _Refusal(Reason.CONTRACT, field, f"{metric} must be a number, not {kind}")
    if not math.isfinite(value):
        raise _Refusal(Reason.CONTRACT, field, f"{metric} must be finite")
    lo, hi = METRIC_BOUNDS[domain][metric]
    if not lo <= value <= hi:
        raise _Refusal(Reason.CONTRACT, field, f"{metric} {value:g} is outside its plausible "
                                               f"range {lo:g} to {hi:g}")
    return float(value)


# -- single values ---------------------------------------------------------------------------

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _decode_value(parsed: DeviceTopic, payload: bytes, now_ms: int) -> Reading:
    assert parsed.metric is not None
    metric, domain = parsed.metric, parsed.domain
    known = METRIC_BOUNDS[domain]
    if metric not in known:
        hint = (f" (name it with its unit: {_BY_PLAIN_NAME[metric]})"
                if _BY_PLAIN_NAME.get(metric) in known else "")
        raise InvalidPayload(Reason.UNKNOWN_TOPIC_METRIC, [FieldProblem(
            "metric", f"{metric!r} is not a {domain.value} metric{hint}; use one of: "
                      f"{', '.join(known)}")])
    text = payload.strip()
    if not _NUMBER.fullmatch(text):
        shown = repr(text[:40].decode("utf-8", "backslashreplace"))
        quoted = text[1:-1].strip() if text[:1] == text[-1:] == b'"' else b""
        message = (f"{shown} is a JSON string; send the bare number ({quoted.decode()})"
                   if _NUMBER.fullmatch(quoted) else f"{shown} is not a number such as 21.5")
        raise InvalidPayload(Reason.NOT_A_NUMBER, [FieldProblem("payload", message)])
    try:
        value = _checked(domain, metric, float(text), metric)
    except _Refusal as r:
        raise InvalidPayload(r.reason, [r.problem]) from None
    return Reading(domain, parsed.device_id, now_ms, None, Source.LIVE, {metric: value})


# -- SenML (RFC 8428) ------------------------------------------------------------------------

SENML_VERSION = 10
SENML_ABSOLUTE_S = 2**28  # times below this are relative to now (RFC 8428, section 4.5.3)
MAX_PROBLEMS = 20  # a report names this many records at most
_SENML_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9:./_-]*")
_STRING_FIELDS = ("bn", "bu", "n", "u")
_NUMBER_FIELDS = ("bt", "bv", "bs", "t", "s", "ut")  # v: judged with its metric
_OTHER_VALUES = {"vs": "a string", "vb": "a boolean", "vd": "data"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode_senml(parsed: DeviceTopic, payload: bytes, now_ms: int,
                  declared: Sequence[str] = (), notes: list[str] | None = None) -> list[Reading]:
    try:
        pack = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise InvalidPayload(Reason.NOT_JSON, [FieldProblem("payload", str(e))]) from None
    if not isinstance(pack, list) or not pack:
        raise InvalidPayload(Reason.INVALID_SENML, [FieldProblem(
            "payload", "a SenML pack is a non-empty JSON array of records")])
    problems: dict[Reason, list[FieldProblem]] = {}
    by_time: dict[int, dict[str, float]] = {}
    left_out: dict[str, None] = {}
    base_name, base_unit, base_time, base_value = "", None, 0.0, 0.0
    for i, record in enumerate(pack):
        at = f"[{i}]"
        try:
            if not isinstance(record, dict):
                raise _Refusal(Reason.INVALID_SENML, at, "must be a JSON object (a record)")
            _check_fields(record, at)
            base_name = record.get("bn", base_name)
            base_unit = record.get("bu", base_unit)
            base_time = float(record.get("bt", base_time))
            base_value = float(record.get("bv", base_value))
            value_keys = [k for k in ("v", *_OTHER_VALUES) if k in record]
            if not value_keys:
                if ("n" in record or "u" in record) and "s" not in record:
                    raise _Refusal(Reason.INVALID_SENML, at, "has no value: send it as v")
                continue  # base fields only, or only a sum (s), which no metric here is
            if len(value_keys) > 1:
                raise _Refusal(Reason.INVALID_SENML, at, f"holds {' and '.join(value_keys)}; "
                                                         "a record carries one value")
            key = value_keys[0]
            resolved = _resolve_name(base_name, record, at, base_unit, parsed.domain, declared,
                                     strict=key == "v")
            if isinstance(resolved, str):
                left_out[resolved] = None
                continue
            metric, factor = resolved
            if key != "v":
                raise _Refusal(Reason.CONTRACT, f"{at}.{key}", f"{metric} is a number: send it "
                                                               f"as v, not {_OTHER_VALUES[key]} "
                                                               f"({key})")
            value = record["v"]
            if _number(value):
                value = base_value + value
                if factor != 1.0:
                    value = round(value * factor, 9)
            value = _checked(parsed.domain, metric, value, f"{at}.v")
            ts_ms = _resolve_time(base_time + float(record.get("t", 0.0)), now_ms, at,
                                  "t" if "t" in record else "bt")
            metrics = by_time.setdefault(ts_ms, {})
            if metric in metrics:
                raise _Refusal(Reason.INVALID_SENML, at, f"{metric} is given twice for "
                                                         f"{format_ts(ts_ms)}; give each "
                                                         "record its own t")
            metrics[metric] = value
        except _Refusal as r:
            problems.setdefault(r.reason, []).append(r.problem)
    if problems:
        # One reason per report: the first record's; the problems are those of that reason.
        reason, found = next(iter(problems.items()))
        if len(found) > MAX_PROBLEMS:
            more = FieldProblem("payload", f"{len(found) - MAX_PROBLEMS} more records are "
                                           "refused for the same reason")
            found = [*found[:MAX_PROBLEMS], more]
        raise InvalidPayload(reason, found)
    if notes is not None:
        notes.extend(left_out)
    if not by_time and not left_out:
        raise InvalidPayload(Reason.INVALID_SENML, [FieldProblem(
            "payload", "no record carries a value (v)")])
    return [Reading(parsed.domain, parsed.device_id, ts, None, Source.LIVE, metrics)
            for ts, metrics in sorted(by_time.items())]


def _check_fields(record: dict[str, Any], at: str) -> None:
    for key, value in record.items():
        if key.endswith("_"):
            raise _Refusal(Reason.INVALID_SENML, f"{at}.{key}", "is a field that must be "
                                                               "understood (RFC 8428, 4.4), "
                                                               "and smartcity does not know it")
        if key in _STRING_FIELDS and not isinstance(value, str):
            raise _Refusal(Reason.INVALID_SENML, f"{at}.{key}", "must be a string")
        if key in _NUMBER_FIELDS and not _number(value):
            raise _Refusal(Reason.INVALID_SENML, f"{at}.{key}", "must be a number")
    bver = record.get("bver")
    if bver is not None and not (isinstance(bver, int) and not isinstance(bver, bool)
                                 and 0 < bver <= SENML_VERSION):
        raise _Refusal(Reason.INVALID_SENML, f"{at}.bver", f"{bver!r} is not a SenML version "
                                                           f"this exhibit reads (1 to "
                                                           f"{SENML_VERSION})")


def _resolve_name(base_name: str, record: dict[str, Any], at: str, base_unit: str | None,
                  domain: Domain, declared: Sequence[str], *,
                  strict: bool = True) -> tuple[str, float] | str:
    """The metric a record names and the factor to its unit, or a note on why it is left out.
    The part of the name before its last ``:`` or ``/`` (a URN, an address) is not judged:
    the topic and the account already say which device speaks. A record that is not
    ``strict`` (a string, boolean or data value) is left out unless it names a metric."""
    name = record.get("n", "")
    if base_name and name and base_name[-1] not in ":/":
        full = f"{base_name}:{name}"  # "flood-a1" + "water_level": a base name without its colon
    else:
        full = base_name + name
    field = f"{at}.n" if name else f"{at}.bn"
    if not full:
        raise _Refusal(Reason.INVALID_SENML, at, "has no name (n, or bn in this or an earlier "
                                                 "record)")
    if not _SENML_NAME.fullmatch(full):
        raise _Refusal(Reason.INVALID_SENML, field, f"{full[:60]!r} is not a SenML name "
                                                    "(letters, digits and - : . / _)")
    metric_name = full[max(full.rfind(":"), full.rfind("/")) + 1:]
    unit = record.get("u", base_unit)
    if not strict:
        if metric_name.lower() in METRIC_BOUNDS[domain]:
            return metric_name.lower(), 1.0
        return f"{full[:60]!r} is not a number the city stores; left out"
    if not metric_name and unit is None:
        raise _Refusal(Reason.INVALID_SENML, field, f"{full[:60]!r} names no metric")
    return _metric_and_factor(domain, metric_name, unit, field,
                              f"{at}.u" if "u" in record else "bu", declared)


def _resolve_time(seconds: float, now_ms: int, at: str, field: str) -> int:
    """Epoch ms of a resolved SenML time: absolute from 2**28 s on, relative to now below."""
    ms = seconds * 1000 + (0 if seconds >= SENML_ABSOLUTE_S else now_ms)
    if not TS_MIN_MS <= ms < TS_MAX_MS:  # also keeps inf away from round()
        hint = "; SenML times are seconds, not milliseconds" if seconds > TS_MAX_MS / 1000 else ""
        raise _Refusal(Reason.INVALID_SENML, f"{at}.{field}", f"bt + t = {seconds:.15g} s is "
                                                              f"outside the years 2000-2099"
                                                              f"{hint}")
    return round(ms)


# -- the other payloads ----------------------------------------------------------------------

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
    """A reading back to our JSON object (what a device would have sent); a reading without
    a ``seq`` gets 0."""
    body: dict[str, Any] = {"ts": format_ts(reading.ts_ms), "seq": reading.seq or 0}
    if reading.source is not Source.LIVE:
        body["source"] = reading.source.value
    body.update(reading.metrics)
    return orjson.dumps(body)
