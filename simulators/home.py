"""Homes: a smart-home hub metering the household's power and its indoor air.

Air conditioning is most of the load: it peaks in the hot early afternoon and runs again in
the bedrooms at night. Cooking adds a spike at lunch and dinner and smoke to the air; the
street's motorbike exhaust comes in through open windows.
"""

from __future__ import annotations

import random

from simulators.base import Conditions, Plugin, Wander, bump, clamp, daily
from simulators.traffic import demand
from smartcity.city import Home
from smartcity.models import HomeTelemetry, Source
from smartcity.topics import Domain

# Share of the home's air conditioning running, by local time of day (before the heat).
AC_USE = ((0, 0.6), (5, 0.4), (7, 0.1), (10, 0.3), (12, 0.7), (14, 0.9), (16, 0.9),
          (18, 0.6), (20, 0.5), (22, 0.7), (24, 0.6))
# How many people are in, as a share of the household.
AT_HOME = ((0, 1.0), (6, 1.0), (8, 0.5), (9, 0.3), (16, 0.3), (18, 0.8), (20, 1.0),
           (24, 1.0))
AC_W_PER_M2 = 25


class HomeSensor:
    def __init__(self, place: Home, rng: random.Random) -> None:
        self._area_m2 = place.floor_area_m2
        self._base_w = 120 + 1.2 * place.floor_area_m2
        self._thermostat = Wander(rng, sd=0.08, tau_s=1800)  # how keen on AC the family is
        self._air = Wander(rng, sd=4, tau_s=1200)
        self._noise = rng

    def read(self, now: Conditions, ts_ms: int, seq: int) -> HomeTelemetry:
        heat = clamp((now.temperature_c - 25) / 7, 0.2, 1)
        ac = clamp(daily(AC_USE, now.hour) * heat + self._thermostat.step(now.dt_s), 0, 1)
        cooking = bump(now.hour, 11.3, 0.5) + bump(now.hour, 18.5, 0.6)
        people = daily(AT_HOME, now.hour)
        power = (self._base_w + AC_W_PER_M2 * self._area_m2 * ac + 1000 * cooking
                 + self._noise.gauss(0, 25))
        air = self._air.step(now.dt_s)
        return HomeTelemetry(
            ts=ts_ms, seq=seq, source=Source.SIMULATED,
            power_w=round(clamp(power, 30, 100_000), 1),
            temperature_c=round(clamp(now.temperature_c - 1 - 5 * ac
                                      + self._noise.gauss(0, 0.15), 18, 40), 1),
            humidity_pct=round(clamp(now.humidity_pct - 20 * ac + self._noise.gauss(0, 1), 30, 95),
                               1),
            # Windows are shut while the AC runs, which keeps exhaust out and breath in.
            pm25_ugm3=round(clamp(15 + 25 * demand(now.hour) * (1 - 0.6 * ac) + 40 * cooking
                                  + air, 2, 500), 1),
            co2_ppm=round(clamp(430 + 900 * people * (0.4 + 0.6 * ac) + 20 * air, 400, 5000)),
        )


PLUGIN: Plugin[Home] = Plugin(Domain.HOME, lambda city: city.homes, HomeSensor)
