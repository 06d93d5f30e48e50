"""Replays of the built-in recordings, started from the exhibit floor like a scenario.

A replay republishes a recording on the broker, shifted to now (``--rebase-time``) and onto
this api's topic root, so the screens, ingest and rules see it as they saw the original;
replayed readings carry ``source: replayed``. One replay runs at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam

from api.deps import AdminDep, ServicesDep
from api.models.base import Problem
from api.models.replays import Recording, Replays, ReplayState
from api.replaying import ReplaySlot
from recorder.builtin import builtin_recordings
from recorder.fileformat import RecordingError
from recorder.reading import RecordingReader
from recorder.replay import Replayer, ReplayOptions, ReplayStatus
from recorder.selection import Remap, Selection
from smartcity.ids import ID_PATTERN, is_valid_id

router = APIRouter(prefix="/api/v1/replays", tags=["replays"])

RECORDED_ROOT = "city"  # the root the built-in recordings were made under


def _describe(name: str, path: Path) -> Recording:
    with RecordingReader(path) as reader:
        summary = reader.summary()
    span = ((summary.last_ns or 0) - (summary.first_ns or 0)) / 1e9
    return Recording(name=name, messages=summary.records, span_s=round(span, 3))


def _current(slot: ReplaySlot) -> ReplayState | None:
    if slot.replayer is None or slot.name is None:
        return None
    return _state(slot.name, slot.replayer.status())


def _state(name: str, s: ReplayStatus) -> ReplayState:
    return ReplayState(name=name, state=s.state, speed=s.speed, sent=s.sent,
                       passes_done=s.passes_done, position_s=round(s.position_s, 3),
                       span_s=round(s.span_s, 3), late_p99_ms=round(s.late_p99_ms, 2),
                       error=s.error, lost=s.lost)


@router.get("", summary="Built-in recordings and the replay that is running")
async def list_replays(services: ServicesDep) -> Replays:
    recordings = [_describe(n, p) for n, p in builtin_recordings().items()]
    return Replays(recordings=recordings, replay=_current(services.replays))


@router.post("/{name}/start", status_code=202, summary="Replay a built-in recording (admin)",
             responses={404: {"model": Problem, "description": "unknown recording"},
                        409: {"model": Problem, "description": "a replay is running"}})
async def start_replay(
    name: Annotated[str, PathParam(description=f"recording name, {ID_PATTERN}")],
    services: ServicesDep, _: AdminDep,
    speed: Annotated[float, Query(gt=0, le=10_000, description="time factor")] = 1.0,
    loop: Annotated[bool, Query(description="start again at the end, until stopped")] = False,
) -> ReplayState:
    known = builtin_recordings()
    if not is_valid_id(name) or name not in known:
        raise HTTPException(404, f"unknown recording {name!r}; known: "
                                 f"{', '.join(known) or 'none'}")
    slot = services.replays
    root = services.settings.mqtt.root
    remaps = (Remap(RECORDED_ROOT, root),) if root != RECORDED_ROOT else ()
    with slot.lock:
        if slot.running():
            raise HTTPException(409, f"replay {slot.name!r} is running; "
                                     "POST /api/v1/replays/stop first")
        try:
            replayer = Replayer(known[name], services.settings.mqtt, ReplayOptions(
                speed=speed, loop=loop, rebase_time=True, selection=Selection(remaps=remaps)))
        except RecordingError as e:
            raise HTTPException(500, f"recording {name!r} is unreadable: {e}") from e
        replayer.start()
        slot.name, slot.replayer = name, replayer
    return _state(name, replayer.status())


@router.post("/stop", summary="Stop the running replay (admin)",
             responses={409: {"model": Problem, "description": "no replay is running"}})
async def stop_replay(services: ServicesDep, _: AdminDep) -> ReplayState:
    slot = services.replays
    if not slot.running() or slot.replayer is None or slot.name is None:
        raise HTTPException(409, "no replay is running")
    await anyio.to_thread.run_sync(slot.stop)
    return _state(slot.name, slot.replayer.status())
