"""Traffic: a network of road segments with queues, and the detector on each segment.

Demand follows the working day, motorbikes first: a morning rush around 7-9, a longer evening
one from 16:30 to 19, quiet small hours. Each segment has a capacity (lanes, cut by rain,
water on the road, an accident, dark traffic lights in a power cut). Below capacity, speed
follows the uncongested branch of a Greenshields fundamental diagram; when demand exceeds
capacity a queue builds, speed falls with how full the segment is, and a full segment blocks
the connected ones (spillback): they lose the share of their capacity bound for it, and
queue in turn. Some drivers avoid a full segment; a closed one sends part of its traffic to
its neighbours.

Water on a segment (from the flood sites that list it): from ~10 cm motorbikes slow down and
keep to the crown of the road, at 30 cm and more it is nearly impassable.
"""

from __future__ import annotations

import math
import random

from simulators.base import Metrics, Plugin, Wander, clamp, daily, rng_for
from simulators.effects import Effects
from simulators.state import RoadState, Weather, WorldState
from smartcity.city import City, Road
from smartcity.topics import Domain

# Share of a segment's capacity in demand, by local time of day.
DEMAND = ((0, 0.10), (4, 0.05), (5.5, 0.25), (6.5, 0.7), (7.5, 1.0), (8.5, 0.95), (9.5, 0.6),
          (11.5, 0.6), (12.5, 0.5), (14, 0.55), (16, 0.7), (16.5, 0.85), (17.5, 1.0),
          (18.5, 1.0), (19, 0.85), (20, 0.6), (22, 0.4), (24, 0.10))
# Vehicles per lane and hour at capacity; motorbikes ride several abreast in one lane.
LANE_CAPACITY_VEH_H = 2400
JAM_VEH_PER_LANE_KM = 300  # a queue of motorbikes, bumper to bumper
SPILLBACK = 0.6  # capacity a segment loses when every connected segment's queue is full
AVOIDANCE = 0.4  # share of demand that keeps away from a full segment
DIVERTED = 0.6  # share of a closed segment's traffic that tries the connected ones
OUTAGE_CAPACITY = 0.75  # junctions without traffic lights


def demand(hour: float) -> float:
    return daily(DEMAND, hour)


def spill(fill: float) -> float:
    """How much a segment this full blocks the ones feeding it: not at all until half full."""
    return clamp((fill - 0.5) / 0.5, 0, 1)


def flood_capacity(depth_cm: float) -> float:
    if depth_cm <= 10:
        return 1.0
    if depth_cm <= 30:
        return 1 - 0.8 * (depth_cm - 10) / 20
    return max(0.05, 0.2 - 0.15 * (depth_cm - 30) / 20)


def flood_speed(depth_cm: float) -> float:
    if depth_cm <= 5:
        return 1.0
    if depth_cm <= 10:
        return 1 - 0.2 * (depth_cm - 5) / 5
    if depth_cm <= 30:
        return 0.8 - 0.6 * (depth_cm - 10) / 20
    return max(0.08, 0.2 - 0.1 * (depth_cm - 30) / 20)


class _Segment:
    def __init__(self, road: Road, original: str, seed: int) -> None:
        rng = rng_for(seed, f"world:road:{road.id}")
        self.road = road
        self.original = original
        self.capacity = road.lanes * LANE_CAPACITY_VEH_H
        self.storage = road.length_m / 1000 * road.lanes * JAM_VEH_PER_LANE_KM
        # Each segment has its own character (a school, a market) and its own moods.
        self.busyness = rng.uniform(0.85, 1.1)
        self.mood = Wander(rng, sd=0.06, tau_s=600)
        self.neighbours: list[int] = []
        self.state = RoadState(speed_kmh=road.free_flow_kmh)


class TrafficModel:
    def __init__(self, city: City, seed: int) -> None:
        self._segments = [_Segment(r, city.original(r.id), seed) for r in city.roads]
        index = {s.road.id: i for i, s in enumerate(self._segments)}
        for i, s in enumerate(self._segments):
            for other in s.road.connects:  # connections count both ways
                j = index[other]
                if j not in s.neighbours and j != i:
                    s.neighbours.append(j)
                if i not in self._segments[j].neighbours and j != i:
                    self._segments[j].neighbours.append(i)
        self.roads = {s.road.id: s.state for s in self._segments}

    def advance(self, dt_s: float, hour: float, weather: Weather, water_cm: dict[str, float],
                effects: Effects) -> None:
        segments = self._segments
        base = demand(hour)
        fills = [s.state.fill for s in segments]
        wanted = []
        for s in segments:
            mood = s.mood.step(dt_s)
            usual = max(base, effects.demand_floor, effects.road_floor.get(s.original, 0.0))
            load = (usual * s.busyness * (1 + mood) * effects.demand
                    * effects.road_demand.get(s.original, 1.0))
            wanted.append(max(0.0, load) * s.capacity)
        diverted = [0.0] * len(segments)
        for i, s in enumerate(segments):
            if s.original in effects.closed and s.neighbours:
                for j in s.neighbours:
                    diverted[j] += DIVERTED * wanted[i] / len(s.neighbours)
        for i, s in enumerate(segments):
            st, road = s.state, s.road
            if s.original in effects.closed:
                st.speed_kmh = st.occupancy_pct = st.flow_veh_h = st.queue_veh = 0.0
                st.fill = 1.0  # nothing gets through: the connected segments back up
                continue
            water = water_cm.get(road.id, 0.0)
            rain = weather.rain_in(road.ward)
            incident = effects.capacity.get(s.original, 1.0)
            capacity = (s.capacity * flood_capacity(water) * incident
                        * (OUTAGE_CAPACITY if road.ward in effects.outages else 1.0)
                        * (1 - min(0.2, rain / 150)))
            if s.neighbours:
                # A full neighbour blocks the share of this segment's traffic bound for it.
                blocked = sum(spill(fills[j]) for j in s.neighbours) / len(s.neighbours)
                capacity *= 1 - SPILLBACK * blocked
            capacity = max(capacity, 1.0)
            free = (road.free_flow_kmh * flood_speed(water) * (1 - min(0.3, rain / 100))
                    * (0.7 if incident < 1 else 1.0))
            # Drivers who can avoid a jammed segment do (another route, or a later trip).
            want = (wanted[i] + diverted[i]) * (1 - AVOIDANCE * st.fill)
            st.queue_veh = clamp(st.queue_veh + (want - capacity) * dt_s / 3600, 0, s.storage)
            st.fill = st.queue_veh / s.storage
            if st.queue_veh > 0:
                st.flow_veh_h = capacity
                st.speed_kmh = free / 2 / (1 + 4 * st.fill)
                density = 0.5 + 0.5 * st.fill
            else:
                x = min(1.0, want / capacity)
                st.flow_veh_h = want
                st.speed_kmh = free * (1 + math.sqrt(1 - x)) / 2
                density = (1 - math.sqrt(1 - x)) / 2
            st.occupancy_pct = 95 * density


class RoadSensor:
    """A detector (loop or camera) counting what passes, with its own measurement noise."""

    def __init__(self, place: Road, rng: random.Random) -> None:
        self._road = place.id
        self._top_kmh = place.free_flow_kmh * 1.2
        self._noise = rng

    def read(self, world: WorldState) -> Metrics:
        st = world.roads[self._road]
        n = self._noise
        speed = st.speed_kmh * (1 + n.gauss(0, 0.04)) if st.flow_veh_h > 0 else 0.0
        occupancy = st.occupancy_pct + n.gauss(0, 1) if st.flow_veh_h > 0 else 0.0
        flow = st.flow_veh_h * (1 + n.gauss(0, 0.03))
        return {
            "speed_kmh": round(clamp(speed, 0, self._top_kmh), 1),
            "occupancy_pct": round(clamp(occupancy, 0, 100), 1),
            "flow_veh_h": float(round(clamp(flow, 0, 50_000))),
        }


PLUGIN: Plugin[Road] = Plugin(Domain.TRAFFIC, lambda city: city.roads, RoadSensor)
