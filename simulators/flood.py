"""Street flooding: a bucket of water at each hot spot, and the depth sensor that reads it.

Per site, in cm of depth per hour:

- rain in: the ward's rain (mm/h / 10) times the site's ``catchment``, the runoff that
  gathers at this low point;
- river in: once the river is above the street (``ground_cm``), it comes over the banks and
  up the drains, filling the street towards the river's level;
- out: the drains, ``drain_cm_h`` while the river is low. They empty into the river, so they
  slow as it rises towards the street and stop when it is above: rain at high tide floods
  the city, the same rain at low tide does not.

Water therefore rises with rain and tide, and falls back once both have passed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from simulators.base import Metrics, Plugin, Wander, clamp
from smartcity.city import FloodSite
from smartcity.topics import Domain

if TYPE_CHECKING:
    from simulators.state import Weather, WorldState

RIVER_IN_PER_H = 2.0  # cm/h of inflow per cm the river stands above the water on the street
DRAIN_HEAD_CM = 50  # the drains run at full capacity with the river this far below the street
SEEP_CM_H = 0.5  # soaking away and evaporation, even with the drains shut
FILM_CM = 2.0  # below this the drains cannot run at full rate: the last film of water lingers


class FloodModel:
    def __init__(self, sites: Sequence[FloodSite]) -> None:
        self._sites = list(sites)
        self.depth_cm = {s.id: 0.0 for s in self._sites}

    def advance(self, dt_s: float, river_cm: float, weather: Weather) -> None:
        hours = dt_s / 3600
        for s in self._sites:
            depth = self.depth_cm[s.id]
            rain_in = weather.rain_in(s.ward) / 10 * s.catchment
            river_in = RIVER_IN_PER_H * max(0.0, river_cm - (s.ground_cm + depth))
            open_share = clamp((s.ground_cm - river_cm) / DRAIN_HEAD_CM, 0, 1)
            out = (s.drain_cm_h * open_share + SEEP_CM_H) * (1 - math.exp(-depth / FILM_CM))
            self.depth_cm[s.id] = max(0.0, depth + (rain_in + river_in - out) * hours)


class FloodSensor:
    """An ultrasonic depth sensor over the street: a few millimetres of noise around the
    water, never below the road."""

    def __init__(self, place: FloodSite, rng: random.Random) -> None:
        self._site = place.id
        self._ripple = Wander(rng, sd=0.3, tau_s=60)
        self._noise = rng

    def read(self, world: WorldState) -> Metrics:
        depth = world.depth_cm[self._site]
        ripple = self._ripple.step(world.dt_s) if depth > 0.5 else 0.0
        reading = depth + ripple + self._noise.gauss(0, 0.2)
        return {"water_level_cm": round(clamp(reading, 0, 1000), 1)}


PLUGIN: Plugin[FloodSite] = Plugin(Domain.FLOOD, lambda city: city.flood_sites, FloodSensor)
