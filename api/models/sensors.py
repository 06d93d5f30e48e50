"""The city's devices and their readings."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from api.models.base import ApiModel, Timestamp
from api.queries import Agg
from smartcity.models import Source
from smartcity.topics import Domain


class SensorStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class Location(ApiModel):
    lat: float = Field(ge=-90, le=90, examples=[10.8030])
    lon: float = Field(ge=-180, le=180, examples=[106.7335])


class Sensor(ApiModel):
    """A device of the city and what is known about it now."""

    device_id: str = Field(examples=["flood-thao-dien"])
    domain: Domain
    name: str = Field(description="display name (Vietnamese)",
                      examples=["Điểm ngập Thảo Điền (Quốc Hương)"])
    name_en: str | None = Field(description="English display name, if any")
    ward: str = Field(description="ward id")
    site: str = Field(description="id of the place the device sits at")
    location: Location
    metrics: list[str] = Field(description="what the device measures (an exhibitor's device: what "
                                           "it declared; a city device: its domain's metrics); "
                                           "valid values of history's metric")
    status: SensorStatus = Field(description="from the device's retained MQTT status; unknown "
                                             "if it never published one")
    status_since: Timestamp | None = Field(description="ts of that status message, if it had one")
    last_seen: Timestamp | None = Field(description="time of its last stored reading within "
                                                    "30 days; null if none")
    source: Source | None = Field(description="source tag of that last reading")


class MetricValue(ApiModel):
    value: float
    unit: str = Field(examples=["cm"])
    time: Timestamp


class Latest(ApiModel):
    """The most recent value of each metric, each with its own time: devices may send
    different metrics in different messages. A device with no readings in 30 days gets an
    empty ``values`` (not a 404: the device exists, it is just quiet)."""

    device_id: str
    domain: Domain
    last_seen: Timestamp | None
    source: Source | None
    values: dict[str, MetricValue] = Field(description="metric -> last value")


class Point(ApiModel):
    t: Timestamp = Field(description="start of the bucket")
    value: float = Field(description="rounded to 3 decimals")


class History(ApiModel):
    """A metric aggregated in time buckets over [start, end); empty buckets are left out."""

    device_id: str
    metric: str
    unit: str
    agg: Agg
    every: str = Field(description="bucket width", examples=["15s"])
    start: Timestamp
    end: Timestamp = Field(description="exclusive")
    points: list[Point]
