"""Registering an exhibitor's device: the request, the answer, and the pure rules between them.

An exhibitor gives a display name, a domain, a location and the metrics the device will send;
the api issues the device id, the MQTT account, the topics and a payload ready to paste. No I/O
here: the route does the broker calls (:mod:`api.accounts`) and the publishing.
"""

from __future__ import annotations

import math
import re
import secrets
import shlex
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.device_settings import DeviceSettings
from api.schemas import Location, SensorStatus, Timestamp
from smartcity.errors import Reason
from smartcity.formats import CUSTOM, format_names, is_native
from smartcity.formats.mapping import topics_to_use
from smartcity.formats.profile import CustomMapping
from smartcity.ids import Id
from smartcity.models import TELEMETRY_MODELS, Source, format_ts
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain, errors_topic, status_topic, telemetry_topic

MAX_NAME = 80
SLUG_MAX = 40

DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=MAX_NAME)]

# A plausible value per metric, for the ready-to-paste payload an exhibitor gets back.
EXAMPLE_VALUES: dict[str, float] = {
    "power_w": 850.0, "temperature_c": 29.5, "humidity_pct": 72.0, "pm25_ugm3": 24.0,
    "co2_ppm": 620.0, "speed_kmh": 31.0, "occupancy_pct": 38.0, "flow_veh_h": 1400.0,
    "water_level_cm": 12.5, "river_level_cm": 135.0, "rain_mm_h": 8.0, "wind_kmh": 14.0,
    "battery_pct": 92.0,
}


def metrics_of(domain: Domain) -> tuple[str, ...]:
    return TELEMETRY_MODELS[domain].metric_names()


class DeviceRequest(BaseModel):
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
                                           "their unit (GET /api/v1/formats lists them)")
    ward: Id | None = Field(default=None, description="the city ward it stands in; default: the "
                                                      "ward of the nearest city device")
    device_id: Id | None = Field(default=None, description="a wished-for id; default: made "
                                                           "from the name")
    format: str = Field(default="json", description="how the device speaks: json, senml, "
                                                    "value, tasmota, shelly, zigbee2mqtt, "
                                                    "esphome or custom (GET "
                                                    "/api/v1/devices/formats lists them)")
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


class RegistrationProblem(ValueError):
    """A request that names something the city does not have; ``field`` is where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def slug(name: str) -> str:
    """An id-shaped slug of a display name: ``Cảm biến ngập Q.7`` -> ``cam-bien-ngap-q-7``."""
    text = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:SLUG_MAX].rstrip("-") or "device"


def new_device_id(name: str, taken: Iterable[str] | Registry) -> str:
    """The name's slug and a short random suffix, unused so far."""
    base = slug(name)
    while True:
        candidate = f"{base}-{secrets.token_hex(2)}"
        if candidate not in taken:
            return candidate


def nearest_ward(registry: Registry, lat: float, lon: float) -> str | None:
    """The ward of the city device nearest to (lat, lon); None in a city with no devices."""
    best: tuple[float, str] | None = None
    k = math.cos(math.radians(lat))
    for d in registry:
        if d.source is Source.LIVE:
            continue
        dist = (d.lat - lat) ** 2 + ((d.lon - lon) * k) ** 2
        if best is None or dist < best[0]:
            best = (dist, d.ward)
    return best[1] if best else None


def build_device(request: DeviceRequest, registry: Registry, wards: Iterable[str]) -> DeviceInfo:
    """The registry entry for a request; :class:`RegistrationProblem` names the field at fault."""
    known = metrics_of(request.domain)
    for i, m in enumerate(request.metrics):
        if m not in known:
            raise RegistrationProblem(f"metrics.{i}", f"{m!r} is not a {request.domain.value} "
                                                      f"metric; use one of {', '.join(known)}")
    ward_ids = set(wards)
    if request.ward is not None and request.ward not in ward_ids:
        raise RegistrationProblem("ward", f"unknown ward {request.ward!r}; the city has "
                                          f"{', '.join(sorted(ward_ids))}")
    if (request.format == CUSTOM) != (request.mapping is not None):
        raise RegistrationProblem("mapping", "the custom format needs a mapping, and only it "
                                             "takes one")
    for i, f in enumerate(request.mapping.metrics if request.mapping else ()):
        if f.metric not in request.metrics:
            raise RegistrationProblem(f"mapping.metrics.{i}", f"{f.metric} is mapped but not "
                                                              "among the device's metrics")
    device_id = request.device_id or new_device_id(request.name, registry)
    ward = request.ward or nearest_ward(registry, request.location.lat, request.location.lon)
    if ward is None:
        raise RegistrationProblem("ward", "the city has no devices to place this one by; "
                                          "give its ward")
    return DeviceInfo(device_id=device_id, domain=request.domain, name=request.name,
                      name_en=request.name_en, ward=ward, site=device_id,
                      lat=request.location.lat, lon=request.location.lon, source=Source.LIVE,
                      metrics=tuple(request.metrics), format=request.format,
                      mapping=request.mapping)


# --- the answer --------------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Credentials(_Out):
    username: str = Field(description="issued by the exhibit; the device logs in with it")
    password: str = Field(description="shown once: the exhibit keeps only its hash")
    broker: str = Field(description="where the device connects", examples=["mqtt://exhibit:1883"])


class DeviceTopics(_Out):
    telemetry: str = Field(description="JSON or SenML readings")
    single_value: str = Field(description="one bare number per metric: replace {metric}")
    status: str = Field(description="retained online/offline, also the last will")
    errors: str = Field(description="subscribe here: why a message was rejected")
    native: list[str] = Field(default_factory=list, description="vendor formats: the topics "
                                                                "under the device's own "
                                                                "prefix it publishes on")


class PayloadExample(_Out):
    topic: str
    payload: dict[str, Any] = Field(description="our JSON format")
    senml: list[dict[str, Any]] = Field(description="the same reading as SenML (RFC 8428)")
    single_value_topic: str
    single_value_payload: str
    mosquitto_pub: str = Field(description="a command line that sends the example")


class Device(_Out):
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


class Registration(_Out):
    device: Device
    credentials: Credentials | None = Field(description="null when the broker takes anonymous "
                                                        "devices (development)")
    topics: DeviceTopics
    example: PayloadExample
    settings: DeviceSettings = Field(description="what to set on the device, ready to paste, "
                                                 "and its QR code")
    note: str


class Rotation(_Out):
    device_id: str
    credentials: Credentials
    settings: DeviceSettings | None = Field(default=None, description="the device's settings "
                                                                      "with the new password")
    note: str


class Rejected(_Out):
    time: Timestamp
    reason: str
    reason_code: int | None = Field(description="the MQTT 5 reason code of the rejection")
    topic: str
    problems: str
    payload: str = Field(description="the start of the payload, escaped")
    suppressed: int = Field(description="rejections not reported before this one (rate limit)")


class MessageCounts(_Out):
    stored: int = Field(description="points stored (counted on the device's most frequent "
                                    "metric)")
    rejected: int = Field(description="messages rejected, including rate-limited reports")


class DeviceReport(_Out):
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


def device_out(d: DeviceInfo) -> Device:
    return Device(device_id=d.device_id, domain=d.domain, name=d.name, name_en=d.name_en,
                  ward=d.ward, location=Location(lat=d.lat, lon=d.lon),
                  metrics=list(d.metrics or metrics_of(d.domain)), source=d.source,
                  format=d.format, mapping=d.mapping)


def topics_of(d: DeviceInfo, root: str) -> DeviceTopics:
    telemetry = str(telemetry_topic(d.domain, d.device_id, root))
    return DeviceTopics(telemetry=telemetry, single_value=telemetry + "/{metric}",
                        status=str(status_topic(d.domain, d.device_id, root)),
                        errors=str(errors_topic(d.device_id, root)),
                        native=topics_to_use(d, root))


def example_of(d: DeviceInfo, root: str, now_ms: int,
               credentials: Credentials | None, broker: str) -> PayloadExample:
    metrics = list(d.metrics or metrics_of(d.domain))
    values = {m: EXAMPLE_VALUES.get(m, 1.0) for m in metrics}
    payload: dict[str, Any] = {"ts": format_ts(now_ms), "seq": 1, **values}
    senml: list[dict[str, Any]] = [{"bn": f"{d.device_id}:", "bt": now_ms / 1000,
                                    "n": metrics[0], "v": values[metrics[0]]}]
    senml += [{"n": m, "v": values[m]} for m in metrics[1:]]
    topics = topics_of(d, root)
    host, _, port = broker.removeprefix("mqtt://").rpartition(":")
    command = ["mosquitto_pub", "-V", "mqttv5", "-h", host or "127.0.0.1", "-p", port or "1883"]
    if credentials is not None:
        command += ["-u", credentials.username, "-P", credentials.password]
    command += ["-q", "1", "-t", topics.telemetry, "-m", orjson.dumps(payload).decode()]
    return PayloadExample(
        topic=topics.telemetry, payload=payload, senml=senml,
        single_value_topic=topics.single_value.replace("{metric}", metrics[0]),
        single_value_payload=f"{values[metrics[0]]:g}",
        mosquitto_pub=shlex.join(command))


def hints(report_seen: str | None, rejected: int, last_rejected_at: str | None,
          status: SensorStatus, device: DeviceInfo | None = None, root: str = "city",
          last: Rejected | None = None) -> list[str]:
    """Plain-words next steps for an exhibitor, from what the exhibit has seen of the device."""
    out = []
    if report_seen is None and rejected == 0:
        where = "its telemetry topic"
        if device is not None:
            where = ", ".join(topics_to_use(device, root)) if is_native(device.format) else \
                str(telemetry_topic(device.domain, device.device_id, root))
        out.append("Nothing received yet: check the broker address, the username and password, "
                   f"and that the device publishes on {where}.")
    if device is not None and (report_seen is None or rejected):
        metrics = ", ".join(device.metrics or metrics_of(device.domain))
        out.append(f"This device stores {metrics}; other fields are left out.")
    if rejected and (report_seen is None or (last_rejected_at or "") > report_seen):
        out.append("Its latest messages were rejected: see last_rejected for the reason, or "
                   "subscribe to the errors topic to see each one as it happens.")
        if last is not None and last.reason in (Reason.BROKER_REFUSED, Reason.NATIVE_TOPIC):
            out.append(f"It published on {last.topic}, a topic it may not use: "
                       f"{last.problems.removeprefix('topic: ')}")
    if status is SensorStatus.OFFLINE:
        out.append("The device said it is offline (its status or last will).")
    if not out:
        out.append("Readings are arriving and stored.")
    return out


# The newest rejection first; the api keeps no copy, InfluxDB is the record.
REJECTIONS_MEASUREMENT = "device_rejections"


def utc(ms: int | None) -> str | None:
    return format_ts(ms) if ms is not None else None
