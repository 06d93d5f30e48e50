"""The city description: wards, homes, road segments, flood sites and rain gauges.

A versioned TOML file (the built-in one is ``simulators/cities/hcmc.toml``). Ids are ASCII
(they travel in topics and tags); names are Vietnamese display names, with optional English
ones for the bilingual screens. Every place hosts one sensor device whose id defaults to the
place's id.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartcity.errors import ContractError, FieldProblem
from smartcity.ids import Id
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain


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
    connects: list[Id] = Field(default_factory=list, description="ids of adjoining segments")


class FloodSite(Place):
    warning_cm: float = Field(default=20, gt=0, description="depth at which streets are unsafe")


class RainGauge(Place):
    pass


class City(_Strict):
    version: Literal[1] = 1
    name: str
    name_en: str | None = None
    wards: list[Ward]
    homes: list[Home] = Field(default_factory=list)
    roads: list[Road] = Field(default_factory=list)
    flood_sites: list[FloodSite] = Field(default_factory=list)
    rain_gauges: list[RainGauge] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> City:
        ward_ids = {w.id for w in self.wards}
        seen: set[str] = set()
        road_ids = {r.id for r in self.roads}
        for section, places in self.sections():
            for i, p in enumerate(places):
                where = f"{section}[{i}]"
                if p.ward not in ward_ids:
                    raise ValueError(f"{where}.ward: unknown ward {p.ward!r}")
                for ident in {p.id, p.device_id}:
                    if ident in seen:
                        raise ValueError(f"{where}: id {ident!r} is used twice")
                    seen.add(ident)
                if isinstance(p, Road):
                    for other in p.connects:
                        if other not in road_ids:
                            raise ValueError(f"{where}.connects: unknown road {other!r}")
        return self

    def sections(self) -> list[tuple[str, list[Place]]]:
        return [("homes", list(self.homes)), ("roads", list(self.roads)),
                ("flood_sites", list(self.flood_sites)), ("rain_gauges", list(self.rain_gauges))]

    def registry(self) -> Registry:
        domain_of = {"homes": Domain.HOME, "roads": Domain.TRAFFIC,
                     "flood_sites": Domain.FLOOD, "rain_gauges": Domain.WEATHER}
        return Registry(
            DeviceInfo(device_id=p.device_id, domain=domain_of[section], name=p.name,
                       name_en=p.name_en, ward=p.ward, site=p.id, lat=p.lat, lon=p.lon)
            for section, places in self.sections() for p in places
        )


def default_city_path() -> Path:
    return Path(str(resources.files("simulators") / "cities" / "hcmc.toml"))


def load_city(path: Path | str | None = None) -> City:
    """Load and validate a city file; errors name the file and the field at fault."""
    file = Path(path) if path else default_city_path()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ContractError(f"cannot read city file {file}", [FieldProblem("file", str(e))]) from e
    except tomllib.TOMLDecodeError as e:
        raise ContractError(f"city file {file} is not valid TOML",
                            [FieldProblem("file", str(e))]) from e
    try:
        return City.model_validate(data)
    except ValidationError as e:
        from smartcity.codec import problems_of

        raise ContractError(f"city file {file} is invalid", problems_of(e)) from None
