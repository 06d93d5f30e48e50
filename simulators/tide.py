"""The Saigon river's tide, and the gauge at Phú An that reports it.

The river at Phú An follows the sea: a mixed, mostly semidiurnal tide (two high waters a day,
unequal), highest from October to December. A scenario's ``tide`` event forces one high
water to a given peak (a king tide, a storm surge) by blending in a tide that peaks then;
the blend of two tides of one period is again such a tide, so the curve stays natural.
Levels are in cm above the gauge's datum, the same datum as the flood sites' ground levels.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from simulators.base import Metrics, Plugin, Wander, clamp
from simulators.effects import TidePeak
from smartcity.city import TideGauge
from smartcity.topics import Domain

if TYPE_CHECKING:
    from simulators.state import WorldState

# Periods of the main constituents, in hours: lunar and solar semidiurnal, lunisolar and
# lunar diurnal.
M2_H, S2_H, K1_H, O1_H = 12.4206012, 12.0, 23.9344696, 25.8193417
SEASON_CM = 12  # the river runs higher late in the rainy season (the flood-tide months)
PEAK_DAY_OF_YEAR = 320  # mid-November
PEAK_HALF_WIDTH_MS = 6 * 3_600_000  # how long a forced high water takes to come and go
DEFAULT_GAUGE = TideGauge(id="river", name="river", ward="river", lat=0, lon=0)


class Tide:
    def __init__(self, gauge: TideGauge | None) -> None:
        g = gauge or DEFAULT_GAUGE
        self.mean_cm = g.mean_level_cm
        self.semidiurnal_cm = g.semidiurnal_cm
        self.diurnal_cm = g.diurnal_cm

    def astronomical(self, now_ms: int) -> float:
        """The ordinary tide: a pure function of time, the same in every run."""
        h = now_ms / 3_600_000
        day_of_year = (h / 24) % 365.2425
        tau = 2 * math.pi
        return (self.mean_cm
                + SEASON_CM * math.cos(tau * (day_of_year - PEAK_DAY_OF_YEAR) / 365.2425)
                + self.semidiurnal_cm * (math.cos(tau * h / M2_H + 0.6)
                                         + 0.25 * math.cos(tau * h / S2_H + 1.9))
                + self.diurnal_cm * (math.cos(tau * h / K1_H + 2.3)
                                     + 0.5 * math.cos(tau * h / O1_H + 0.4)))

    def level(self, now_ms: int, peaks: tuple[TidePeak, ...] = ()) -> float:
        level = self.astronomical(now_ms)
        swing = self.semidiurnal_cm + self.diurnal_cm
        for p in peaks:
            weight = peak_weight(now_ms, p)
            if weight <= 0:
                continue
            forced = p.peak_cm - swing * (1 - math.cos(2 * math.pi * (now_ms - p.at_ms)
                                                       / (M2_H * 3_600_000)))
            level += weight * (forced - level)
        return level


def peak_weight(now_ms: int, peak: TidePeak) -> float:
    """How much of the forced tide the river follows: 1 at the peak, 0 from ``rise_ms``
    before and :data:`PEAK_HALF_WIDTH_MS` after, smooth in between."""
    ahead = peak.at_ms - now_ms
    width = min(peak.rise_ms, PEAK_HALF_WIDTH_MS) if ahead > 0 else PEAK_HALF_WIDTH_MS
    if abs(ahead) >= width:
        return 0.0
    return math.cos(math.pi / 2 * ahead / width) ** 2


class TideGaugeSensor:
    """A radar gauge over the river: the level, with waves and wakes as noise."""

    def __init__(self, place: TideGauge, rng: random.Random) -> None:
        self._offset = rng.gauss(0, 1)  # its survey against the datum
        self._waves = Wander(rng, sd=2, tau_s=120)
        self._noise = rng

    def read(self, world: WorldState) -> Metrics:
        level = (world.river_cm + self._offset + self._waves.step(world.dt_s)
                 + self._noise.gauss(0, 0.5))
        return {"river_level_cm": round(clamp(level, -1000, 1000), 1)}


PLUGIN: Plugin[TideGauge] = Plugin(Domain.FLOOD, lambda city: city.tide_gauges,
                                   TideGaugeSensor)
