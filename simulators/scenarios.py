"""Scenario files: a timeline of events in the city and faults in its sensors.

A scenario is a TOML file (the built-in ones are ``simulators/scenarios/*.toml``)::

    version = 1
    description = "A 90 mm/h storm meets a 1.75 m king tide"   # one line
    duration = "10h"            # optional: default, until the last event or fault ends
    random_rain = false         # optional: keep the weather's own showers out of the story

    [[events]]
    kind = "rain"
    at = "2h"                   # after the scenario starts
    duration = "90m"
    intensity_mm_h = 90

    [[faults]]
    kind = "stuck"
    devices = ["flood-thao-dien"]
    at = "1h"
    duration = "30m"

Events: ``rain`` (intensity_mm_h, optional wards); ``tide`` (peak_cm: the high water at
``at``; the river turns towards it over up to 6 h, so ``at = "6h"`` or later looks natural);
``accident`` (road, capacity_pct left open, default 35); ``closure`` (road); ``outage``
(ward); ``heatwave`` (extra_c, default 4); ``demand`` (traffic demand: a ``factor`` on the
usual, or a ``level`` it is at least, 1.0 being a rush hour; optional roads). Faults, on
``devices``: ``dropout`` (probability, default 1), ``stuck``, ``noise`` (sd_pct of the
value, default 30), ``battery_drain`` (from_pct, pct_per_h), ``clock_skew`` (offset_s),
``duplicate`` (probability, default 1). Times are seconds or ``"1h30m"``-style durations.
Places are the city file's ids; in a scaled city (``--scale``) an event or fault applies to
every copy.

A file is validated whole (fields, then the places it names against the city) before
anything runs; every problem is reported with its line.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from simulators.tide import PEAK_HALF_WIDTH_MS
from smartcity.city import City
from smartcity.durations import parse_duration
from smartcity.errors import ContractError, FieldProblem
from smartcity.files import field_path, line_of
from smartcity.ids import Id, is_valid_id

Duration = Annotated[float, BeforeValidator(parse_duration)]
SUFFIX = ".toml"
TIDE_FALL_S = PEAK_HALF_WIDTH_MS / 1000


class _At(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: Duration = Field(default=0.0, description="when, after the scenario starts")

    @property
    def end_s(self) -> float:
        return self.at


class _Lasting(_At):
    duration: Duration = Field(description="how long it lasts")

    @field_validator("duration")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be above 0")
        return v

    @property
    def end_s(self) -> float:
        return self.at + self.duration


class Rain(_Lasting):
    kind: Literal["rain"]
    intensity_mm_h: float = Field(gt=0, le=300)
    wards: list[Id] = Field(default_factory=list, description="default: the whole city")


class TideEvent(_At):
    kind: Literal["tide"]
    peak_cm: float = Field(ge=-500, le=1000, description="the high water at `at`")

    @property
    def end_s(self) -> float:
        return self.at + TIDE_FALL_S


class Accident(_Lasting):
    kind: Literal["accident"]
    road: Id
    capacity_pct: float = Field(default=35, ge=0, lt=100, description="capacity left open")


class Closure(_Lasting):
    kind: Literal["closure"]
    road: Id


class Outage(_Lasting):
    kind: Literal["outage"]
    ward: Id


class Heatwave(_Lasting):
    kind: Literal["heatwave"]
    extra_c: float = Field(default=4, gt=0, le=10)


class Demand(_Lasting):
    """Traffic demand: ``factor`` times the usual, or at least ``level`` (the share of
    capacity wanted: 1.0 is a rush hour), whatever the time of day."""

    kind: Literal["demand"]
    factor: float | None = Field(default=None, ge=0, le=3)
    level: float | None = Field(default=None, ge=0, le=1.5)
    roads: list[Id] = Field(default_factory=list, description="default: every road")

    @model_validator(mode="after")
    def _one_of(self) -> Demand:
        if (self.factor is None) == (self.level is None):
            raise ValueError("give either factor or level")
        return self


class _Fault(_Lasting):
    devices: list[Id] = Field(min_length=1)


class Dropout(_Fault):
    kind: Literal["dropout"]
    probability: float = Field(default=1.0, gt=0, le=1)


class Stuck(_Fault):
    kind: Literal["stuck"]


class Noise(_Fault):
    kind: Literal["noise"]
    sd_pct: float = Field(default=30, gt=0, le=500)


class BatteryDrain(_Fault):
    kind: Literal["battery_drain"]
    from_pct: float = Field(default=100, gt=0, le=100)
    pct_per_h: float = Field(default=20, gt=0, le=10_000)


class ClockSkew(_Fault):
    kind: Literal["clock_skew"]
    offset_s: float = Field(ge=-7 * 86_400, le=7 * 86_400)

    @field_validator("offset_s")
    @classmethod
    def _not_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("must not be 0")
        return v


class Duplicate(_Fault):
    kind: Literal["duplicate"]
    probability: float = Field(default=1.0, gt=0, le=1)


Event = Annotated[Rain | TideEvent | Accident | Closure | Outage | Heatwave | Demand,
                  Field(discriminator="kind")]
Fault = Annotated[Dropout | Stuck | Noise | BatteryDrain | ClockSkew | Duplicate,
                  Field(discriminator="kind")]
EVENT_KINDS = ("rain", "tide", "accident", "closure", "outage", "heatwave", "demand")
FAULT_KINDS = ("dropout", "stuck", "noise", "battery_drain", "clock_skew", "duplicate")


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    name: Id | None = Field(default=None, description="default: the file name")
    description: str = Field(min_length=1, max_length=200)
    duration: Duration | None = Field(default=None, description="default: until the last "
                                                                "event or fault ends")
    random_rain: bool = Field(default=True, description="the weather's own showers")
    events: list[Event] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)

    @field_validator("description")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v or "\r" in v:
            raise ValueError("must be one line")
        return v.strip()

    @property
    def length_s(self) -> float:
        if self.duration is not None:
            return self.duration
        return max((i.end_s for i in [*self.events, *self.faults]), default=0.0)

    def city_problems(self, city: City) -> list[tuple[tuple[int | str, ...], str]]:
        """Places this scenario names that ``city`` lacks, and items past its end."""
        wards = {w.id for w in city.wards}
        roads = {r.id for r in city.roads}
        devices = {d.device_id for d in city.registry()}
        out: list[tuple[tuple[int | str, ...], str]] = []

        def need(loc: tuple[int | str, ...], ident: str, known: set[str], what: str) -> None:
            if ident not in known:
                out.append((loc, f"unknown {what} {ident!r} (not in the city file)"))

        for i, e in enumerate(self.events):
            if isinstance(e, Accident | Closure):
                need(("events", i, "road"), e.road, roads, "road")
            elif isinstance(e, Outage):
                need(("events", i, "ward"), e.ward, wards, "ward")
            elif isinstance(e, Rain):
                for w in e.wards:
                    need(("events", i, "wards"), w, wards, "ward")
            elif isinstance(e, Demand):
                for r in e.roads:
                    need(("events", i, "roads"), r, roads, "road")
        for i, f in enumerate(self.faults):
            for d in f.devices:
                need(("faults", i, "devices"), d, devices, "device")
        if self.duration is not None:
            for section, items in (("events", self.events), ("faults", self.faults)):
                for i, item in enumerate(items):
                    if item.end_s > self.duration:
                        out.append(((section, i, "at"), f"ends after the scenario's duration "
                                                        f"of {self.duration:g} s"))
        return out


def builtin_dir() -> Path:
    return Path(str(resources.files("simulators") / "scenarios"))


def builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(SUFFIX) for p in builtin_dir().glob(f"*{SUFFIX}"))


def list_builtin() -> list[tuple[str, str]]:
    """The built-in scenarios as (name, one-line description), by name."""
    return [(name, load_scenario(name).description) for name in builtin_names()]


def load_scenario(ref: str | Path, city: City | None = None) -> Scenario:
    """A built-in scenario by name, or a scenario file; checked against ``city`` if given.

    Raises :class:`ContractError` naming the file and, for each problem, its line and field."""
    text_ref = str(ref)
    if isinstance(ref, str) and is_valid_id(ref) and ref in builtin_names():
        file = builtin_dir() / f"{ref}{SUFFIX}"
    else:
        file = Path(ref)
        if not file.is_file():
            known = ", ".join(builtin_names())
            raise ContractError(f"unknown scenario {text_ref!r}", [FieldProblem(
                "scenario", f"neither a built-in scenario ({known}) nor a file")])
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ContractError(f"cannot read scenario {file}", [FieldProblem("file", str(e))]) from e
    return parse_scenario(text, file.name, default_name=file.name.removesuffix(SUFFIX),
                          city=city, path=str(file))


def parse_scenario(text: str, source: str = "<scenario>", *, default_name: str | None = None,
                   city: City | None = None, path: str | None = None) -> Scenario:
    """Validate scenario TOML ``text``; ``source`` names it before each line number, ``path``
    (default: ``source``) in the error's summary."""
    where = path or source
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ContractError(f"scenario {where} is not valid TOML",
                            [FieldProblem("file", str(e))]) from e
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ContractError(f"scenario {where} is invalid",
                            [_problem(text, source, loc, msg) for loc, msg in _errors(e)]) from None
    if scenario.name is None:
        if default_name is None or not is_valid_id(default_name):
            raise ContractError(f"scenario {where} is invalid", [FieldProblem(
                "name", f"{default_name!r} is not a valid id: add name = \"...\" "
                        "(lowercase ASCII letters, digits, '-' and '_')")])
        scenario = scenario.model_copy(update={"name": default_name})
    if city is not None and (problems := scenario.city_problems(city)):
        raise ContractError(f"scenario {where} does not fit the city",
                            [_problem(text, source, loc, msg) for loc, msg in problems])
    return scenario


def _errors(e: ValidationError) -> list[tuple[tuple[int | str, ...], str]]:
    out = []
    for err in e.errors(include_url=False):
        loc = tuple(err["loc"])
        # A tagged union puts the tag in the path (events[0].rain.intensity_mm_h): drop it.
        if len(loc) >= 3 and loc[0] in ("events", "faults") and isinstance(loc[1], int):
            loc = loc[:2] + loc[3:]
        msg = err["msg"].removeprefix("Value error, ")
        kinds = EVENT_KINDS if loc[:1] == ("events",) else FAULT_KINDS
        if err["type"] == "extra_forbidden":
            msg = "is not a known field here (a typo?)"
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc = (*loc, "kind")
            msg = f"kind must be one of: {', '.join(kinds)}"
        out.append((loc, msg))
    return out


def _problem(text: str, source: str, loc: tuple[int | str, ...], msg: str) -> FieldProblem:
    line = line_of(text, loc)
    return FieldProblem(f"{source}:{line}: {field_path(loc)}" if line else field_path(loc), msg)
