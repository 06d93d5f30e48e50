"""What every simulator plugin shares: the plugin interface, seeded random streams and the
daily-cycle helpers.

Everything here is pure: time comes in as epoch milliseconds, randomness from a
``random.Random`` the caller seeds, so a simulation replays byte for byte.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import orjson

from smartcity.city import City, Place
from smartcity.topics import Domain

if TYPE_CHECKING:
    from simulators.state import WorldState

# Ho Chi Minh City keeps UTC+7 all year (no daylight saving), so a fixed offset is exact.
HCMC_UTC_OFFSET_MS = 7 * 3600 * 1000
HCMC_TZ = timezone(timedelta(milliseconds=HCMC_UTC_OFFSET_MS))
MS_PER_DAY = 86_400_000


Metrics = dict[str, float]


class Sensor(Protocol):
    """One simulated device: a measurement of the world, with the device's own noise.

    ``read`` is called once per step, with steps in time order. It must depend only on the
    sensor's own state, its own random stream and the world, and must return metrics of its
    domain's payload model (named with their units), each rounded and within the contract's
    ranges: they are sent without further validation (tests decode every message).
    """

    def read(self, world: WorldState) -> Metrics: ...


P = TypeVar("P", bound=Place)


@dataclass(frozen=True)
class Plugin(Generic[P]):
    """A kind of device: its domain, which places of the city host one, and its sensor."""

    domain: Domain
    places: Callable[[City], Sequence[P]]
    sensor: Callable[[P, random.Random], Sensor]


def encode(ts: str, seq: int, metrics: Metrics) -> bytes:
    """A simulated reading's payload: ``ts`` already formatted (it is shared by every device
    of a step), then ``seq``, ``source`` and the metrics."""
    return orjson.dumps({"ts": ts, "seq": seq, "source": "simulated", **metrics})


def rng_for(seed: int, name: str) -> random.Random:
    """A random stream for ``name`` under ``seed``, the same in every process and release.

    Python's ``hash()`` of a string is salted per process, so a stable digest is used instead.
    """
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))


def local_hour(ms: int) -> float:
    """Local time of day in Ho Chi Minh City, in hours."""
    return ((ms + HCMC_UTC_OFFSET_MS) % MS_PER_DAY) / 3_600_000


def local_month(ms: int) -> int:
    return datetime.fromtimestamp((ms + HCMC_UTC_OFFSET_MS) / 1000, tz=UTC).month


def daily(table: Sequence[tuple[float, float]], hour: float) -> float:
    """Interpolate a daily profile given as (hour, value) points from 0 to 24."""
    i = bisect.bisect_right(table, hour, key=_first)
    if i == 0:
        return table[0][1]
    if i >= len(table):
        return table[-1][1]
    (h0, v0), (h1, v1) = table[i - 1], table[i]
    return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)


_first = itemgetter(0)


def bump(hour: float, center: float, width: float) -> float:
    """A Gaussian bump over the time of day, 1 at ``center``, wrapping around midnight."""
    d = min(abs(hour - center), 24 - abs(hour - center))
    return math.exp(-0.5 * (d / width) ** 2)


def clamp(value: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, value))


class Wander:
    """Smooth noise: an Ornstein-Uhlenbeck process around 0, exact for any step length.

    ``sd`` is its long-run standard deviation and ``tau_s`` how long it remembers, so readings
    drift plausibly at a 2 s interval and still make sense at 10-minute steps.
    """

    def __init__(self, rng: random.Random, sd: float, tau_s: float) -> None:
        self._rng = rng
        self._sd = sd
        self._tau_s = tau_s
        self.value = rng.gauss(0, sd)

    def step(self, dt_s: float) -> float:
        if dt_s > 0:
            keep = math.exp(-dt_s / self._tau_s)
            self.value = self.value * keep + self._rng.gauss(0, self._sd * math.sqrt(1 - keep**2))
        return self.value
