"""The mapping engine: a message on a device's own topics, through its format, to contract
readings, or a refusal naming the field at fault and what the device's own metrics are.

Pure: the device (its domain, declared metrics and format) and the arrival time come in.
Ingest, the rules, the live stream and the exhibitor desk's preview all call
:func:`map_message`, so a payload is mapped the same way wherever it is judged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from smartcity.codec import Reading
from smartcity.errors import FieldProblem, InvalidPayload, Reason
from smartcity.formats import CUSTOM, catalogue
from smartcity.formats.profile import FieldMap, Rule, TimeField
from smartcity.formats.units import conversion
from smartcity.models import METRIC_BOUNDS, TS_MAX_MS, TS_MIN_MS, Source
from smartcity.registry import DeviceInfo
from smartcity.topics import TopicFilter, native_prefix

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_JSON_KINDS = {bool: "a boolean", str: "a string", list: "an array", dict: "an object",
               type(None): "null"}


@dataclass(frozen=True)
class Mapped:
    """What a message gave: readings to store (none for a message that holds no readings,
    such as Tasmota's STATE), and notes on what was left out and why."""

    readings: list[Reading]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Format:
    """A native format as the engine uses it: the rules, the topics without readings, and the
    topics to name when a device publishes elsewhere."""

    name: str
    rules: tuple[Rule, ...]
    ignore: tuple[str, ...]
    publishes: tuple[str, ...]


def format_of(device: DeviceInfo) -> Format | None:
    """The device's native format; None for our own formats (contract topics)."""
    if device.format == CUSTOM and device.mapping is not None:
        return Format(CUSTOM, (device.mapping.rule(),), (), (device.mapping.topic,))
    profile = catalogue().get(device.format)
    if profile is None:
        return None
    publishes = tuple(p.replace("{device_id}", device.device_id) for p in profile.publishes)
    return Format(profile.name, profile.rules, profile.ignore, publishes)


def topics_to_use(device: DeviceInfo, root: str) -> list[str]:
    fmt = format_of(device)
    if fmt is None:
        return []
    return [f"{native_prefix(device.device_id, root)}/{p}" for p in fmt.publishes]


@lru_cache(maxsize=256)
def _filter(value: str) -> TopicFilter:
    return TopicFilter(value)


def map_message(device: DeviceInfo, sub: str, payload: bytes, now_ms: int,
                root: str) -> Mapped:
    """Map a message the device published on ``{root}/dev/{id}/{sub}``; raise
    :class:`InvalidPayload` whose reason is a :class:`~smartcity.errors.Reason`."""
    fmt = format_of(device)
    prefix = native_prefix(device.device_id, root)
    if fmt is None:
        raise InvalidPayload(Reason.NATIVE_TOPIC, [FieldProblem("topic", (
            f"{device.device_id} is registered with the {device.format} format, which "
            f"publishes on {root}/{device.domain.value}/{device.device_id}/telemetry, not under "
            f"{prefix}/"))])
    for ignored in fmt.ignore:
        if _filter(ignored).matches(sub):
            return Mapped([], [f"{sub}: holds no readings in the {fmt.name} format"])
    for rule in fmt.rules:
        if _filter(rule.topic).matches(sub):
            return _apply(rule, device, sub, payload, now_ms)
    use = ", ".join(f"{prefix}/{p}" for p in fmt.publishes)
    raise InvalidPayload(Reason.NATIVE_TOPIC, [FieldProblem("topic", (
        f"{prefix}/{sub[:80]} is not a topic of the {fmt.name} format; publish on {use}"))])


class _Refusal(Exception):
    def __init__(self, reason: Reason, field: str, message: str) -> None:
        self.reason, self.problem = reason, FieldProblem(field, message)


def _apply(rule: Rule, device: DeviceInfo, sub: str, payload: bytes, now_ms: int) -> Mapped:
    try:
        if rule.payload == "number":
            return _number(rule, device, sub, payload, now_ms)
        return _json(rule, device, payload, now_ms)
    except _Refusal as r:
        raise InvalidPayload(r.reason, [r.problem]) from None


def _stores(device: DeviceInfo) -> list[str]:
    return list(device.metrics or METRIC_BOUNDS[device.domain])


def _why_not(device: DeviceInfo, metric: str) -> str | None:
    """Why the device does not store ``metric``; None if it does."""
    if metric not in METRIC_BOUNDS[device.domain]:
        return f"{metric} is not a {device.domain.value} metric"
    if device.metrics and metric not in device.metrics:
        return f"{metric} was not declared at registration"
    return None


def _checked(device: DeviceInfo, metric: str, value: float, where: str) -> float:
    if not math.isfinite(value):
        raise _Refusal(Reason.CONTRACT, where, f"{metric} must be finite")
    lo, hi = METRIC_BOUNDS[device.domain][metric]
    if not lo <= value <= hi:
        raise _Refusal(Reason.CONTRACT, where, f"{metric} {value:g} is outside its plausible "
                                               f"range {lo:g} to {hi:g}")
    return value


# -- JSON payloads ---------------------------------------------------------------------------

def _levels(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


@lru_cache(maxsize=1024)
def _glob(level: str) -> re.Pattern[str] | None:
    if "*" not in level:
        return None
    return re.compile(".*".join(re.escape(part) for part in level.split("*")))


def resolve(doc: Any, pointer: str) -> list[tuple[str, Any]]:
    """Every (path, value) a pointer reaches, in the document's order; a ``*`` in a level
    matches any run of characters of a key."""
    found: list[tuple[str, Any]] = [("", doc)]
    for level in _levels(pointer):
        glob = _glob(level)
        step: list[tuple[str, Any]] = []
        for path, node in found:
            if isinstance(node, dict):
                if glob is None:
                    if level in node:
                        step.append((f"{path}/{level}", node[level]))
                else:
                    step += [(f"{path}/{k}", v) for k, v in node.items()
                             if glob.fullmatch(k)]
            elif isinstance(node, list) and level.isdigit() and int(level) < len(node):
                step.append((f"{path}/{level}", node[int(level)]))
        found = step
    return found


def _json(rule: Rule, device: DeviceInfo, payload: bytes, now_ms: int) -> Mapped:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise _Refusal(Reason.NOT_JSON, "payload", str(e)) from None
    if not isinstance(doc, dict | list):
        raise _Refusal(Reason.UNKNOWN_FORMAT, "payload", "must be a JSON object")
    for pointer, allowed in rule.when.items():
        values = [v for _, v in resolve(doc, pointer)]
        if not any(v in allowed for v in values):
            shown = values[0] if values else "nothing"
            return Mapped([], [f"{pointer} is {str(shown)[:40]}, not {' or '.join(allowed)}: "
                               "holds no readings"])
    notes: list[str] = []
    ts_ms = _time(doc, rule.time, now_ms, notes)
    metrics: dict[str, float] = {}
    taken: dict[str, str] = {}
    found = 0
    for f in rule.fields:
        for path, value in resolve(doc, f.pointer):
            if path in f.exclude:
                continue
            found += 1
            why = _why_not(device, f.metric)
            if why is not None:
                notes.append(f"{path}: left out, {why}")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                notes.append(f"{path}: left out, {_JSON_KINDS.get(type(value), 'a value')} is "
                             "not a number")
                continue
            if f.metric in taken:
                notes.append(f"{path}: left out, {f.metric} is taken from {taken[f.metric]}")
                continue
            convert = conversion(f.metric, _unit(doc, f))
            assert convert is not None  # units are checked when the profile is loaded
            metrics[f.metric] = _checked(device, f.metric,
                                         round(convert.then(f.scale, f.offset)(value), 6), path)
            taken[f.metric] = path
    if metrics:
        return Mapped([Reading(device.domain, device.device_id, ts_ms, None, Source.LIVE,
                               metrics)], notes)
    if not found and rule.quiet:
        return Mapped([], ["holds none of the fields this format reads"])
    wanted = ", ".join(f"{f.pointer} ({f.metric})" for f in rule.fields
                       if _why_not(device, f.metric) is None)
    detail = f" ({'; '.join(notes)})" if notes else ""
    raise _Refusal(Reason.UNKNOWN_METRIC, "payload", (
        f"holds none of this device's metrics{detail}; it stores {', '.join(_stores(device))}"
        + (f", read from {wanted}" if wanted else "")))


def _unit(doc: Any, f: FieldMap) -> str | None:
    if f.unit_from is not None:
        named = resolve(doc, f.unit_from.pointer)
        if named:
            value = named[0][1]
            unit = f.unit_from.values.get(str(value))
            if unit is None:
                raise _Refusal(Reason.WRONG_UNIT, f.unit_from.pointer, (
                    f"{str(value)[:20]!r} is not a unit this format knows; it reads "
                    f"{', '.join(f.unit_from.values)}"))
            return unit
    return f.unit


def _time(doc: Any, spec: TimeField | None, now_ms: int, notes: list[str]) -> int:
    if spec is None:
        return now_ms
    found = resolve(doc, spec.pointer)
    if not found:
        return now_ms
    path, value = found[0]
    if isinstance(value, str) and spec.format in ("auto", "rfc3339"):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Refusal(Reason.CONTRACT, path, f"{value[:40]!r} is not an RFC 3339 "
                                                  "time") from None
        if parsed.tzinfo is None:
            if spec.format == "rfc3339":
                raise _Refusal(Reason.CONTRACT, path, f"{value[:40]!r} has no UTC offset")
            notes.append(f"{path} has no UTC offset: stamped on arrival")
            return now_ms
        ms = int(parsed.timestamp() * 1000)
    elif isinstance(value, int | float) and not isinstance(value, bool) \
            and spec.format != "rfc3339" and math.isfinite(value):
        seconds = spec.format == "epoch_s" or (spec.format == "auto" and value < 1e11)
        ms = round(value * 1000) if seconds else round(value)
    else:
        raise _Refusal(Reason.CONTRACT, path, f"is not a time in the {spec.format} format")
    if not TS_MIN_MS <= ms < TS_MAX_MS:
        raise _Refusal(Reason.CONTRACT, path, "is outside the years 2000-2099")
    return ms


# -- bare values -------------------------------------------------------------------------------

def metric_named(names: dict[str, str], name: str) -> str | None:
    if name in METRIC_BOUNDS_ALL:
        return name
    for pattern, metric in names.items():
        glob = _glob(pattern)
        if (glob.fullmatch(name) if glob else pattern == name):
            return metric
    return None


METRIC_BOUNDS_ALL = {m for bounds in METRIC_BOUNDS.values() for m in bounds}


def _number(rule: Rule, device: DeviceInfo, sub: str, payload: bytes, now_ms: int) -> Mapped:
    assert rule.names is not None
    levels = sub.split("/")
    name = levels[rule.names.level] if rule.names.level < len(levels) else ""
    metric = metric_named(rule.names.names, name)
    why = f"{name!r} names none of the metrics" if metric is None else _why_not(device, metric)
    if why is not None:
        hint = (f"{why}; this device stores {', '.join(_stores(device))}: name the sensor so "
                "its id holds one of them")
        if rule.quiet:
            return Mapped([], [f"{sub}: left out, {hint}"])
        raise _Refusal(Reason.UNKNOWN_TOPIC_METRIC, "topic", hint)
    assert metric is not None
    text = payload.strip()
    if text.lower() in (b"nan", b"unknown", b"unavailable", b""):
        return Mapped([], [f"{sub}: the sensor has no value yet ({text.decode(errors='replace')})"])
    if not _NUMBER.fullmatch(text):
        shown = repr(text[:40].decode("utf-8", "backslashreplace"))
        raise _Refusal(Reason.NOT_A_NUMBER, "payload", f"{shown} is not a number such as 21.5")
    value = _checked(device, metric, float(text), metric)
    return Mapped([Reading(device.domain, device.device_id, now_ms, None, Source.LIVE,
                           {metric: value})])

