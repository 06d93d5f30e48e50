"""The city description: wards, homes, road segments, flood sites, rain and tide gauges.

A versioned TOML file (the built-in one is ``simulators/cities/hcmc.toml``). Ids are ASCII
(they travel in topics and tags); names are Vietnamese display names, with optional English
ones for the bilingual screens. Every place hosts one sensor device whose id defaults to the
place's id. Besides where things are, the file holds what the simulators' physics needs: a
flood site's ground level and drainage, a road's lanes and length, the river's tide.

Version 2 added ``tide_gauges`` and the flood sites' physics; version 1 files still load.
"""

from __future__ import annotations

import contextvars
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from smartcity.errors import ContractError, FieldProblem
from smartcity.files import field_path, line_of, load_toml_model
from smartcity.ids import Id, is_valid_id
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain

# While load_city validates a file it checks cross-references itself, to name their lines.
_DEFER_REFERENCES = contextvars.ContextVar("defer_references", default=False)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Ward(_Strict):
    id: Id
    name: str
    name_en: str | None = None


class Place(_Strict):
    id: Id
    name: str
    name_en: str | None = None
    ward: Id
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    device: Id | None = Field(default=None, description="sensor device id; default: the id")

    @property
    def device_id(self) -> str:
        return self.device or self.id


class Home(Place):
    floor_area_m2: float = Field(default=60, gt=0)


class Road(Place):
    free_flow_kmh: float = Field(default=40, gt=0, le=120)
    lanes: int = Field(default=2, ge=1, le=12)
    length_m: float = Field(default=800, gt=0, le=20_000,
                            description="segment length; bounds the queue it can hold")
    connects: list[Id] = Field(default_factory=list, description="ids of adjoining segments")


class FloodSite(Place):
    warning_cm: float = Field(default=20, gt=0, description="depth at which streets are unsafe")
    ground_cm: float = Field(default=160, ge=-500, le=1000,
                             description="street level above the tide gauge's datum: the "
                                         "river overtops it at higher levels")
    catchment: float = Field(default=4, gt=0, le=50,
                             description="how much surrounding runoff gathers here: cm of "
                                         "water per cm of rain")
    drain_cm_h: float = Field(default=8, ge=0, le=200,
                              description="drainage capacity while the river is low")
    roads: list[Id] = Field(default_factory=list, description="road segments it floods")


class RainGauge(Place):
    pass


class TideGauge(Place):
    """A river gauge; the city's tide (one river) follows the first one."""

    mean_level_cm: float = Field(default=-10, ge=-500, le=500,
                                 description="mean river level above the datum")
    semidiurnal_cm: float = Field(default=100, ge=0, le=500,
                                  description="amplitude of the twice-daily tide")
    diurnal_cm: float = Field(default=35, ge=0, le=500,
                              description="amplitude of the daily inequality")


class City(_Strict):
    version: Literal[1, 2] = 2
    name: str
    name_en: str | None = None
    wards: list[Ward]
    homes: list[Home] = Field(default_factory=list)
    roads: list[Road] = Field(default_factory=list)
    flood_sites: list[FloodSite] = Field(default_factory=list)
    rain_gauges: list[RainGauge] = Field(default_factory=list)
    tide_gauges: list[TideGauge] = Field(default_factory=list)

    # Set by scaled(): which original place each copy stands for.
    _original: dict[str, str] = PrivateAttr(default_factory=dict)
    _scale: int = PrivateAttr(default=1)

    @model_validator(mode="after")
    def _references(self) -> City:
        if not _DEFER_REFERENCES.get():
            problems = self.reference_problems()
            if problems:
                loc, message = problems[0]
                raise ValueError(f"{field_path(loc)}: {message}")
        return self

    def reference_problems(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Unknown wards and roads, and ids used twice, each with where it is."""
        out: list[tuple[tuple[int | str, ...], str]] = []
        ward_ids = {w.id for w in self.wards}
        road_ids = {r.id for r in self.roads}
        seen: set[str] = set()
        for section, places in self.sections():
            for i, p in enumerate(places):
                if p.ward not in ward_ids:
                    out.append(((section, i, "ward"), f"unknown ward {p.ward!r}"))
                for ident in {p.id, p.device_id}:
                    if ident in seen:
                        out.append(((section, i, "id"), f"id {ident!r} is used twice"))
                    seen.add(ident)
                refs = (p.connects if isinstance(p, Road) else
                        p.roads if isinstance(p, FloodSite) else [])
                field = "connects" if isinstance(p, Road) else "roads"
                out.extend(((section, i, field), f"unknown road {other!r}")
                           for other in refs if other not in road_ids)
        return out

    def sections(self) -> list[tuple[str, list[Place]]]:
        return [("homes", list(self.homes)), ("roads", list(self.roads)),
                ("flood_sites", list(self.flood_sites)), ("rain_gauges", list(self.rain_gauges)),
                ("tide_gauges", list(self.tide_gauges))]

    @property
    def scale(self) -> int:
        return self._scale

    def original(self, place_id: str) -> str:
        """The id of the place of the city file that ``place_id`` copies (itself if none)."""
        return self._original.get(place_id, place_id)

    def registry(self) -> Registry:
        return Registry(
            DeviceInfo(device_id=p.device_id, domain=DOMAIN_OF[section], name=p.name,
                       name_en=p.name_en, ward=p.ward, site=p.id, lat=p.lat, lon=p.lon)
            for section, places in self.sections() for p in places
        )

    def scaled(self, n: int) -> City:
        """The city with ``n`` copies of every place, for load work: the first is the
        original, copy ``k`` (1 to n-1) has ids and device ids suffixed ``-x{k}`` and its roads
        and flood sites refer to the same copy's roads. Wards are shared."""
        if n < 1:
            raise ContractError("invalid scale", [FieldProblem("scale", f"{n} is below 1")])
        if n == 1:
            return self

        def suffix(ident: str, k: int, where: str) -> str:
            out = f"{ident}-x{k}"
            if not is_valid_id(out):
                raise ContractError("cannot scale the city", [FieldProblem(
                    where, f"{ident!r} with the copy suffix -x{k} is longer than 64 characters")])
            return out

        update: dict[str, list[Place]] = {}
        original: dict[str, str] = {}
        for section, places in self.sections():
            copies: list[Place] = []
            for k in range(1, n):
                for i, p in enumerate(places):
                    where = f"{section}[{i}]"
                    changes: dict[str, object] = {"id": suffix(p.id, k, where)}
                    if p.device:
                        changes["device"] = suffix(p.device, k, where)
                    if isinstance(p, Road):
                        changes["connects"] = [suffix(c, k, where) for c in p.connects]
                    if isinstance(p, FloodSite):
                        changes["roads"] = [suffix(r, k, where) for r in p.roads]
                    copies.append(p.model_copy(update=changes))
                    original[str(changes["id"])] = p.id
            update[section] = places + copies
        city = self.model_copy(update=update)
        city._original = original
        city._scale = n
        if problems := city.reference_problems():  # a copy's id taken by another place
            loc, message = problems[0]
            raise ContractError("cannot scale the city",
                                [FieldProblem(field_path(loc), message)])
        return city


DOMAIN_OF = {"homes": Domain.HOME, "roads": Domain.TRAFFIC, "flood_sites": Domain.FLOOD,
             "rain_gauges": Domain.WEATHER, "tide_gauges": Domain.FLOOD}


def default_city_path() -> Path:
    return Path(str(resources.files("simulators") / "cities" / "hcmc.toml"))


def load_city(path: Path | str | None = None, *, scale: int = 1) -> City:
    """Load and validate a city file, then :meth:`City.scaled` by ``scale``.

    A :class:`ContractError` names the file, and for each problem its line and field
    (``hcmc.toml:42: homes[2].ward: unknown ward 'x'``)."""
    file = Path(path) if path else default_city_path()
    token = _DEFER_REFERENCES.set(True)
    try:
        city = load_toml_model(file, City, "city file")
    finally:
        _DEFER_REFERENCES.reset(token)
    if problems := city.reference_problems():
        text = file.read_text(encoding="utf-8")
        out = []
        for loc, message in problems:
            line = line_of(text, loc)
            out.append(FieldProblem(f"{file.name}:{line}: {field_path(loc)}" if line
                                    else field_path(loc), message))
        raise ContractError(f"city file {file} is invalid", out)
    return city.scaled(scale)

