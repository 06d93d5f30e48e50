"""The simulated city as a pure function of (city, seed, time): no I/O, no clock of its own.

The runner feeds it wall-clock ticks; tests, record/replay and scenarios can feed it any
times they like. The same city, seed and sequence of times give byte-identical payloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from simulators.base import Sensor, rng_for
from simulators.plugins import PLUGINS
from simulators.weather import CityWeather
from smartcity.city import City
from smartcity.codec import dump
from smartcity.topics import DEFAULT_ROOT, Domain, Topic, telemetry_topic


class DeviceRef(NamedTuple):
    domain: Domain
    device_id: str


class Message(NamedTuple):
    """One telemetry message to publish (QoS 1) on behalf of ``device_id``."""

    device_id: str
    topic: Topic
    payload: bytes


@dataclass
class _Device:
    ref: DeviceRef
    topic: Topic
    sensor: Sensor
    seq: int = 0


class Simulation:
    """Every device of ``city``, stepped together.

    Each device draws from its own random stream, seeded from (seed, device id), so adding a
    device to the city leaves the others' readings unchanged. The weather is one more stream
    every device sees.
    """

    def __init__(self, city: City, seed: int, root: str = DEFAULT_ROOT) -> None:
        self.seed = seed
        # ":" cannot occur in a device id, so this stream never collides with a device's.
        self._weather = CityWeather(rng_for(seed, "city:weather"))
        self._devices = [
            _Device(DeviceRef(domain, place.device_id),
                    telemetry_topic(domain, place.device_id, root),
                    plugin.sensor(place, rng_for(seed, place.device_id)))
            for domain, plugin in PLUGINS.items() for place in plugin.places(city)
        ]
        self._last_ms: int | None = None

    @property
    def devices(self) -> list[DeviceRef]:
        return [d.ref for d in self._devices]

    def step(self, now_ms: int, ts_ms: int | None = None) -> list[Message]:
        """Advance the city to simulated time ``now_ms`` and read every device once.

        Readings follow ``now_ms`` (the time of day drives the daily cycles); their payload
        ``ts`` is ``ts_ms`` when given, the wall-clock time of a live run.
        """
        if self._last_ms is not None and now_ms < self._last_ms:
            raise ValueError(f"simulated time went backwards: {now_ms} < {self._last_ms}")
        dt_s = 0.0 if self._last_ms is None else (now_ms - self._last_ms) / 1000
        self._last_ms = now_ms
        conditions = self._weather.advance(now_ms, dt_s)
        stamp = now_ms if ts_ms is None else ts_ms
        out = []
        for d in self._devices:
            out.append(Message(d.ref.device_id, d.topic,
                               dump(d.sensor.read(conditions, stamp, d.seq))))
            d.seq += 1
        return out


def interval_ms(interval_s: float) -> int:
    ms = round(interval_s * 1000)
    if ms < 1:
        raise ValueError(f"interval {interval_s}s is shorter than a millisecond")
    return ms


def readings(city: City, seed: int, start_ms: int, interval_s: float, steps: int,
             root: str = DEFAULT_ROOT) -> Iterator[Message]:
    """The messages of ``steps`` ticks, ``interval_s`` apart from ``start_ms``, in publish
    order: what ``smartcity simulate --seed`` publishes, with simulated times as ``ts``."""
    simulation = Simulation(city, seed, root)
    every = interval_ms(interval_s)
    for k in range(steps):
        yield from simulation.step(start_ms + k * every)
