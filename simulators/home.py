"""Homes: a smart-home hub metering the household's power and its indoor air.

Air conditioning is most of the load: it peaks in the hot early afternoon and runs again in
the bedrooms at night, and a heatwave turns more of it on. Cooking adds a spike at lunch and
dinner and smoke to the air; the street's motorbike exhaust comes in through open windows.
Indoor air follows its targets with a lag (walls and furniture hold heat).

What the city does to a home:
- a power cut in its ward: the meter reads almost nothing (the hub runs on its battery), the
  AC stops, and the rooms warm up and grow damp over the next hour;
- water in its ward's streets (a flood site of the ward at 10 cm or more): the household
  runs a 750 W drainage pump, doors stay open to bail water, the indoor air grows damper by up
  to 15 points.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from simulators.base import Metrics, Plugin, Wander, bump, clamp, daily
from simulators.traffic import demand
from smartcity.city import Home
from smartcity.topics import Domain

if TYPE_CHECKING:
    from simulators.state import WorldState

# Share of the home's air conditioning running, by local time of day (before the heat).
AC_USE = ((0, 0.6), (5, 0.4), (7, 0.1), (10, 0.3), (12, 0.7), (14, 0.9), (16, 0.9),
          (18, 0.6), (20, 0.5), (22, 0.7), (24, 0.6))
# How many people are in, as a share of the household.
AT_HOME = ((0, 1.0), (6, 1.0), (8, 0.5), (9, 0.3), (16, 0.3), (18, 0.8), (20, 1.0),
           (24, 1.0))
AC_W_PER_M2 = 25
PUMP_W = 750
PUMP_FROM_CM = 10
INDOOR_LAG_S = 1800


class HomeSensor:
    def __init__(self, place: Home, rng: random.Random) -> None:
        self._ward = place.ward
        self._area_m2 = place.floor_area_m2
        self._base_w = 120 + 1.2 * place.floor_area_m2
        self._thermostat = Wander(rng, sd=0.08, tau_s=1800)  # how keen on AC the family is
        self._air = Wander(rng, sd=4, tau_s=1200)
        self._noise = rng
        self._indoor: tuple[float, float] | None = None  # temperature, humidity

    def read(self, world: WorldState) -> Metrics:
        w, hour, n = world.weather, world.hour, self._noise
        powered = self._ward not in world.outages
        water = world.ward_water_cm.get(self._ward, 0.0)
        heat = clamp((w.temperature_c - 25) / 7, 0.2, 1.5)
        thermostat = self._thermostat.step(world.dt_s)
        ac = clamp(daily(AC_USE, hour) * heat + thermostat, 0, 1.3) if powered else 0.0
        cooking = bump(hour, 11.3, 0.5) + bump(hour, 18.5, 0.6)
        people = daily(AT_HOME, hour)
        pump = PUMP_W if water >= PUMP_FROM_CM else 0.0
        if powered:
            power = (self._base_w + AC_W_PER_M2 * self._area_m2 * ac + 1000 * cooking + pump
                     + n.gauss(0, 25))
        else:
            power = abs(n.gauss(0, 2))
        cooled = min(ac, 1.0)
        target_c = w.temperature_c - 1 - 5 * cooled
        target_h = w.humidity_pct - 20 * cooled + min(15.0, water / 2)
        if self._indoor is None:
            self._indoor = (target_c, target_h)
        keep = math.exp(-world.dt_s / INDOOR_LAG_S)
        indoor_c = target_c + (self._indoor[0] - target_c) * keep
        indoor_h = target_h + (self._indoor[1] - target_h) * keep
        self._indoor = (indoor_c, indoor_h)
        air = self._air.step(world.dt_s)
        return {
            "power_w": round(clamp(power, 0, 100_000), 1),
            "temperature_c": round(clamp(indoor_c + n.gauss(0, 0.15), 16, 45), 1),
            "humidity_pct": round(clamp(indoor_h + n.gauss(0, 1), 25, 99), 1),
            # Windows are shut while the AC runs, which keeps exhaust out and breath in.
            "pm25_ugm3": round(clamp(15 + 25 * demand(hour) * (1 - 0.6 * cooled)
                                     + 40 * cooking + air, 2, 500), 1),
            "co2_ppm": float(round(clamp(430 + 900 * people * (0.4 + 0.6 * cooled) + 20 * air,
                                         400, 5000))),
        }


PLUGIN: Plugin[Home] = Plugin(Domain.HOME, lambda city: city.homes, HomeSensor)
