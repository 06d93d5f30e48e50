"""What the simulated city is at one moment: the weather, the river, the water on the
streets, the roads. The world model produces it (:mod:`simulators.world`); every sensor reads
it. Plain values, so the models and the sensors both depend on this module and not on each
other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Weather:
    rain_mm_h: float  # the city's mean
    ward_rain_mm_h: Mapping[str, float]
    temperature_c: float
    humidity_pct: float
    wind_kmh: float

    def rain_in(self, ward: str) -> float:
        return self.ward_rain_mm_h.get(ward, self.rain_mm_h)


@dataclass(slots=True)
class RoadState:
    speed_kmh: float = 0.0
    occupancy_pct: float = 0.0
    flow_veh_h: float = 0.0
    queue_veh: float = 0.0
    fill: float = 0.0  # queue / what the segment holds


@dataclass(frozen=True, slots=True)
class WorldState:
    now_ms: int
    dt_s: float  # simulated seconds since the previous step; 0 on the first
    hour: float  # local time of day in HCMC, 0 <= hour < 24
    weather: Weather
    river_cm: float
    depth_cm: Mapping[str, float]  # flood site -> water on the street
    ward_water_cm: Mapping[str, float]  # ward -> deepest water at its flood sites
    roads: Mapping[str, RoadState]
    outages: frozenset[str]  # wards without power
