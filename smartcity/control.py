"""The control contract: commands to the simulators on ``{root}/control/...`` and the state
they report back.

Commands (QoS 1, not retained, JSON objects; ``id`` is optional and echoed in the state):

- ``{root}/control/scenario/start``  ``{"name": "king-tide-storm", "id": "..."}``
- ``{root}/control/scenario/stop``   ``{"id": "..."}``
- ``{root}/control/speed``           ``{"speed": 60, "id": "..."}``
- ``{root}/control/pause``           ``{"id": "..."}``
- ``{root}/control/resume``          ``{"id": "..."}``
- ``{root}/control/clock/reset``     ``{"id": "..."}``: the city back to now (any scenario
  stopped, speed 1, running)

Two clocks (``clock`` in a start command chooses, the state says which runs): the exhibit
clock stamps readings with the wall-clock time and plays a scenario's story compressed
beside it (``sim_time`` is the story's time, for display); the engineers' clock stamps
readings with the simulated time, so a seeded run gives byte-identical streams.

State: ``{root}/control/state``, retained, published by the simulator on every change and
every few seconds; its last will is ``{"running": false}``. One simulator per root.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from smartcity.codec import problems_of
from smartcity.errors import ContractError, FieldProblem, InvalidPayload
from smartcity.ids import Id
from smartcity.models import EpochMs, format_ts
from smartcity.topics import DEFAULT_ROOT, Topic, control_topic

MAX_SPEED = 100_000.0
Time = Annotated[EpochMs, PlainSerializer(format_ts, return_type=str, when_used="json")]


class Command(StrEnum):
    START = "scenario/start"
    STOP = "scenario/stop"
    SPEED = "speed"
    PAUSE = "pause"
    RESUME = "resume"
    RESET = "clock/reset"


class Clock(StrEnum):
    """What a reading's ``ts`` is: the wall clock (exhibit) or the simulated time (engineers)."""

    EXHIBIT = "exhibit"
    ENGINEER = "engineer"


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, max_length=64, description="echoed in the state")


class StartScenario(_Body):
    name: Id = Field(description="a built-in scenario, or one the simulator was started with")
    clock: Clock | None = Field(default=None, description="switch to this clock; "
                                                          "null: keep the one running")


class StopScenario(_Body):
    pass


class SetSpeed(_Body):
    speed: float = Field(gt=0, le=MAX_SPEED, description="simulated seconds per second")


class Pause(_Body):
    pass


class Resume(_Body):
    pass


class ResetClock(_Body):
    pass


ControlBody = StartScenario | StopScenario | SetSpeed | Pause | Resume | ResetClock
BODIES: dict[Command, type[ControlBody]] = {
    Command.START: StartScenario, Command.STOP: StopScenario, Command.SPEED: SetSpeed,
    Command.PAUSE: Pause, Command.RESUME: Resume, Command.RESET: ResetClock,
}


def command_topic(command: Command, root: str = DEFAULT_ROOT) -> Topic:
    return control_topic(*command.value.split("/"), root=root)


def command_topics(root: str = DEFAULT_ROOT) -> dict[str, Command]:
    """Topic string -> command, for a simulator's subscriptions."""
    return {str(command_topic(c, root)): c for c in Command}


def state_topic(root: str = DEFAULT_ROOT) -> Topic:
    return control_topic("state", root=root)


def parse_command(topic: str, payload: bytes, root: str = DEFAULT_ROOT) -> ControlBody:
    """A command from its topic and payload; :class:`ContractError` naming the field at fault.
    An empty payload is an empty object."""
    command = command_topics(root).get(topic)
    if command is None:
        known = ", ".join(str(command_topic(c, root)) for c in Command)
        raise ContractError("unknown control topic", [FieldProblem(
            "topic", f"{topic[:80]!r} is not one of: {known}")])
    try:
        return BODIES[command].model_validate_json(payload or b"{}")
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise InvalidPayload("command is not valid JSON",
                                 [FieldProblem("payload", first["msg"])]) from None
        raise InvalidPayload(f"bad {command.value} command", problems_of(e)) from None


def command_of(body: ControlBody) -> Command:
    return next(c for c, model in BODIES.items() if isinstance(body, model))


def encode_command(body: ControlBody) -> bytes:
    return orjson.dumps(body.model_dump(mode="json", exclude_none=True))


class CommandResult(BaseModel):
    """What became of the last command the simulator received."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    command: str
    ok: bool
    detail: str = ""


class SimulatorState(BaseModel):
    """Retained on ``{root}/control/state``. ``sim_time`` is the simulated time of the last
    readings, as of ``updated`` (wall clock): while running unpaused, the simulated time
    now is about ``sim_time + (now - updated) * speed`` (:meth:`sim_time_at`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    running: bool
    clock: Clock | None = Field(default=None, description="exhibit: readings carry the "
                                "wall-clock time and sim_time is the story's; engineer: "
                                "readings carry sim_time")
    scenario: Id | None = None
    scenario_started: Time | None = Field(default=None, description="simulated time")
    scenario_ends: Time | None = Field(default=None, description="simulated time")
    sim_time: Time | None = None
    speed: float | None = Field(default=None, description="simulated seconds per second; "
                                                          "null: as fast as possible")
    paused: bool = False
    seed: int | None = None
    start: Time | None = Field(default=None, description="simulated time the run began at")
    interval_s: float | None = None
    devices: int | None = None
    scale: int | None = None
    updated: Time | None = Field(default=None, description="wall-clock time of this state")
    last_command: CommandResult | None = None

    def sim_time_at(self, wall_ms: int) -> int | None:
        if self.sim_time is None:
            return None
        if not self.running or self.paused or self.speed is None or self.updated is None:
            return self.sim_time
        return self.sim_time + round(max(0, wall_ms - self.updated) * self.speed)


STOPPED = SimulatorState(running=False)


def encode_state(state: SimulatorState) -> bytes:
    return orjson.dumps(state.model_dump(mode="json", exclude_defaults=True))


def decode_state(payload: bytes) -> SimulatorState:
    try:
        return SimulatorState.model_validate_json(payload)
    except ValidationError as e:
        raise InvalidPayload("simulator state does not match the contract",
                             problems_of(e)) from None
