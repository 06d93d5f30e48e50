"""The simulated city as a pure function of (city, seed, scenario, simulated times).

No I/O and no clock of its own: the runner feeds it simulated tick times; tests, benches and
replays feed it any times they like. Each message's ``ts`` is its simulated time, so the
same city, seed, scenario (started at the same simulated time) and sequence of times give
byte-identical messages, whatever the wall clock or the speed did meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from simulators.base import Sensor, encode, rng_for
from simulators.effects import NO_EFFECTS, Effects
from simulators.faults import Faults
from simulators.plugins import PLUGINS
from simulators.scenarios import Scenario
from simulators.state import WorldState
from simulators.timeline import Timeline
from simulators.world import World
from smartcity.city import City
from smartcity.models import TELEMETRY_MODELS, Telemetry, format_ts
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
    model: type[Telemetry]
    seq: int = 0


class Simulation:
    """Every device of ``city``, stepped together, and the scenario running in it.

    Each device draws from its own random stream, seeded from (seed, device id), and so does
    each road of the traffic model, so adding a home leaves every other reading unchanged.
    """

    def __init__(self, city: City, seed: int, root: str = DEFAULT_ROOT,
                 scenario: Scenario | None = None) -> None:
        self.city = city
        self.seed = seed
        self._world = World(city, seed)
        self._devices = [
            _Device(DeviceRef(plugin.domain, place.device_id),
                    telemetry_topic(plugin.domain, place.device_id, root),
                    plugin.sensor(place, rng_for(seed, place.device_id)),
                    TELEMETRY_MODELS[plugin.domain])
            for plugin in PLUGINS for place in plugin.places(city)
        ]
        self._last_ms: int | None = None
        self._timeline: Timeline | None = None
        self._faults: Faults | None = None
        self._pending: Scenario | None = scenario
        self.last_state: WorldState | None = None

    @property
    def devices(self) -> list[DeviceRef]:
        return [d.ref for d in self._devices]

    @property
    def timeline(self) -> Timeline | None:
        """The scenario running (or about to start at the next step), if any."""
        return self._timeline

    @property
    def scenario_name(self) -> str | None:
        if self._pending is not None:
            return self._pending.name
        return self._timeline.name if self._timeline else None

    @property
    def last_ms(self) -> int | None:
        return self._last_ms

    def start_scenario(self, scenario: Scenario) -> None:
        """Run ``scenario`` from the current simulated time (the last step's), replacing any
        other; before the first step, from the first step's time."""
        if self._last_ms is None:
            self._pending = scenario
            return
        self._pending = None
        self._begin(scenario, self._last_ms)

    def stop_scenario(self) -> None:
        self._pending = None
        self._timeline = self._faults = None

    def return_to(self, now_ms: int) -> None:
        """Start the city again at ``now_ms`` (which may lie before the last step): no
        scenario, the weather, river and streets as they are at that time of day. Devices
        keep counting their ``seq``."""
        self.stop_scenario()
        self._world = World(self.city, self.seed)
        self._last_ms = None

    def _begin(self, scenario: Scenario, start_ms: int) -> None:
        self._timeline = Timeline(scenario, start_ms)
        self._faults = (Faults(scenario.faults, start_ms, self.seed, self.city.original)
                        if scenario.faults else None)

    def _effects(self, t_ms: int) -> Effects:
        return self._timeline.effects(t_ms) if self._timeline else NO_EFFECTS

    def step(self, now_ms: int, stamp_ms: int | None = None) -> list[Message]:
        """Advance the city to simulated time ``now_ms`` and read every device once; the
        readings carry ``stamp_ms`` (the exhibit clock's wall-clock time), by default
        ``now_ms``."""
        if self._last_ms is not None and now_ms < self._last_ms:
            raise ValueError(f"simulated time went backwards: {now_ms} < {self._last_ms}")
        if self._pending is not None:
            self._begin(self._pending, now_ms)
            self._pending = None
        world = self.last_state = self._world.advance(now_ms, self._effects)
        self._last_ms = now_ms
        faults = self._faults
        ts = format_ts(now_ms if stamp_ms is None else stamp_ms)
        out = []
        for d in self._devices:
            metrics = d.sensor.read(world)
            if faults is not None and faults.affects(d.ref.device_id):
                for payload in faults.apply(d.ref.device_id, d.model, ts, d.seq, metrics,
                                            now_ms, stamp_ms):
                    out.append(Message(d.ref.device_id, d.topic, payload))
            else:
                out.append(Message(d.ref.device_id, d.topic, encode(ts, d.seq, metrics)))
            d.seq += 1
        if self._timeline is not None and now_ms >= self._timeline.end_ms:
            self._timeline = self._faults = None
        return out


def interval_ms(interval_s: float) -> int:
    ms = round(interval_s * 1000)
    if ms < 1:
        raise ValueError(f"interval {interval_s}s is shorter than a millisecond")
    return ms


def readings(city: City, seed: int, start_ms: int, interval_s: float, steps: int,
             root: str = DEFAULT_ROOT, scenario: Scenario | None = None) -> Iterator[Message]:
    """The messages of ``steps`` ticks, ``interval_s`` apart from ``start_ms``, in publish
    order: what ``smartcity simulate --seed S --start T [--scenario X]`` publishes."""
    simulation = Simulation(city, seed, root, scenario)
    every = interval_ms(interval_s)
    for k in range(steps):
        yield from simulation.step(start_ms + k * every)
