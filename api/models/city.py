"""Figures for the whole city, and its map for the kiosk board."""

from __future__ import annotations

from pydantic import Field

from api.models.base import ApiModel, Timestamp
from api.models.sensors import Location
from smartcity.topics import Domain


class Extreme(ApiModel):
    """The device holding a domain's extreme value, with what a display needs to name it."""

    device_id: str
    site: str
    name: str
    name_en: str | None
    value: float


class DomainCount(ApiModel):
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


class FloodWarning(ApiModel):
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


class CitySummary(ApiModel):
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


class Bounds(ApiModel):
    """The box the board draws: every place of the city, with a margin."""

    south: float
    west: float
    north: float
    east: float


class MapWard(ApiModel):
    id: str
    name: str
    name_en: str | None
    centre: Location | None = Field(description="mean position of the ward's places; null "
                                                "for a ward without any (the board then "
                                                "draws no region for it)")
    places: int = Field(description="how many places of the city file lie in the ward")


class MapPlace(ApiModel):
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


class CityMap(ApiModel):
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
