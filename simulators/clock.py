"""Simulated time: durations and start times as people write them, and the clock that maps
the wall clock to simulated time at a speed, with pause and resume.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from datetime import datetime

from simulators.base import HCMC_TZ
from smartcity.durations import parse_duration
from smartcity.models import TS_MAX_MS, TS_MIN_MS

MAX_SPEED = 100_000.0


def parse_start(value: str | int) -> int:
    """Epoch ms from an RFC 3339 time, a local HCMC time without an offset
    (``2025-10-20T14:00``), or epoch milliseconds."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        ms = int(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a time such as 2025-10-20T14:00 (Ho Chi Minh "
                             "City time) or 2025-10-20T07:00:00Z") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=HCMC_TZ)
        ms = int(parsed.timestamp() * 1000)
    if not TS_MIN_MS <= ms < TS_MAX_MS:
        raise ValueError(f"{value!r} is outside the years 2000-2099")
    return ms


def parse_speed(value: str | float) -> float:
    """A time factor above 0; ``inf`` (or ``max``) runs as fast as the broker takes it."""
    if isinstance(value, str) and value.strip().lower() in ("max", "inf"):
        return math.inf
    speed = float(value)
    if not (speed > 0 and (math.isinf(speed) or speed <= MAX_SPEED)):
        raise ValueError(f"speed {value!r} must be above 0 and at most {MAX_SPEED:g}, or 'max'")
    return speed


def _argparse_type(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = name
    return convert


# For launcher.cli: ``sim.add_argument("--start", type=start_arg)`` and so on.
duration_arg = _argparse_type(parse_duration, "duration")
start_arg = _argparse_type(parse_start, "start")
speed_arg = _argparse_type(parse_speed, "speed")


class SimClock:
    """Simulated time as a function of the monotonic wall clock:
    ``sim = anchor_sim + (wall - anchor_wall) * speed``, frozen while paused. Changing the
    speed or pausing re-anchors at the current simulated time, so time never jumps.
    An infinite speed makes every simulated moment due at once."""

    def __init__(self, start_ms: int, speed: float,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._anchor_sim = float(start_ms)
        self._anchor_wall = wall()
        self.speed = speed
        self.paused = False

    def now_ms(self) -> float:
        if self.paused:
            return self._anchor_sim
        if math.isinf(self.speed):
            return math.inf
        return self._anchor_sim + (self._wall() - self._anchor_wall) * 1000 * self.speed

    def wall_at(self, sim_ms: float) -> float:
        """When ``sim_ms`` is due on the wall clock (``inf`` while paused)."""
        if self.paused:
            return math.inf
        if math.isinf(self.speed):
            return -math.inf
        return self._anchor_wall + (sim_ms - self._anchor_sim) / 1000 / self.speed

    def set_speed(self, speed: float, floor_ms: float) -> None:
        """``floor_ms``: the simulated time reached so far, used when the clock has none of its
        own (at infinite speed)."""
        self._reanchor(self._position(floor_ms))
        self.speed = speed

    def pause(self, floor_ms: float) -> None:
        if not self.paused:
            self._reanchor(self._position(floor_ms))
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self._anchor_wall = self._wall()
            self.paused = False

    def jump(self, sim_ms: float) -> None:
        """Make ``sim_ms`` the current simulated time (after falling behind)."""
        self._reanchor(sim_ms)

    def _position(self, floor_ms: float) -> float:
        now = self.now_ms()
        return floor_ms if math.isinf(now) else now

    def _reanchor(self, at_sim_ms: float) -> None:
        self._anchor_sim = at_sim_ms
        self._anchor_wall = self._wall()
