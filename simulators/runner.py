"""``smartcity simulate``: publish the simulated city on a simulated clock, under control.

Every ``interval_s`` of *simulated* time each device publishes one reading (QoS 1). The
simulated clock starts at ``start`` (default: now) and runs ``speed`` times as fast as the
wall clock (1: real time; 60: a minute per second; ``inf``: as fast as the broker
acknowledges). What a reading's ``ts`` is depends on the clock (:class:`control.Clock`):

- engineers' clock (with ``--start`` or a seed): the simulated time, so the same seed, city,
  scenario and start give the same messages byte for byte at any speed;
- exhibit clock (the default otherwise): the wall-clock time, so the database, the history
  api, Grafana's "last hour" and the alerts agree with the clock on the wall while a story
  plays compressed; the story's time travels in the state (``sim_time``) for display.
  Stopping a scenario, its end, or a reset brings the city back to now at speed 1.

While running, the simulator obeys commands on ``{root}/control/...`` (start or stop a
scenario, change speed, pause, resume; see :mod:`smartcity.control`) and keeps its state
retained on ``{root}/control/state``. Commands apply between two ticks and are logged with
the simulated time they took effect at.

All the I/O runs in the calling thread: one selector drives every device's connection
(:mod:`simulators.network`) and the scheduler waits in it until the next tick is due.
"""

from __future__ import annotations

import logging
import math
import resource
import secrets
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType

import orjson

from simulators.base import HCMC_TZ
from simulators.clock import SimClock, parse_start
from simulators.network import Link, Network
from simulators.scenarios import Scenario, builtin_names, load_scenario
from simulators.simulation import Message, Simulation, interval_ms, readings
from smartcity import control, logs
from smartcity.city import City, load_city
from smartcity.codec import dump
from smartcity.errors import ContractError, FieldProblem
from smartcity.models import DeviceState, DeviceStatus, format_ts
from smartcity.settings import SimulatorSettings
from smartcity.topics import status_topic

__all__ = ["SEEDED_START_MS", "Message", "Simulation", "main", "readings", "run"]

log = logging.getLogger(__name__)

# A rainy-season Monday at dawn: a convenient --start for reproducible runs and tests.
SEEDED_START_MS = int(datetime(2025, 7, 14, 6, 0, tzinfo=HCMC_TZ).timestamp() * 1000)
SHUTDOWN_TIMEOUT_S = 5.0
CATCH_UP_S = 10.0  # ticks this late (wall clock) are skipped rather than burst out
POLL_MAX_S = 0.1  # how often a waiting loop looks at its stop event
STATE_EVERY_S = 5.0
STATS_EVERY_S = 60.0
MAX_UNACKED_PER_DEVICE = 4  # beyond this the broker is behind: wait rather than queue more
OFFLINE_WILL = dump(DeviceStatus(state=DeviceState.OFFLINE))


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def main(settings: SimulatorSettings, duration_s: float | None = None, *,
         start: str | int | None = None, speed: float = 1.0, scenario: str | Path | None = None,
         scale: int = 1, clock: control.Clock | None = None) -> int:
    """Run until SIGINT/SIGTERM or for ``duration_s`` simulated seconds; the exit code."""
    logs.setup("simulate", settings.log_level)
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    try:
        return run(settings, stop=stop, duration_s=duration_s, start=start, speed=speed,
                   scenario=scenario, scale=scale, clock=clock)
    finally:
        restore()


def run(settings: SimulatorSettings, *, stop: threading.Event | None = None,
        duration_s: float | None = None, start: str | int | None = None, speed: float = 1.0,
        scenario: str | Path | None = None, scale: int = 1,
        clock: control.Clock | None = None) -> int:
    """:func:`main` without logging set-up and signal handlers: stops when ``stop`` is set.
    ``clock`` defaults to the engineers' with a start or a seed, else the exhibit's.

    Raises :class:`ContractError` for a bad city or scenario, before connecting anything."""
    city = load_city(settings.city_file, scale=scale)
    chosen = load_scenario(scenario, city) if scenario is not None else None
    try:
        start_ms = None if start is None else parse_start(start)
        if not (speed > 0):
            raise ValueError(f"speed {speed} must be above 0")
    except ValueError as e:
        raise ContractError("cannot simulate", [FieldProblem("start/speed", str(e))]) from None
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**32)
    if clock is None:
        engineers = start_ms is not None or settings.seed is not None
        clock = control.Clock.ENGINEER if engineers else control.Clock.EXHIBIT
    runner = _Runner(settings, city, seed, start_ms, speed, chosen,
                     stop or threading.Event(), duration_s)
    runner.mode = clock
    log.info("simulating %d devices of %s under %s/ every %gs of simulated time at speed %g, "
             "seed %d%s, %s clock", len(runner.sim.devices), city.name_en or city.name,
             settings.mqtt.root, settings.interval_s, speed, seed,
             "" if settings.seed is not None else " (random)", clock.value)
    runner.replay = (f"--seed {seed} --interval {settings.interval_s:g}"
                     + (f" --scenario {scenario}" if scenario is not None else "")
                     + (f" --scale {scale}" if scale > 1 else ""))
    return runner.run()


class _Runner:
    def __init__(self, settings: SimulatorSettings, city: City, seed: int, start_ms: int | None,
                 speed: float, scenario: Scenario | None, stop: threading.Event,
                 duration_s: float | None) -> None:
        self.settings = settings
        self.city = city
        self.root = settings.mqtt.root
        self.seed = seed
        # Without a start, the simulated clock starts at the wall-clock time the devices are
        # all online (a live exhibit: simulated time is real time).
        self.start_now = start_ms is None
        self.start_ms = wall_ms() if start_ms is None else start_ms
        self.every_ms = interval_ms(settings.interval_s)
        self.stop = stop
        self.duration_s = duration_s
        self.replay = f"--seed {seed}"
        self.own_scenario = scenario
        self.sim = Simulation(city, seed, self.root, scenario)
        self.clock = SimClock(self.start_ms, speed)
        self.network = Network(settings.mqtt)
        self.commands: list[tuple[str, bytes]] = []
        self.last_command: control.CommandResult | None = None
        self.published = 0
        self.next_ms = self.start_ms
        self.mode = control.Clock.ENGINEER
        self.last_stamp_ms = 0
        self.returned = False
        _raise_file_limit(len(self.sim.devices) + 64)
        prefix = f"sim-{self.root.replace('/', '-')}"
        self.links: dict[str, Link] = {}
        self.status_topics: dict[str, str] = {}
        for ref in self.sim.devices:
            status = status_topic(ref.domain, ref.device_id, self.root)
            topic = self.status_topics[ref.device_id] = str(status)
            self.links[ref.device_id] = self.network.add(Link(
                self.network, f"{prefix}-{ref.device_id}", will=(status, OFFLINE_WILL),
                on_connect=_announce_online(topic)))
        self.state_topic = str(control.state_topic(self.root))
        self.control = self.network.add(Link(
            self.network, f"simctl-{self.root.replace('/', '-')}",
            will=(control.state_topic(self.root), control.encode_state(control.STOPPED)),
            on_connect=self._control_connected, on_message=self._command_received))

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        try:
            if not self._wait_connected():
                return 0 if self.stop.is_set() else 1
            self._publish_state()
            self._loop()
            return 0
        finally:
            self._shut_down()

    def _wait_connected(self) -> bool:
        s = self.settings.mqtt
        started = time.monotonic()
        deadline = None
        if self.duration_s is not None and math.isfinite(self.clock.speed):
            deadline = started + self.duration_s / self.clock.speed
        warned = False
        while not self.network.all_connected():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                log.error("gave up: the broker at %s:%d did not accept every device in time",
                          s.host, s.port)
                return False
            if not warned and now - started > 5:
                log.warning("waiting for the broker at %s:%d", s.host, s.port)
                warned = True
            if self.stop.is_set():
                return False
            self.network.poll(0.05)
        log.info("all %d devices connected and online", len(self.links))
        if self.start_now:
            self.start_ms = self.next_ms = wall_ms()
        # The clock starts now: time spent connecting is not simulated time lost.
        self.clock.jump(self.start_ms)
        log.info("simulated clock starts at %s; the same readings again: smartcity simulate "
                 "%s --start %s", format_ts(self.start_ms), self.replay,
                 format_ts(self.start_ms))
        return True

    def _loop(self) -> None:
        network, clock = self.network, self.clock
        max_unacked = MAX_UNACKED_PER_DEVICE * len(self.links)
        next_state, next_stats = time.monotonic(), time.monotonic() + STATS_EVERY_S
        while not self.stop.is_set():
            if self.commands:
                self._apply_commands()
            if self.duration_s is not None and \
                    self.next_ms >= self.start_ms + round(self.duration_s * 1000):
                return
            now = time.monotonic()
            if now >= next_state:
                next_state = now + STATE_EVERY_S
                self._publish_state()
                self._beat()
            if now >= next_stats:
                next_stats = now + STATS_EVERY_S
                self._log_stats()
            due = clock.wall_at(self.next_ms)
            if due > now:
                network.poll(min(due - now, POLL_MAX_S))
                continue
            if network.pending() > max_unacked:  # the broker is behind: let it catch up
                network.poll(0.005)
                continue
            if math.isfinite(due) and now - due > CATCH_UP_S:
                self._skip_ahead(now - due)
            scenario = self.sim.scenario_name
            for m in self.sim.step(self.next_ms, self._stamp()):
                self.published += self.links[m.device_id].publish(m.topic.value, m.payload)
            self.next_ms += self.every_ms
            if self.returned:  # the state says the new simulated time at once
                self.returned = False
                self._publish_state()
            if self.sim.scenario_name != scenario:
                log.info("scenario %s ended at %s", scenario, format_ts(self.next_ms))
                if self.mode is control.Clock.EXHIBIT:
                    self._return_to_now()
                self._publish_state()
            network.poll(0)

    def _stamp(self) -> int | None:
        """The ``ts`` of this tick's readings: none of its own on the engineers' clock; the
        wall clock on the exhibit's, a millisecond apart at least, so a fast story's ticks
        never overwrite each other in the database."""
        if self.mode is not control.Clock.EXHIBIT:
            return None
        self.last_stamp_ms = max(wall_ms(), self.last_stamp_ms + 1)
        return self.last_stamp_ms

    def _return_to_now(self) -> None:
        """The city at the wall clock's time again: no scenario, speed 1, running."""
        now = wall_ms()
        self.sim.return_to(now)
        self.clock.set_speed(1.0, floor_ms=now)
        self.clock.resume()
        self.clock.jump(now)
        self.next_ms = now
        self.returned = True
        log.info("the city is back to now (%s) at speed 1", format_ts(now))

    def _skip_ahead(self, late_s: float) -> None:
        skipped = int(late_s * 1000 * self.clock.speed // self.every_ms)
        log.warning("%.0fs behind schedule; skipping %d ticks (the readings now differ from "
                    "a replay of this seed)", late_s, skipped)
        self.next_ms += skipped * self.every_ms

    def _log_stats(self) -> None:
        links = self.network.links
        log.info("published %d readings; simulated time %s; %d unacknowledged, %d dropped",
                 self.published, format_ts(self.sim.last_ms or self.start_ms),
                 sum(x.pending for x in links), sum(x.dropped for x in links))

    def _shut_down(self) -> None:
        network = self.network
        for device_id, link in self.links.items():
            if link.connected:
                link.publish(self.status_topics[device_id], _status(DeviceState.OFFLINE),
                             retain=True)
        if self.control.connected:
            self.control.publish(self.state_topic,
                                 control.encode_state(self._state(running=False)), retain=True)
        # Readings already handed to paho are worth waiting for, but not for ever.
        give_up = time.monotonic() + SHUTDOWN_TIMEOUT_S
        while (pending := network.pending()) and time.monotonic() < give_up:
            network.poll(0.02)
        if pending:
            log.warning("stopping with %d messages unacknowledged", pending)
        network.close()
        log.info("stopped after %d readings", self.published)

    # --- control -----------------------------------------------------------------------

    def _control_connected(self, link: Link) -> None:
        for topic in control.command_topics(self.root):
            link.subscribe(topic)
        self._publish_state()

    def _command_received(self, link: Link, topic: str, payload: bytes) -> None:
        self.commands.append((topic, payload))  # applied between ticks, by the loop

    def _apply_commands(self) -> None:
        commands, self.commands = self.commands, []
        for topic, payload in commands:
            try:
                body = control.parse_command(topic, payload, self.root)
            except ContractError as e:
                log.warning("ignored a control message on %s: %s", topic, e)
                self.last_command = control.CommandResult(command=topic, ok=False,
                                                          detail=str(e))
            else:
                self.last_command = self._apply(body)
            self._publish_state()

    def _apply(self, body: control.ControlBody) -> control.CommandResult:
        command = control.command_of(body)
        at = self.sim.last_ms if self.sim.last_ms is not None else self.start_ms
        detail = ""
        try:
            if isinstance(body, control.StartScenario):
                self.sim.start_scenario(self._scenario(body.name))
                if body.clock is not None:
                    self.mode = body.clock
                detail = f"scenario {body.name} started on the {self.mode.value} clock"
            elif isinstance(body, control.StopScenario):
                detail = (f"scenario {self.sim.scenario_name} stopped"
                          if self.sim.scenario_name else "no scenario was running")
                if self.mode is control.Clock.EXHIBIT:
                    self._return_to_now()
                    detail += "; back to now"
                else:
                    self.sim.stop_scenario()
            elif isinstance(body, control.ResetClock):
                self._return_to_now()
                detail = "clock reset: back to now at speed 1"
            elif isinstance(body, control.SetSpeed):
                self.clock.set_speed(body.speed, floor_ms=at)
                detail = f"speed {body.speed:g}"
            elif isinstance(body, control.Pause):
                self.clock.pause(floor_ms=at)
                detail = "paused"
            elif isinstance(body, control.Resume):
                self.clock.resume()
                detail = "resumed"
        except ContractError as e:
            log.warning("control: %s failed: %s", command.value, e)
            return control.CommandResult(id=body.id, command=command.value, ok=False,
                                         detail=str(e))
        log.info("control: %s at simulated time %s", detail, format_ts(at))
        return control.CommandResult(id=body.id, command=command.value, ok=True, detail=detail)

    def _scenario(self, name: str) -> Scenario:
        if self.own_scenario is not None and name == self.own_scenario.name:
            return self.own_scenario
        if name not in builtin_names():
            known = ", ".join(builtin_names())
            raise ContractError(f"unknown scenario {name!r}", [FieldProblem(
                "name", f"not a built-in scenario ({known}) nor the one this simulator "
                        "was started with")])
        return load_scenario(name, self.city)

    def _state(self, running: bool = True) -> control.SimulatorState:
        t = self.sim.timeline
        speed = self.clock.speed
        return control.SimulatorState(
            running=running, clock=self.mode, scenario=self.sim.scenario_name,
            scenario_started=t.start_ms if t else None, scenario_ends=t.end_ms if t else None,
            sim_time=self.sim.last_ms, speed=speed if math.isfinite(speed) else None,
            paused=self.clock.paused, seed=self.seed, start=self.start_ms,
            interval_s=self.settings.interval_s, devices=len(self.links),
            scale=self.city.scale, updated=wall_ms(), last_command=self.last_command)

    def _beat(self) -> None:
        """A file the container healthcheck reads: fresh while the loop turns, saying how many
        devices are connected to the broker."""
        connected = sum(1 for link in self.links.values() if link.connected)
        body = {"ts": format_ts(wall_ms()), "connected": self.control.connected,
                "devices": len(self.links), "devices_connected": connected,
                "published": self.published}
        path = self.settings.heartbeat_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(body))
            tmp.replace(path)
        except OSError as e:
            log.warning("cannot write the heartbeat %s: %s", path, e)

    def _publish_state(self) -> None:
        if self.control.connected:
            self.control.publish(self.state_topic, control.encode_state(self._state()),
                                 retain=True)


def _announce_online(topic: str) -> Callable[[Link], None]:
    def announce(link: Link) -> None:
        # Again after every reconnection: the broker may have published the will meanwhile.
        link.publish(topic, _status(DeviceState.ONLINE), retain=True)

    return announce


def _status(state: DeviceState) -> bytes:
    # A status is about the connection, a real-world event: wall-clock time.
    return dump(DeviceStatus(state=state, ts=wall_ms()))


def _raise_file_limit(wanted: int) -> None:
    """One socket per device: lift the soft limit on open files as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning("only %d open files allowed, %d devices want one each", new, wanted)


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop``; return a function restoring the old handlers.

    Python only lets the main thread install handlers, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore
