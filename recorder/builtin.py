"""The built-in recordings: one of each built-in scenario, readings only.

``scripts/make_recordings.py`` makes them: each scenario seeded with :data:`SEED` from
:data:`START`, sped up so the recording plays in about :data:`PLAY_S` seconds at 1x, every
device reading about 400 times. The same parameters give the same messages in-process
(``simulators.simulation.readings``), which is how the scenario regression suite notices a
simulator change even before the recordings are made again.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import NamedTuple

START = "2025-09-15T05:00"  # a rainy-season Monday, Ho Chi Minh City time
SEED = 2025
PLAY_S = 30.0


class Run(NamedTuple):
    speed: float
    interval_s: float
    steps: int  # readings per device


def run_of(length_s: float) -> Run:
    """How a scenario of ``length_s`` simulated seconds is recorded."""
    interval = max(60.0, round(length_s / 400))
    return Run(length_s / PLAY_S, interval, int(length_s // interval))


def recordings_dir() -> Path:
    return Path(str(resources.files("recorder") / "recordings"))


def builtin_recordings() -> dict[str, Path]:
    return {p.name.removesuffix(".screc"): p for p in sorted(recordings_dir().glob("*.screc"))}
