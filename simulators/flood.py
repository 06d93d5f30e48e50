"""Flooding: a water-depth sensor at each of the city's street-flooding hot spots.

Water on the street follows the rain: it fills faster than the drains take it away and
lingers after the shower. Sites with a low warning depth are the low-lying ones, so they
flood more readily. On a dry day the sensors read a few millimetres of noise around zero.
"""

from __future__ import annotations

import math
import random

from simulators.base import Conditions, Plugin, clamp
from smartcity.city import FloodSite
from smartcity.models import FloodTelemetry, Source
from smartcity.topics import Domain


class FloodSensor:
    def __init__(self, place: FloodSite, rng: random.Random) -> None:
        # Depth (cm) the street settles at under a steady 1 mm/h of rain.
        self._cm_per_mm_h = rng.uniform(0.5, 1.0) * 20 / place.warning_cm
        self._drain_s = rng.uniform(45, 90) * 60
        self._level_cm = 0.0
        self._noise = rng

    def read(self, now: Conditions, ts_ms: int, seq: int) -> FloodTelemetry:
        settles_at = self._cm_per_mm_h * now.rain_mm_h
        # Exact for any step length, so 2 s and 10-minute steps tell the same story.
        self._level_cm += (settles_at - self._level_cm) * (1 - math.exp(-now.dt_s / self._drain_s))
        reading = self._level_cm + self._noise.gauss(0, 0.2)
        return FloodTelemetry(ts=ts_ms, seq=seq, source=Source.SIMULATED,
                              water_level_cm=round(clamp(reading, 0, 1000), 1))


PLUGIN: Plugin[FloodSite] = Plugin(Domain.FLOOD, lambda city: city.flood_sites, FloodSensor)
