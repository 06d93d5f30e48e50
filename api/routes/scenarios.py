"""Scenarios and the running simulation: the exhibit floor's remote control.

Reads are public; commands need the admin token and are published to the simulator on
``{root}/control/...`` (QoS 1). A 202 means the broker has the command; whether the
simulator applied it shows in ``last_command`` of ``GET /api/v1/simulation`` a moment later.
"""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Path, Query

from api.deps import AdminDep, LinkDep, ServicesDep, invalid, now_ms
from api.link import MqttLink, NotPublished
from api.models.base import Problem
from api.models.scenarios import CommandAccepted, ScenarioInfo, ScenarioList, Simulation, SpeedIn
from simulators.scenarios import builtin_names, load_scenario
from smartcity.control import (
    Clock,
    ControlBody,
    Pause,
    ResetClock,
    Resume,
    SetSpeed,
    SimulatorState,
    StartScenario,
    StopScenario,
    command_of,
    command_topic,
    encode_command,
)
from smartcity.errors import ContractError
from smartcity.ids import ID_PATTERN, check_id
from smartcity.models import format_ts

router = APIRouter(tags=["scenarios"])

COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong admin token"},
    409: {"model": Problem, "description": "no simulator is running under this root"},
    503: {"model": Problem, "description": "admin endpoints disabled (no admin token "
                                           "configured) or the MQTT broker unreachable"},
}


def _ts(ms: int | None) -> str | None:
    return format_ts(ms) if ms is not None else None


def simulation_of(state: SimulatorState | None, wall_ms: int) -> Simulation:
    if state is None:
        return Simulation(running=False)
    return Simulation(
        running=state.running, clock=state.clock, scenario=state.scenario,
        scenario_started=_ts(state.scenario_started), scenario_ends=_ts(state.scenario_ends),
        sim_time=_ts(state.sim_time), sim_time_now=_ts(state.sim_time_at(wall_ms)),
        speed=state.speed, paused=state.paused, seed=state.seed, start=_ts(state.start),
        interval_s=state.interval_s, devices=state.devices, scale=state.scale,
        updated=_ts(state.updated), last_command=state.last_command)


@functools.cache
def catalogue() -> list[ScenarioInfo]:
    out = []
    for name in builtin_names():
        s = load_scenario(name)
        out.append(ScenarioInfo(name=name, description=s.description, duration_s=s.length_s))
    return out


@router.get("/api/v1/scenarios", summary="The built-in scenarios, and what the simulator "
                                         "is running")
def list_scenarios(status: LinkDep) -> ScenarioList:
    return ScenarioList(scenarios=catalogue(),
                        simulation=simulation_of(status.simulator(), now_ms()))


@router.get("/api/v1/simulation", summary="The simulator's state: scenario, simulated time, "
                                          "speed")
def get_simulation(status: LinkDep) -> Simulation:
    return simulation_of(status.simulator(), now_ms())


async def _send(services: ServicesDep, body: ControlBody) -> CommandAccepted:
    status: MqttLink = services.link
    root = services.settings.mqtt.root
    if not status.connected:
        raise HTTPException(503, f"not connected to the MQTT broker {status.broker}; try "
                                 "again later", headers={"Retry-After": "5"})
    state = status.simulator()
    if state is None or not state.running:
        raise HTTPException(409, f"no simulator is running under {root}/ (none reports on "
                                 f"{root}/control/state): start one with smartcity simulate")
    if services.attract is not None:
        services.attract.touch()  # an operator at the controls: the attract loop gives way
    command = command_of(body)
    topic = str(command_topic(command, root))
    try:
        await anyio.to_thread.run_sync(status.publish, topic, encode_command(body))
    except NotPublished as e:
        raise HTTPException(503, f"the command was not delivered: {e}",
                            headers={"Retry-After": "5"}) from None
    return CommandAccepted(id=body.id or "", command=command.value, topic=topic,
                           payload=body.model_dump(mode="json", exclude_none=True))


def _id() -> str:
    return uuid.uuid4().hex[:12]


@router.post("/api/v1/scenarios/{name}/start", status_code=202,
             summary="Start a built-in scenario now (replacing the one running)",
             responses={404: {"model": Problem, "description": "unknown scenario"},
                        **COMMAND_ERRORS})
async def start_scenario(
    name: Annotated[str, Path(description=f"a built-in scenario, {ID_PATTERN}",
                              examples=["king-tide-storm"])],
    services: ServicesDep, _: AdminDep,
    clock: Annotated[Clock, Query(description="exhibit (the default): readings carry the "
                                  "wall-clock time while the story plays compressed; "
                                  "engineer: readings carry the story's simulated time")
                     ] = Clock.EXHIBIT,
) -> CommandAccepted:
    try:
        check_id(name, "name")
    except ContractError as e:
        invalid(e, "path", {"name": name})
    if name not in builtin_names():
        raise HTTPException(404, f"unknown scenario {name!r}; GET /api/v1/scenarios lists them")
    return await _send(services, StartScenario(name=name, clock=clock, id=_id()))


@router.post("/api/v1/scenarios/stop", status_code=202,
             summary="Stop the running scenario (the city goes back to normal; on the "
                     "exhibit clock, back to now at speed 1)",
             responses=COMMAND_ERRORS)
async def stop_scenario(services: ServicesDep, _: AdminDep) -> CommandAccepted:
    return await _send(services, StopScenario(id=_id()))


@router.post("/api/v1/simulation/speed", status_code=202,
             summary="Change the simulated clock's speed", responses=COMMAND_ERRORS)
async def set_speed(body: Annotated[SpeedIn, Body()], services: ServicesDep,
                    _: AdminDep) -> CommandAccepted:
    return await _send(services, SetSpeed(speed=body.speed, id=_id()))


@router.post("/api/v1/simulation/pause", status_code=202,
             summary="Pause the simulated clock (devices stay online)", responses=COMMAND_ERRORS)
async def pause(services: ServicesDep, _: AdminDep) -> CommandAccepted:
    return await _send(services, Pause(id=_id()))


@router.post("/api/v1/simulation/resume", status_code=202,
             summary="Resume the simulated clock", responses=COMMAND_ERRORS)
async def resume(services: ServicesDep, _: AdminDep) -> CommandAccepted:
    return await _send(services, Resume(id=_id()))



@router.post("/api/v1/simulation/reset", status_code=202,
             summary="Reset the clock: the city back to now, at speed 1, no scenario",
             responses=COMMAND_ERRORS)
async def reset_clock(services: ServicesDep, _: AdminDep) -> CommandAccepted:
    return await _send(services, ResetClock(id=_id()))
