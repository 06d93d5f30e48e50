"""Weather: the city-wide weather every sensor sees, and the rain gauges that report it.

Ho Chi Minh City is tropical: 26-34 °C through the day, showers mostly in the afternoons of
the rainy season (May to November), short and heavy, then a cooler, damper evening. A
scenario adds its own rain (over the city or some wards) and heat on top.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from simulators.base import (
    Metrics,
    Plugin,
    Wander,
    bump,
    clamp,
    daily,
    local_month,
    rng_for,
)
from simulators.effects import Effects
from simulators.state import Weather, WorldState
from smartcity.city import RainGauge
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

    def __init__(self, seed: int, wards: Sequence[str]) -> None:
        rng = self._rng = rng_for(seed, "world:weather")
        self._shower_mm_h = 0.0
        self._wet = 0.0  # rain of the last hours, for cooling and damp air after a shower
        self._rain_wobble = Wander(rng, sd=0.25, tau_s=600)
        self._temp = Wander(rng, sd=0.5, tau_s=3600)
        self._humidity = Wander(rng, sd=3, tau_s=3600)
        self._wind = Wander(rng, sd=2, tau_s=1800)
        # Each ward's own share of a shower: one cloud is never even over the city.
        self._ward_share = {w: Wander(rng_for(seed, f"world:rain:{w}"), sd=0.2, tau_s=1200)
                            for w in wards}

    def advance(self, now_ms: int, hour: float, dt_s: float, effects: Effects) -> Weather:
        rng = self._rng
        self._shower_mm_h *= math.exp(-dt_s / SHOWER_DECAY_S)
        # Drawn whether or not showers are allowed, so a scenario that stops them leaves
        # the rest of the weather's random stream as it was.
        starts = rng.random() < 1 - math.exp(
            -shower_rate_per_h(hour, local_month(now_ms)) * dt_s / 3600)
        peak = min(150.0, math.exp(rng.gauss(math.log(15), 0.7)))
        if starts and effects.random_rain:
            self._shower_mm_h = max(self._shower_mm_h, peak)
        wobble = math.exp(self._rain_wobble.step(dt_s))
        base = (self._shower_mm_h + effects.rain_mm_h) * wobble
        wards = {}
        for ward, share in self._ward_share.items():
            rain = (base * math.exp(share.step(dt_s))
                    + effects.ward_rain_mm_h.get(ward, 0.0) * wobble)
            wards[ward] = rain if rain >= 0.1 else 0.0
        rain = sum(wards.values()) / len(wards) if wards else (base if base >= 0.1 else 0.0)
        keep = math.exp(-dt_s / WET_MEMORY_S)
        self._wet = self._wet * keep + rain * (1 - keep)
        heat = daily(HEAT, hour)
        return Weather(
            rain_mm_h=rain, ward_rain_mm_h=wards,
            temperature_c=clamp(26 + 8 * heat - min(5.0, 0.3 * self._wet)
                                + effects.heat_c * (0.6 + 0.4 * heat)
                                + self._temp.step(dt_s), 21, 42),
            humidity_pct=clamp(88 - 30 * heat + min(12.0, self._wet)
                               - 2 * effects.heat_c + self._humidity.step(dt_s), 35, 100),
            wind_kmh=clamp(6 + 8 * heat + min(25.0, 0.5 * rain) + self._wind.step(dt_s), 0, 80),
        )


class RainGaugeSensor:
    """A weather station: its ward's rain and the city's air, with its own quirks."""

    def __init__(self, place: RainGauge, rng: random.Random) -> None:
        self._ward = place.ward
        self._rain_factor = Wander(rng, sd=0.1, tau_s=1200)
        self._temp_offset = rng.gauss(0, 0.3)
        self._exposure = rng.uniform(0.8, 1.2)
        self._noise = rng

    def read(self, world: WorldState) -> Metrics:
        w = world.weather
        rain = w.rain_in(self._ward) * math.exp(self._rain_factor.step(world.dt_s))
        return {
            "rain_mm_h": round(clamp(rain, 0, 500), 2),
            "temperature_c": round(w.temperature_c + self._temp_offset
                                   + self._noise.gauss(0, 0.1), 1),
            "humidity_pct": round(clamp(w.humidity_pct + self._noise.gauss(0, 0.5), 0, 100), 1),
            "wind_kmh": round(clamp(w.wind_kmh * self._exposure
                                    + self._noise.gauss(0, 0.5), 0, 300), 1),
        }


PLUGIN: Plugin[RainGauge] = Plugin(Domain.WEATHER, lambda city: city.rain_gauges, RainGaugeSensor)
