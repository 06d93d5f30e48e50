"""Traffic: a detector on each road segment, mostly counting motorbikes.

Demand follows the working day: a morning rush around 7-9, a longer evening one from 16:30 to
19, quiet small hours. Speed falls with the square of demand, and rain slows everyone down.
"""

from __future__ import annotations

import random

from simulators.base import Conditions, Plugin, Wander, clamp, daily
from smartcity.city import Road
from smartcity.models import Source, TrafficTelemetry
from smartcity.topics import Domain

# Share of a segment's capacity in use, by local time of day.
DEMAND = ((0, 0.10), (4, 0.05), (5.5, 0.25), (6.5, 0.7), (7.5, 1.0), (8.5, 0.95), (9.5, 0.6),
          (11.5, 0.6), (12.5, 0.5), (14, 0.55), (16, 0.7), (16.5, 0.85), (17.5, 1.0),
          (18.5, 1.0), (19, 0.85), (20, 0.6), (22, 0.4), (24, 0.10))
# Vehicles per lane and hour at capacity; motorbikes ride several abreast in one lane.
LANE_CAPACITY_VEH_H = 2400


def demand(hour: float) -> float:
    return daily(DEMAND, hour)


class RoadSensor:
    def __init__(self, place: Road, rng: random.Random) -> None:
        self._free_flow_kmh = place.free_flow_kmh
        self._lanes = place.lanes
        # Each segment has its own character (a school, a market) and its own moods.
        self._busyness = rng.uniform(0.85, 1.1)
        self._mood = Wander(rng, sd=0.06, tau_s=600)
        self._noise = rng

    def read(self, now: Conditions, ts_ms: int, seq: int) -> TrafficTelemetry:
        mood = self._mood.step(now.dt_s)
        load = clamp(demand(now.hour) * self._busyness * (1 + mood), 0.02, 1.05)
        rain_slowdown = 1 - min(0.3, now.rain_mm_h / 100)
        speed = self._free_flow_kmh * (1 - 0.75 * load**2) * rain_slowdown
        speed *= 1 + self._noise.gauss(0, 0.03)
        occupancy = 3 + 70 * load**2 + self._noise.gauss(0, 1)
        flow = self._lanes * LANE_CAPACITY_VEH_H * load * (1 + self._noise.gauss(0, 0.03))
        return TrafficTelemetry(
            ts=ts_ms, seq=seq, source=Source.SIMULATED,
            speed_kmh=round(clamp(speed, 2, self._free_flow_kmh * 1.2), 1),
            occupancy_pct=round(clamp(occupancy, 0, 100), 1),
            flow_veh_h=float(round(clamp(flow, 0, 50_000))),
        )


PLUGIN: Plugin[Road] = Plugin(Domain.TRAFFIC, lambda city: city.roads, RoadSensor)
