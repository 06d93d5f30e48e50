"""Exhibitors' devices: the registration request and what the api answers."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from api.models.base import ApiModel, Timestamp
from api.models.sensors import Location, SensorStatus
from smartcity.formats import format_names
from smartcity.formats.profile import CustomMapping
from smartcity.ids import Id
from smartcity.models import Source
from smartcity.topics import Domain

MAX_NAME = 80


DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=MAX_NAME)]


class DeviceRequest(ApiModel):
    """What an exhibitor tells the exhibit about a device."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{
        "name": "Cảm biến ngập gian hàng A3", "name_en": "Booth A3 flood sensor",
        "domain": "flood", "location": {"lat": 10.7769, "lon": 106.7009},
        "metrics": ["water_level_cm", "battery_pct"]}]})

    name: DisplayName = Field(description="display name, free UTF-8 (Vietnamese welcome)")
    name_en: DisplayName | None = Field(default=None, description="English display name")
    domain: Domain
    location: Location
    metrics: list[str] = Field(min_length=1, max_length=16,
                               description="the metrics the device will send, named with "
                                           "their unit (GET /api/v1/metrics lists them)")
    ward: Id | None = Field(default=None, description="the city ward it stands in; default: the "
                                                      "ward of the nearest city device")
    device_id: Id | None = Field(default=None, description="a wished-for id; default: made "
                                                           "from the name")
    format: str = Field(default="json", description="how the device speaks: json, senml, "
                                                    "value, tasmota, shelly, zigbee2mqtt, "
                                                    "esphome or custom (GET /api/v1/formats "
                                                    "lists them)")
    mapping: CustomMapping | None = Field(default=None, description="for the custom format: "
                                                                    "where each metric is")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v not in format_names():
            raise ValueError(f"{v[:40]!r} is not a format; use one of "
                             f"{', '.join(format_names())}")
        return v

    @field_validator("name", "name_en")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and any(unicodedata.category(c).startswith("C") for c in v):
            raise ValueError("must not contain control characters")
        return v

    @field_validator("metrics")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        seen = [m for i, m in enumerate(v) if m in v[:i]]
        if seen:
            raise ValueError(f"{seen[0]!r} is listed twice")
        return v


class Credentials(ApiModel):
    username: str = Field(description="issued by the exhibit; the device logs in with it")
    password: str = Field(description="shown once: the exhibit keeps only its hash")
    broker: str = Field(description="where the device connects", examples=["mqtt://exhibit:1883"])
    client_id: str = Field(description="the MQTT client id the device must connect with: the "
                                       "broker refuses this account under any other")


class DeviceTopics(ApiModel):
    telemetry: str = Field(description="JSON or SenML readings")
    single_value: str = Field(description="one bare number per metric: replace {metric}")
    status: str = Field(description="retained online/offline, also the last will")
    errors: str = Field(description="subscribe here: why a message was rejected")
    native: list[str] = Field(default_factory=list, description="vendor formats: the topics "
                                                                "under the device's own "
                                                                "prefix it publishes on")


class PayloadExample(ApiModel):
    topic: str
    payload: dict[str, Any] = Field(description="our JSON format")
    senml: list[dict[str, Any]] = Field(description="the same reading as SenML (RFC 8428)")
    single_value_topic: str
    single_value_payload: str
    mosquitto_pub: str = Field(description="a command line that sends the example")


class Device(ApiModel):
    """An exhibitor's device as the exhibit knows it."""

    device_id: str
    domain: Domain
    name: str
    name_en: str | None
    ward: str
    location: Location
    metrics: list[str]
    source: Source
    format: str = "json"
    mapping: CustomMapping | None = None


class DeviceSettings(ApiModel):
    """What to set on a device, ready to paste (:mod:`api.device_settings` fills it)."""

    format: str
    title: str
    where: str = Field(description="where on the device the text goes")
    kind: str = Field(description="console, json, yaml or text")
    text: str = Field(description="paste this; it holds the password when one was issued")
    publishes_on: list[str] = Field(description="the topics the device will publish on")
    prefix: str | None = Field(description="the device's own prefix (vendor formats)")
    qr_svg: str = Field(description="the text as a QR code, an SVG image")


class Registration(ApiModel):
    device: Device
    credentials: Credentials | None = Field(description="null when the broker takes anonymous "
                                                        "devices (development)")
    topics: DeviceTopics
    example: PayloadExample
    settings: DeviceSettings = Field(description="what to set on the device, ready to paste, "
                                                 "and its QR code")
    note: str


class Rotation(ApiModel):
    device_id: str
    credentials: Credentials
    settings: DeviceSettings | None = Field(default=None, description="the device's settings "
                                                                      "with the new password")
    note: str


class Rejected(ApiModel):
    time: Timestamp
    reason: str
    reason_code: int | None = Field(description="the MQTT 5 reason code of the rejection")
    topic: str
    problems: str
    payload: str = Field(description="the start of the payload, escaped")
    suppressed: int = Field(description="rejections not reported before this one (rate limit)")


class MessageCounts(ApiModel):
    stored: int = Field(description="points stored (counted on the device's most frequent "
                                    "metric)")
    rejected: int = Field(description="messages rejected, including rate-limited reports")


class DeviceReport(ApiModel):
    """What an exhibitor looks at when the device "doesn't show up"."""

    device: Device
    status: SensorStatus
    status_since: Timestamp | None
    last_seen: Timestamp | None = Field(description="time of its last stored reading")
    last_rejected_at: Timestamp | None
    messages: MessageCounts
    last_rejected: list[Rejected] = Field(description="newest first")
    topics: DeviceTopics
    hints: list[str] = Field(description="what to check next, in plain words")
