"""A vendor format as data: which topics under a device's prefix carry readings, where each
metric is in the payload, its unit, and where the time is.

Built-in profiles are TOML files in ``smartcity/formats/profiles/`` (one per vendor, loaded
by :func:`smartcity.formats.catalogue`); an exhibitor's custom mapping is the same
:class:`Rule`, built from the registration (:meth:`CustomMapping.rule`). A new vendor is a new
file: no code reads a vendor's name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from smartcity.formats.units import UNITS, units_of
from smartcity.topics import check_filter

TimeFormat = Literal["auto", "rfc3339", "epoch_s", "epoch_ms"]
_POINTER = re.compile(r"(/[^/]*)*")


def check_pointer(value: str) -> str:
    """A JSON pointer (RFC 6901) whose levels may hold ``*`` globs: ``/AM2301/Temperature``,
    ``/params/temperature:*/tC``, ``/*/Temperature``."""
    if not _POINTER.fullmatch(value):
        raise ValueError(f"{value[:60]!r} is not a JSON pointer such as /sensor/temperature")
    return value


Pointer = Annotated[str, AfterValidator(check_pointer)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeField(_Model):
    """Where a message says when it was measured. ``auto`` takes RFC 3339 with an offset or
    epoch seconds/milliseconds (told apart by size); a time without an offset (Tasmota's
    local ``Time``) cannot be placed, so the reading is stamped on arrival."""

    pointer: Pointer
    format: TimeFormat = "auto"


class UnitFrom(_Model):
    """The unit named by another field of the payload (Tasmota's ``TempUnit``)."""

    pointer: Pointer
    values: dict[str, str] = Field(description="the field's value -> the unit it means")


class FieldMap(_Model):
    """One metric in a JSON payload."""

    pointer: Pointer = Field(description="JSON pointer; a level may hold * (any key)")
    metric: str
    unit: str | None = Field(default=None, description="the unit the device sends; default: "
                                                       "the metric's own")
    unit_from: UnitFrom | None = None
    exclude: tuple[Pointer, ...] = Field(default=(), description="paths the pointer's globs "
                                                                 "must not take")
    scale: float = Field(default=1.0, description="after the unit conversion: x * scale + "
                                                  "offset")
    offset: float = 0.0

    @model_validator(mode="after")
    def _known(self) -> FieldMap:
        check_metric_unit(self.metric, self.unit)
        for unit in (self.unit_from.values.values() if self.unit_from else ()):
            check_metric_unit(self.metric, unit)
        return self


class NameMap(_Model):
    """For bare-value topics (ESPHome's ``sensor/<name>/state``): which topic level names the
    sensor, and the metric each name pattern means, in order (the first match wins)."""

    level: int = Field(ge=0, description="index of the topic level under the prefix")
    names: dict[str, str] = Field(description="glob on the level (*temperature*) -> metric")

    @model_validator(mode="after")
    def _known(self) -> NameMap:
        for metric in self.names.values():
            check_metric_unit(metric, None)
        return self


class Rule(_Model):
    """Messages on ``topic`` (a filter under the device's prefix) and how to read them."""

    topic: str
    payload: Literal["json", "number"] = "json"
    when: dict[str, list[str]] = Field(default_factory=dict, description="pointer -> the "
                                       "values it must have; other messages hold no readings")
    time: TimeField | None = None
    fields: tuple[FieldMap, ...] = ()
    names: NameMap | None = None
    quiet: bool = Field(default=False, description="a message with none of the fields holds "
                                                   "no readings (Shelly's sys or wifi status), "
                                                   "rather than being refused")

    @field_validator("topic")
    @classmethod
    def _filter(cls, v: str) -> str:
        check_filter(v)
        return v

    @model_validator(mode="after")
    def _complete(self) -> Rule:
        if self.payload == "json" and not self.fields:
            raise ValueError("a json rule maps at least one field")
        if self.payload == "number" and self.names is None:
            raise ValueError("a number rule says which topic level names the metric (names)")
        return self


class DeviceSettings(_Model):
    """What the exhibitor sets on the device, as a template: ``{host}``, ``{port}``,
    ``{username}``, ``{password}``, ``{prefix}``, ``{device_id}``, ``{client_id}``."""

    kind: Literal["console", "json", "yaml", "text"]
    where: str = Field(description="where on the device this goes")
    template: str


class Profile(_Model):
    name: str
    title: str
    summary: str
    docs: str = Field(description="the vendor's documentation of its MQTT messages")
    prefix_setting: str = Field(description="the device setting that holds the prefix")
    publishes: tuple[str, ...] = Field(description="topics under the prefix it publishes "
                                                   "readings on, as the exhibitor sees them")
    rules: tuple[Rule, ...]
    ignore: tuple[str, ...] = Field(default=(), description="topic filters under the prefix "
                                                            "that carry no readings")
    settings: DeviceSettings

    @field_validator("ignore")
    @classmethod
    def _filters(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for f in v:
            check_filter(f)
        return v


class CustomField(_Model):
    metric: str
    pointer: Pointer = Field(description="JSON pointer to the value, such as /sensors/0/temp")
    unit: str | None = Field(default=None, description="the unit it comes in (°F, m, mm, "
                                                       "kW, m/s, ...); default: the metric's")
    scale: float = 1.0
    offset: float = 0.0


class CustomMapping(_Model):
    """An exhibitor's own JSON, mapped field by field."""

    topic: str = Field(default="#", description="sub-topic under the device's prefix the "
                                                "device publishes on (a filter; # for any)")
    # A tuple, not a dict: the mapping is part of the frozen, hashable registry entry.
    metrics: tuple[CustomField, ...] = Field(min_length=1, max_length=16)
    time: TimeField | None = Field(default=None, description="where the time is; default: "
                                                             "stamped on arrival")

    @field_validator("topic")
    @classmethod
    def _filter(cls, v: str) -> str:
        check_filter(v)
        if v.startswith("$share/"):
            raise ValueError("a sub-topic, not a shared subscription")
        return v

    @model_validator(mode="after")
    def _known(self) -> CustomMapping:
        seen = set()
        for f in self.metrics:
            check_metric_unit(f.metric, f.unit)
            if f.metric in seen:
                raise ValueError(f"{f.metric} is mapped twice")
            seen.add(f.metric)
        return self

    def rule(self) -> Rule:
        return Rule(topic=self.topic, time=self.time, fields=tuple(
            FieldMap(pointer=f.pointer, metric=f.metric, unit=f.unit, scale=f.scale,
                     offset=f.offset) for f in self.metrics))


def check_metric_unit(metric: str, unit: str | None) -> None:
    if metric not in UNITS:
        raise ValueError(f"{metric!r} is not a metric; use one of: {', '.join(UNITS)}")
    if unit is not None and unit not in UNITS[metric]:
        raise ValueError(f"{metric} does not come in {unit[:20]!r}; use one of: "
                         f"{', '.join(units_of(metric))}")
