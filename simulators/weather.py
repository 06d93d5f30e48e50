"""Weather: the city-wide weather every sensor sees, and the rain gauges that report it.

Ho Chi Minh City is tropical: 26-34 °C through the day, showers mostly in the afternoons of
the rainy season (May to November), short and heavy, then a cooler, damper evening.
"""

from __future__ import annotations

import math
import random

from simulators.base import Conditions, Plugin, Wander, bump, clamp, daily, local_hour, local_month
from smartcity.city import RainGauge
from smartcity.models import Source, WeatherTelemetry
from smartcity.topics import Domain

# 0 at the coolest moment of the day (before dawn), 1 at the hottest (early afternoon).
HEAT = ((0, 0.25), (3, 0.1), (6, 0.0), (9, 0.45), (12, 0.85), (14, 1.0), (16, 0.85),
        (18, 0.55), (21, 0.35), (24, 0.25))
RAINY_MONTHS = range(5, 12)
SHOWER_DECAY_S = 45 * 60
WET_MEMORY_S = 2 * 3600


def shower_rate_per_h(hour: float, month: int) -> float:
    """How likely a shower starts: mostly mid-afternoon, ten times rarer in the dry season."""
    rate = 0.005 + 0.15 * bump(hour, 16, 1.5)
    return rate if month in RAINY_MONTHS else rate / 10


class CityWeather:
    """The weather over the whole city, advanced one step at a time."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._shower_mm_h = 0.0
        self._wet = 0.0  # rain of the last hours, for cooling and damp air after a shower
        self._rain_wobble = Wander(rng, sd=0.25, tau_s=600)
        self._temp = Wander(rng, sd=0.5, tau_s=3600)
        self._humidity = Wander(rng, sd=3, tau_s=3600)
        self._wind = Wander(rng, sd=2, tau_s=1800)

    def advance(self, now_ms: int, dt_s: float) -> Conditions:
        rng = self._rng
        hour, month = local_hour(now_ms), local_month(now_ms)
        self._shower_mm_h *= math.exp(-dt_s / SHOWER_DECAY_S)
        if rng.random() < 1 - math.exp(-shower_rate_per_h(hour, month) * dt_s / 3600):
            peak = min(150.0, math.exp(rng.gauss(math.log(15), 0.7)))
            self._shower_mm_h = max(self._shower_mm_h, peak)
        rain = self._shower_mm_h * math.exp(self._rain_wobble.step(dt_s))
        rain = rain if rain >= 0.1 else 0.0
        keep = math.exp(-dt_s / WET_MEMORY_S)
        self._wet = self._wet * keep + rain * (1 - keep)
        heat = daily(HEAT, hour)
        return Conditions(
            now_ms=now_ms, dt_s=dt_s, hour=hour, month=month, rain_mm_h=rain,
            temperature_c=clamp(26 + 8 * heat - min(5.0, 0.3 * self._wet)
                                + self._temp.step(dt_s), 22, 36),
            humidity_pct=clamp(88 - 30 * heat + min(12.0, self._wet)
                               + self._humidity.step(dt_s), 40, 100),
            wind_kmh=clamp(6 + 8 * heat + min(25.0, 0.5 * rain) + self._wind.step(dt_s), 0, 80),
        )


class RainGaugeSensor:
    """A weather station: the city's weather with its own local variation."""

    def __init__(self, place: RainGauge, rng: random.Random) -> None:
        self._rain_factor = Wander(rng, sd=0.15, tau_s=1200)
        self._temp_offset = rng.gauss(0, 0.3)
        self._exposure = rng.uniform(0.8, 1.2)
        self._noise = rng

    def read(self, now: Conditions, ts_ms: int, seq: int) -> WeatherTelemetry:
        rain = now.rain_mm_h * math.exp(self._rain_factor.step(now.dt_s))
        return WeatherTelemetry(
            ts=ts_ms, seq=seq, source=Source.SIMULATED,
            rain_mm_h=round(clamp(rain, 0, 500), 2),
            temperature_c=round(now.temperature_c + self._temp_offset
                                + self._noise.gauss(0, 0.1), 1),
            humidity_pct=round(clamp(now.humidity_pct + self._noise.gauss(0, 0.5), 0, 100), 1),
            wind_kmh=round(clamp(now.wind_kmh * self._exposure
                                 + self._noise.gauss(0, 0.5), 0, 300), 1),
        )


PLUGIN: Plugin[RainGauge] = Plugin(Domain.WEATHER, lambda city: city.rain_gauges, RainGaugeSensor)
