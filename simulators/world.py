"""The city's physical state, advanced in time: weather, river, street water, traffic.

The models are coupled in one direction per step, in this order: the weather (with the
scenario's rain and heat) and the tide fill the flood sites; water on a road and the
scenario's incidents cut its capacity; queues spill to connected roads. Sensors then read
the state (:class:`WorldState`) with their own noise.

A step is split into substeps of at most :data:`MAX_SUBSTEP_S`, so a 10-minute step and
300 two-second steps tell the same story, and a scenario event starting inside a step takes
effect at its own time, not at the step's end.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

from simulators.base import local_hour
from simulators.effects import Effects
from simulators.flood import FloodModel
from simulators.state import WorldState
from simulators.tide import Tide
from simulators.traffic import TrafficModel
from simulators.weather import CityWeather
from smartcity.city import City

MAX_SUBSTEP_S = 30.0


class World:
    def __init__(self, city: City, seed: int) -> None:
        self._weather = CityWeather(seed, [w.id for w in city.wards])
        self._tide = Tide(city.tide_gauges[0] if city.tide_gauges else None)
        self._flood = FloodModel(city.flood_sites)
        self._traffic = TrafficModel(city, seed)
        self._road_sites: dict[str, list[str]] = defaultdict(list)
        self._ward_sites: dict[str, list[str]] = defaultdict(list)
        for site in city.flood_sites:
            self._ward_sites[site.ward].append(site.id)
            for road in site.roads:
                self._road_sites[road].append(site.id)
        self._last_ms: int | None = None

    def advance(self, now_ms: int, effects_at: Callable[[int], Effects]) -> WorldState:
        """Advance to ``now_ms``; ``effects_at(t)`` is what the scenario does at time ``t``."""
        if self._last_ms is not None and now_ms < self._last_ms:
            raise ValueError(f"simulated time went backwards: {now_ms} < {self._last_ms}")
        last = now_ms if self._last_ms is None else self._last_ms
        total_s = (now_ms - last) / 1000
        n = max(1, math.ceil(total_s / MAX_SUBSTEP_S))
        depth = self._flood.depth_cm
        previous = last
        for k in range(1, n + 1):
            t = last + (now_ms - last) * k // n
            dt_s = (t - previous) / 1000
            previous = t
            effects = effects_at(t)
            hour = local_hour(t)
            weather = self._weather.advance(t, hour, dt_s, effects)
            river = self._tide.level(t, effects.tide_peaks)
            self._flood.advance(dt_s, river, weather)
            water = {road: max(depth[s] for s in sites) for road, sites in self._road_sites.items()}
            self._traffic.advance(dt_s, hour, weather, water, effects)
        self._last_ms = now_ms
        ward_water = {ward: max(depth[s] for s in sites)
                      for ward, sites in self._ward_sites.items()}
        return WorldState(now_ms=now_ms, dt_s=total_s, hour=hour, weather=weather, river_cm=river,
                          depth_cm=dict(depth), ward_water_cm=ward_water,
                          roads=self._traffic.roads, outages=effects.outages)
