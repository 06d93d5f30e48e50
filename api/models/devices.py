"""Exhibitors' devices: the registration request and what the api answers."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from api.models.base import ApiModel, Timestamp
from api.models.sensors import Location, SensorStatus
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


class DeviceTopics(ApiModel):
    telemetry: str = Field(description="JSON or SenML readings")
    single_value: str = Field(description="one bare number per metric: replace {metric}")
    status: str = Field(description="retained online/offline, also the last will")
    errors: str = Field(description="subscribe here: why a message was rejected")


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


class Registration(ApiModel):
    device: Device
    credentials: Credentials | None = Field(description="null when the broker takes anonymous "
                                                        "devices (development)")
    topics: DeviceTopics
    example: PayloadExample
    note: str


class Rotation(ApiModel):
    device_id: str
    credentials: Credentials
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
