"""A scenario running from a simulated start time: what its events do at each moment.

Rain and heat come and go over a ramp (a shower builds up in minutes, a heatwave over an
hour), traffic demand over a quarter of an hour; incidents, closures and power cuts switch
on and off at their times. Past the scenario's end nothing of it remains but its
consequences (water drains away, queues dissolve).
"""

from __future__ import annotations

from simulators.effects import NO_EFFECTS, Effects, TidePeak
from simulators.scenarios import (
    Accident,
    Closure,
    Demand,
    Heatwave,
    Outage,
    Rain,
    Scenario,
    TideEvent,
)
from simulators.tide import PEAK_HALF_WIDTH_MS

RAIN_RAMP_S = 600
HEAT_RAMP_S = 3600
DEMAND_RAMP_S = 900


def envelope(rel_s: float, at_s: float, duration_s: float, ramp_s: float) -> float:
    """0 outside [at, at + duration], 1 inside but for linear ramps at both ends."""
    into, left = rel_s - at_s, at_s + duration_s - rel_s
    if into < 0 or left <= 0:
        return 0.0
    ramp = min(ramp_s, duration_s / 4)
    return min(1.0, into / ramp, left / ramp) if ramp > 0 else 1.0


class Timeline:
    def __init__(self, scenario: Scenario, start_ms: int) -> None:
        self.scenario = scenario
        self.start_ms = start_ms
        self.end_ms = start_ms + round(scenario.length_s * 1000)
        self._peaks = tuple(
            TidePeak(at_ms=start_ms + round(e.at * 1000), peak_cm=e.peak_cm,
                     rise_ms=min(round(e.at * 1000), PEAK_HALF_WIDTH_MS))
            for e in scenario.events if isinstance(e, TideEvent))
        self._quiet = Effects(random_rain=scenario.random_rain, tide_peaks=self._peaks)

    @property
    def name(self) -> str:
        return self.scenario.name or "scenario"

    def running(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    def effects(self, t_ms: int) -> Effects:
        if not self.running(t_ms):
            return NO_EFFECTS
        rel = (t_ms - self.start_ms) / 1000
        rain, heat, demand, floor = 0.0, 0.0, 1.0, 0.0
        ward_rain: dict[str, float] = {}
        capacity: dict[str, float] = {}
        road_demand: dict[str, float] = {}
        road_floor: dict[str, float] = {}
        closed: set[str] = set()
        outages: set[str] = set()
        for e in self.scenario.events:
            if isinstance(e, TideEvent) or not e.at <= rel < e.end_s:
                continue
            if isinstance(e, Rain):
                mm_h = e.intensity_mm_h * envelope(rel, e.at, e.duration, RAIN_RAMP_S)
                if e.wards:
                    for w in e.wards:
                        ward_rain[w] = ward_rain.get(w, 0.0) + mm_h
                else:
                    rain += mm_h
            elif isinstance(e, Heatwave):
                heat += e.extra_c * envelope(rel, e.at, e.duration, HEAT_RAMP_S)
            elif isinstance(e, Accident):
                capacity[e.road] = min(capacity.get(e.road, 1.0), e.capacity_pct / 100)
            elif isinstance(e, Closure):
                closed.add(e.road)
            elif isinstance(e, Outage):
                outages.add(e.ward)
            elif isinstance(e, Demand):
                weight = envelope(rel, e.at, e.duration, DEMAND_RAMP_S)
                if e.factor is not None:
                    factor = 1 + (e.factor - 1) * weight
                    for r in e.roads:
                        road_demand[r] = road_demand.get(r, 1.0) * factor
                    demand *= 1.0 if e.roads else factor
                if e.level is not None:
                    level = e.level * weight
                    for r in e.roads:
                        road_floor[r] = max(road_floor.get(r, 0.0), level)
                    floor = floor if e.roads else max(floor, level)
        if not (rain or heat or ward_rain or capacity or closed or outages or road_demand
                or road_floor or floor or demand != 1.0):
            return self._quiet
        return Effects(rain_mm_h=rain, ward_rain_mm_h=ward_rain,
                       random_rain=self.scenario.random_rain, heat_c=heat,
                       tide_peaks=self._peaks, capacity=capacity, closed=frozenset(closed),
                       outages=frozenset(outages), demand=demand, demand_floor=floor,
                       road_demand=road_demand, road_floor=road_floor)
