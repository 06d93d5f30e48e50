"""What a scenario does to the city at one moment, as the physics sees it.

A running scenario's timeline (:mod:`simulators.timeline`) turns its events into these plain
values; the world models (:mod:`simulators.world`) read them and never the scenario itself.
Places are named by their city-file ids, so a scaled city's copies share their original's
fate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TidePeak:
    """A high water forced to ``peak_cm`` at ``at_ms`` (a king tide, a storm surge); the river
    turns towards it from ``rise_ms`` before (when the scenario started, at most 6 h)."""

    at_ms: int
    peak_cm: float
    rise_ms: int


@dataclass(frozen=True, slots=True)
class Effects:
    rain_mm_h: float = 0.0  # added over the whole city
    ward_rain_mm_h: Mapping[str, float] = field(default_factory=dict)  # added in those wards
    random_rain: bool = True  # the weather's own showers
    heat_c: float = 0.0  # added to the air temperature at the hottest hour
    tide_peaks: tuple[TidePeak, ...] = ()
    capacity: Mapping[str, float] = field(default_factory=dict)  # road -> share left open
    closed: frozenset[str] = frozenset()  # roads
    outages: frozenset[str] = frozenset()  # wards
    demand: float = 1.0  # traffic demand factor, every road
    demand_floor: float = 0.0  # demand at least this share of capacity, every road
    road_demand: Mapping[str, float] = field(default_factory=dict)  # road -> factor
    road_floor: Mapping[str, float] = field(default_factory=dict)  # road -> floor


NO_EFFECTS = Effects()
