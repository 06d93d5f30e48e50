"""The control contract and the simulated clock, without a broker."""

from __future__ import annotations

import math

import orjson
import pytest

from simulators.clock import SimClock, parse_speed, parse_start
from simulators.scenarios import load_scenario
from simulators.simulation import Simulation
from smartcity.city import load_city
from smartcity.control import (
    Command,
    Pause,
    SetSpeed,
    SimulatorState,
    StartScenario,
    command_of,
    command_topic,
    decode_state,
    encode_command,
    encode_state,
    parse_command,
    state_topic,
)
from smartcity.durations import parse_duration
from smartcity.errors import ContractError, InvalidPayload

# --- the clock ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), (1.5, 1.5), ("45s", 45.0), ("30m", 1800.0), ("1h30m", 5400.0),
    ("2d", 172_800.0), ("1h 30m", 5400.0), ("0.5h", 1800.0), ("0s", 0.0), ("5", 5.0),
    ("2.5", 2.5)])
def test_durations_as_people_write_them(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "1x", "-5m", "-5", -1, True, None,
                                  "1h-30m", float("inf")])
def test_what_is_not_a_duration(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_start_times_default_to_ho_chi_minh_city_time() -> None:
    assert parse_start("2025-10-20T14:00") == parse_start("2025-10-20T07:00:00Z")
    assert parse_start("2025-10-20T14:00+07:00") == parse_start("2025-10-20T14:00")
    assert parse_start("1760943600000") == 1_760_943_600_000
    for bad in ("yesterday", "1999-01-01T00:00Z", "12"):
        with pytest.raises(ValueError):
            parse_start(bad)


def test_speeds() -> None:
    assert parse_speed("60") == 60 and parse_speed("max") == parse_speed("inf") == math.inf
    for bad in ("0", "-1", "fast", "1e9"):
        with pytest.raises(ValueError):
            parse_speed(bad)


class FakeWall:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_clock_runs_at_its_speed_pauses_and_resumes_without_jumps() -> None:
    wall = FakeWall()
    clock = SimClock(start_ms=0, speed=60, wall=wall)
    wall.t += 1
    assert clock.now_ms() == 60_000
    assert clock.wall_at(120_000) == wall.t + 1

    clock.pause(floor_ms=0)
    wall.t += 100
    assert clock.now_ms() == 60_000 and clock.wall_at(120_000) == math.inf
    clock.resume()
    wall.t += 0.5
    assert clock.now_ms() == 90_000

    clock.set_speed(1, floor_ms=0)
    wall.t += 2
    assert clock.now_ms() == 92_000

    clock.set_speed(math.inf, floor_ms=0)
    assert clock.wall_at(10**12) == -math.inf
    clock.set_speed(2, floor_ms=500_000)  # at infinite speed only the caller knows where
    wall.t += 1                            # the simulation has got to
    assert clock.now_ms() == 502_000


# --- commands and state ------------------------------------------------------------------

@pytest.mark.parametrize(("command", "topic"), [
    (Command.START, "r/city/control/scenario/start"),
    (Command.STOP, "r/city/control/scenario/stop"),
    (Command.SPEED, "r/city/control/speed"), (Command.PAUSE, "r/city/control/pause"),
    (Command.RESUME, "r/city/control/resume"), (Command.RESET, "r/city/control/clock/reset")])
def test_command_topics(command: Command, topic: str) -> None:
    assert str(command_topic(command, "r/city")) == topic
    assert str(state_topic("r/city")) == "r/city/control/state"


def test_commands_round_trip() -> None:
    for body in (StartScenario(name="king-tide-storm", id="abc"), SetSpeed(speed=60), Pause()):
        topic = str(command_topic(command_of(body), "city"))
        assert parse_command(topic, encode_command(body), "city") == body
    assert parse_command("city/control/pause", b"", "city") == Pause()


@pytest.mark.parametrize(("topic", "payload", "field"), [
    ("city/control/scenario/start", b"{}", "name"),
    ("city/control/scenario/start", b'{"name": "King Tide"}', "name"),
    ("city/control/speed", b'{"speed": 0}', "speed"),
    ("city/control/speed", b'{"speed": "fast"}', "speed"),
    ("city/control/pause", b'{"for": 10}', "for"),
    ("city/control/pause", b"pause!", "payload"),
    ("city/control/explode", b"{}", "topic"),
])
def test_bad_commands_name_the_field(topic: str, payload: bytes, field: str) -> None:
    with pytest.raises(ContractError) as e:
        parse_command(topic, payload, "city")
    assert e.value.problems[0].field == field
    if field != "topic":
        assert isinstance(e.value, InvalidPayload)


def test_the_state_round_trips_with_rfc3339_times_and_extrapolates_simulated_time() -> None:
    state = SimulatorState(running=True, scenario="rush-hour", sim_time=1_760_943_600_000,
                           speed=60, updated=1_800_000_000_000, seed=1)
    wire = orjson.loads(encode_state(state))
    assert wire["sim_time"] == "2025-10-20T07:00:00.000Z"
    assert decode_state(encode_state(state)) == state
    assert state.sim_time_at(1_800_000_001_000) == 1_760_943_660_000
    paused = state.model_copy(update={"paused": True})
    assert paused.sim_time_at(1_800_000_001_000) == 1_760_943_600_000
    assert decode_state(b'{"running": false}').sim_time_at(0) is None
    with pytest.raises(InvalidPayload):
        decode_state(b'{"running": "yes please"}')


# --- starting and stopping a scenario in the pure core ------------------------------------

def test_a_scenario_started_mid_run_begins_at_the_current_simulated_time() -> None:
    city = load_city()
    storm = load_scenario("king-tide-storm", city)
    start = parse_start("2025-10-20T10:00")
    sim, plain = Simulation(city, 2), Simulation(city, 2)
    for k in range(10):
        assert sim.step(start + k * 60_000) == plain.step(start + k * 60_000)

    sim.start_scenario(storm)
    assert sim.timeline is not None and sim.timeline.start_ms == start + 9 * 60_000
    assert sim.scenario_name == "king-tide-storm"
    sim.stop_scenario()
    assert sim.timeline is None and sim.scenario_name is None

    before = Simulation(city, 2, scenario=storm)  # given up front: from the first step
    before.step(start)
    assert before.timeline is not None and before.timeline.start_ms == start


def test_a_scenario_ends_by_itself() -> None:
    city = load_city()
    faults = load_scenario("sensor-faults", city)  # two hours
    sim = Simulation(city, 2, scenario=faults)
    start = parse_start("2025-10-20T10:00")
    sim.step(start)
    sim.step(start + 7_199_000)
    assert sim.scenario_name == "sensor-faults"
    sim.step(start + 7_200_000)
    assert sim.scenario_name is None
