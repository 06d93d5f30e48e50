"""Scenarios, the running simulation and the commands to it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.models.base import ApiModel, Timestamp
from smartcity.control import MAX_SPEED, Clock, CommandResult


class ScenarioInfo(ApiModel):
    name: str = Field(examples=["king-tide-storm"])
    description: str
    duration_s: float = Field(description="how long the scenario runs, in simulated seconds")


class Simulation(ApiModel):
    """The simulator as it last reported itself (``{root}/control/state``)."""

    running: bool
    clock: Clock | None = Field(default=None, description="exhibit: readings carry the "
                                "wall-clock time, sim_time is the story's; engineer: "
                                "readings carry the simulated time")
    scenario: str | None = Field(default=None, description="the scenario running, if any")
    scenario_started: Timestamp | None = Field(default=None, description="simulated time")
    scenario_ends: Timestamp | None = Field(default=None, description="simulated time")
    sim_time: Timestamp | None = Field(default=None, description="simulated time of the "
                                                                  "latest readings")
    sim_time_now: Timestamp | None = Field(default=None, description="simulated time now, "
                                                                      "extrapolated at speed")
    speed: float | None = Field(default=None, description="simulated seconds per second; "
                                                          "null: as fast as possible")
    paused: bool = False
    seed: int | None = None
    start: Timestamp | None = Field(default=None, description="simulated time the run began")
    interval_s: float | None = None
    devices: int | None = None
    scale: int | None = None
    updated: Timestamp | None = Field(default=None, description="when it reported this")
    last_command: CommandResult | None = None


class ScenarioList(ApiModel):
    scenarios: list[ScenarioInfo]
    simulation: Simulation


class CommandAccepted(ApiModel):
    id: str = Field(description="echoed as last_command.id once the simulator applied it")
    command: str = Field(examples=["scenario/start"])
    topic: str = Field(examples=["city/control/scenario/start"])
    payload: dict[str, Any]


class SpeedIn(ApiModel):
    speed: float = Field(gt=0, le=MAX_SPEED, examples=[60],
                         description="simulated seconds per wall-clock second")
