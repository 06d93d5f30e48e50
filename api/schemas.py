"""Response models: what the displays read. Separate from the wire models in
:mod:`smartcity.models`, which describe what devices send."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.queries import Agg
from smartcity.models import Source
from smartcity.topics import Domain

Timestamp = Annotated[str, Field(description="RFC 3339, UTC, millisecond precision",
                                 examples=["2026-06-01T08:30:00.000Z"],
                                 json_schema_extra={"format": "date-time"})]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(_Out):
    """The body of a 404, 502 or 503 (a 422 lists its problems the way FastAPI does)."""

    detail: str = Field(examples=["unknown device 'flood-q9'; GET /api/v1/sensors lists the "
                                  "known devices"])


# --- health ------------------------------------------------------------------------------

class Health(_Out):
    status: Literal["ok"] = "ok"


class Check(_Out):
    ok: bool
    detail: str = Field(description="what was checked and what it answered")
    version: str | None = Field(default=None, description="server version, when known")


class Readiness(_Out):
    status: Literal["ready", "unavailable"]
    detail: str = Field(description="'ready', or what is down")
    checks: dict[str, Check] = Field(description="one entry per dependency: mqtt, influxdb; "
                                                 "and city under `smartcity up`: whether every "
                                                 "process runs or some keep failing")


# --- sensors -----------------------------------------------------------------------------

class SensorStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class Location(_Out):
    lat: float = Field(ge=-90, le=90, examples=[10.8030])
    lon: float = Field(ge=-180, le=180, examples=[106.7335])


class Sensor(_Out):
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


class MetricValue(_Out):
    value: float
    unit: str = Field(examples=["cm"])
    time: Timestamp


class Latest(_Out):
    """The most recent value of each metric, each with its own time: devices may send
    different metrics in different messages. A device with no readings in 30 days gets an
    empty ``values`` (not a 404: the device exists, it is just quiet)."""

    device_id: str
    domain: Domain
    last_seen: Timestamp | None
    source: Source | None
    values: dict[str, MetricValue] = Field(description="metric -> last value")


class Point(_Out):
    t: Timestamp = Field(description="start of the bucket")
    value: float = Field(description="rounded to 3 decimals")


class History(_Out):
    """A metric aggregated in time buckets over [start, end); empty buckets are left out."""

    device_id: str
    metric: str
    unit: str
    agg: Agg
    every: str = Field(description="bucket width", examples=["15s"])
    start: Timestamp
    end: Timestamp = Field(description="exclusive")
    points: list[Point]


# --- city summary ------------------------------------------------------------------------

class Extreme(_Out):
    """The device holding a domain's extreme value, with what a display needs to name it."""

    device_id: str
    site: str
    name: str
    name_en: str | None
    value: float


class DomainCount(_Out):
    devices_total: int = Field(description="devices of this domain in the registry")
    devices_reporting: int = Field(description="devices with a reading within the window")


class HomeSummary(DomainCount):
    total_power_w: float | None = Field(description="sum of the homes' last power_w")
    mean_temperature_c: float | None = Field(description="mean of the homes' last temperature_c")
    max_pm25_ugm3: Extreme | None = Field(description="the home with the worst indoor PM2.5")


class TrafficSummary(DomainCount):
    mean_speed_kmh: float | None = Field(description="mean of the segments' last speed_kmh")
    slowest: Extreme | None = Field(description="the segment with the lowest speed_kmh")
    congested_below_kmh: float = Field(description="threshold for a congested segment")
    congested: list[str] = Field(description="ids of segments slower than the threshold, "
                                             "slowest first")
    congested_count: int


class FloodWarning(_Out):
    device_id: str
    site: str
    name: str
    name_en: str | None
    water_level_cm: float
    warning_cm: float = Field(description="the site's warning depth")


class FloodSummary(DomainCount):
    max_water_level_cm: Extreme | None = Field(description="the deepest flooded site")
    at_warning: list[FloodWarning] = Field(description="sites at or above their warning depth, "
                                                       "deepest first")
    at_warning_count: int


class WeatherSummary(DomainCount):
    max_rain_mm_h: Extreme | None = Field(description="the gauge with the heaviest rain")
    mean_temperature_c: float | None


class CitySummary(_Out):
    """One figure set per domain from each device's last values within ``window``.
    A figure is null when no device of the domain reported it; sums and means are rounded
    to 3 decimals."""

    generated_at: Timestamp
    window: str = Field(description="how far back a device's last values count",
                        examples=["15m"])
    home: HomeSummary
    traffic: TrafficSummary
    flood: FloodSummary
    weather: WeatherSummary


# --- city map (the kiosk board) ----------------------------------------------------------

class Bounds(_Out):
    """The box the board draws: every place of the city, with a margin."""

    south: float
    west: float
    north: float
    east: float


class MapWard(_Out):
    id: str
    name: str
    name_en: str | None
    centre: Location | None = Field(description="mean position of the ward's places; null "
                                                "for a ward without any (the board then "
                                                "draws no region for it)")
    places: int = Field(description="how many places of the city file lie in the ward")


class MapPlace(_Out):
    id: str
    device_id: str
    domain: Domain
    name: str = Field(description="display name (Vietnamese)")
    name_en: str | None
    ward: str
    location: Location
    copy_of: str | None = Field(description="in a scaled city (SMARTCITY_SCALE), the place of "
                                            "the city file this one copies; null for it")
    copy_index: int = Field(description="0 for a place of the city file, k for its k-th copy")


class MapRoad(MapPlace):
    connects: list[str] = Field(description="ids of the adjoining segments")
    lanes: int
    free_flow_kmh: float
    length_m: float
    lines: list[list[Location]] = Field(
        description="what to draw, each line from the segment's detector halfway towards an "
                    "adjoining segment; a segment with one neighbour also reaches as far the "
                    "other way, one with none is drawn along its length")


class MapFloodSite(MapPlace):
    warning_cm: float = Field(description="depth at which the streets are unsafe")
    levels: dict[str, float] = Field(
        description="the flood rule's levels at this site, mildest first (watch, warning, "
                    "danger: the depths at which the rules service raises each)",
        examples=[{"watch": 10, "warning": 15, "danger": 40}])
    roads: list[str] = Field(description="road segments it floods")


class CityMap(_Out):
    """What the kiosk board draws: wards, roads, flood sites, homes and gauges, in lat/lon."""

    name: str
    name_en: str | None
    scale: int = Field(description="copies of every place (SMARTCITY_SCALE); copies share the "
                                   "original's position")
    bounds: Bounds
    wards: list[MapWard]
    roads: list[MapRoad]
    flood_sites: list[MapFloodSite]
    homes: list[MapPlace]
    rain_gauges: list[MapPlace]
    tide_gauges: list[MapPlace]
