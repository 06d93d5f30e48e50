"""Rehearsals of the built-in recordings: the alert timeline the rules tell over each.

``GET`` rehearses with the rules in force (``SMARTCITY_RULES_FILE``, the rules service's
file); ``POST`` with a rule file in the body rehearses that too and says what it adds, drops
or moves. Reading only, so public like every read endpoint; a rehearsal is a fraction of a
second of CPU, so they run one at a time off the event loop and the body is capped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse

from api.deps import ServicesDep
from api.models.base import Problem
from api.models.rehearsals import RehearsalResult, Timeline
from recorder.builtin import builtin_recordings
from rules.rehearsal import Rehearsal, compare, rehearse
from smartcity.city import load_city
from smartcity.ids import ID_PATTERN, is_valid_id
from smartcity.rulefile import RuleFileError, RuleSet, default_rules_file, load_rules, parse_rules

router = APIRouter(tags=["rehearsals"])

MAX_RULES_BYTES = 64 * 1024
_one_at_a_time = anyio.CapacityLimiter(1)


def _recording(name: str) -> Path:
    known = builtin_recordings()
    if not is_valid_id(name) or name not in known:
        raise HTTPException(404, f"unknown recording {name!r}; known: "
                                 f"{', '.join(known) or 'none'}")
    return known[name]


@lru_cache(maxsize=16)
def _in_force(path: Path, city_file: Path | None, scale: int,
              rules_file: Path | None) -> Rehearsal:
    # The recordings, the city and the rule file do not change while the api runs.
    return rehearse(path, load_rules(rules_file), load_city(city_file, scale=scale))


def _rehearse_given(path: Path, rules: RuleSet, city_file: Path | None,
                    scale: int) -> Rehearsal:
    return rehearse(path, rules, load_city(city_file, scale=scale))


Name = Annotated[str, PathParam(description=f"built-in recording, {ID_PATTERN}")]


UNKNOWN = {"model": Problem, "description": "unknown recording"}


@router.get("/api/v1/recordings/{name}/rehearsal",
            summary="The alert timeline the rules in force tell over a built-in recording",
            responses={404: UNKNOWN})
async def rehearsal(name: Name, services: ServicesDep) -> RehearsalResult:
    path, s = _recording(name), services.settings
    base = await anyio.to_thread.run_sync(_in_force, path, s.city_file, s.scale, s.rules_file,
                                          limiter=_one_at_a_time)
    return RehearsalResult(recording=name, in_force=Timeline.of("in force", base))


@router.post("/api/v1/recordings/{name}/rehearsal",
             summary="Rehearse a built-in recording with the rule file in the body (TOML), "
                     "beside the rules in force", responses={404: UNKNOWN})
async def rehearsal_with(name: Name, services: ServicesDep, request: Request
                         ) -> RehearsalResult:
    path, s = _recording(name), services.settings
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_RULES_BYTES:
            raise HTTPException(413, f"a rule file is at most {MAX_RULES_BYTES} bytes")
    try:
        given_rules = parse_rules(body.decode("utf-8"), "body")
    except UnicodeDecodeError:
        raise HTTPException(422, "the rule file must be UTF-8 text") from None
    except RuleFileError as e:
        raise HTTPException(422, str(e)) from None
    base = await anyio.to_thread.run_sync(_in_force, path, s.city_file, s.scale, s.rules_file,
                                          limiter=_one_at_a_time)
    try:
        given = await anyio.to_thread.run_sync(_rehearse_given, path, given_rules,
                                               s.city_file, s.scale, limiter=_one_at_a_time)
    except RuleFileError as e:  # valid alone, but not against this city (a site override)
        raise HTTPException(422, str(e)) from None
    return RehearsalResult(recording=name, in_force=Timeline.of("in force", base),
                           given=Timeline.of("given", given),
                           differences=compare(base.steps, given.steps))


@router.get("/api/v1/rules/file", response_class=PlainTextResponse,
            summary="The rule file in force (TOML), to edit and rehearse")
def rule_file(services: ServicesDep) -> str:
    return (services.settings.rules_file or default_rules_file()).read_text(encoding="utf-8")
