"""The rule file: which metric each rule watches, its levels, thresholds, durations and texts.

TOML, versioned, validated as a whole at start-up: a bad file is refused with the file and
the field at fault named (``rules.0.levels.1.enter: ...``), never half-applied. The defaults
(``rules/defaults.toml``) are tuned for Ho Chi Minh City.

Threshold semantics, for a rule whose ``direction`` is ``above`` (``below`` mirrors it):
a level is *entered* by a value >= ``enter`` and *left* by a value < ``exit``; between the two
(the hysteresis band) a value neither starts nor breaks a timer. ``exit`` defaults to
``enter - hysteresis``.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from smartcity.alerts import AlertLevel
from smartcity.city import City
from smartcity.codec import problems_of
from smartcity.errors import ContractError, FieldProblem
from smartcity.files import load_toml_model, parse_toml_model
from smartcity.ids import Id
from smartcity.models import TELEMETRY_MODELS
from smartcity.topics import Domain

PLACEHOLDERS = frozenset({"place", "ward", "value", "threshold", "unit"})
"""What a title or message may name: the device's place and ward (in the text's language),
the value and threshold (formatted for the language) and the rule's unit."""


def default_rules_file() -> Path:
    """The built-in HCMC rules: they ship with the rules service, as the built-in city ships
    with the simulators (read as a file, so nothing here imports the service)."""
    return Path(str(resources.files("rules") / "defaults.toml"))


class RuleFileError(ContractError):
    """The rule file cannot be used; names the file and the fields at fault."""


def _problems(error: ValidationError) -> list[FieldProblem]:
    out = problems_of(error)
    for i, e in enumerate(error.errors(include_url=False)):
        if e["type"] == "extra_forbidden":  # problems_of words it for telemetry payloads
            out[i] = FieldProblem(out[i].field, "is not a setting of the rule file (misspelt?)")
    return out


def _check_template(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError("must be one line (public screens and InfluxDB strings)")
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(text)
                 if name is not None and not (spec or conv)]
        fancy = [name for _, name, spec, conv in string.Formatter().parse(text)
                 if name is not None and (spec or conv)]
    except ValueError as e:
        raise ValueError(f"is not a valid template: {e}") from None
    unknown = sorted({n for n in names + fancy if n not in PLACEHOLDERS})
    if unknown:
        raise ValueError(f"names unknown placeholder(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(PLACEHOLDERS))}")
    if fancy:
        raise ValueError("placeholders take no format spec or conversion ({value}, not "
                         "{value:.1f})")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Texts(_Strict):
    title_vi: str = Field(min_length=1)
    title_en: str = Field(min_length=1)
    message_vi: str = Field(min_length=1)
    message_en: str = Field(min_length=1)

    @model_validator(mode="after")
    def _templates(self) -> Texts:
        for name in ("title_vi", "title_en", "message_vi", "message_en"):
            try:
                _check_template(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        return self


class LevelSpec(Texts):
    level: AlertLevel
    enter: float
    exit: float | None = Field(default=None, description="default: enter -/+ hysteresis")
    raise_after_s: float | None = Field(default=None, ge=0, le=86_400)
    clear_after_s: float | None = Field(default=None, ge=0, le=86_400)


@dataclass(frozen=True)
class Threshold:
    """A level of a rule as it applies at one site: what the engine compares against."""

    level: AlertLevel
    enter: float
    exit: float
    raise_after_ms: int
    clear_after_ms: int
    texts: Texts


class Rule(_Strict):
    id: Id
    domain: Domain
    metric: str
    direction: Literal["above", "below"]
    unit: str = Field(min_length=1)
    hysteresis: float = Field(ge=0)
    raise_after_s: float = Field(default=60, ge=0, le=86_400,
                                 description="how long a level must hold before it is raised")
    clear_after_s: float = Field(default=300, ge=0, le=86_400,
                                 description="how long a level must be left before it drops")
    max_gap_s: float = Field(default=900, gt=0, le=86_400,
                             description="a device silent this long restarts every timer")
    enabled: bool = True
    site_warning_level: AlertLevel | None = Field(
        default=None, description="this level's enter comes from the city file's warning_cm")
    sites: dict[Id, dict[AlertLevel, float]] = Field(
        default_factory=dict, description="per-site enter thresholds, by level")
    levels: list[LevelSpec] = Field(min_length=1, max_length=len(AlertLevel))
    cleared: Texts

    _thresholds: dict[str, tuple[Threshold, ...]] = PrivateAttr(default_factory=dict)

    @property
    def sign(self) -> int:
        return 1 if self.direction == "above" else -1

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        metrics = TELEMETRY_MODELS[self.domain].metric_names()
        if self.metric not in metrics:
            raise ValueError(f"metric: {self.metric!r} is not a {self.domain.value} metric; "
                             f"known: {', '.join(metrics)}")
        names = [spec.level for spec in self.levels]
        if [n.rank for n in names] != sorted({n.rank for n in names}):
            raise ValueError("levels: must be listed mildest first, each once (advisory, "
                             "watch, warning, danger)")
        if self.site_warning_level is not None and self.site_warning_level not in names:
            raise ValueError(f"site_warning_level: {self.site_warning_level.value!r} is not "
                             "one of this rule's levels")
        self._resolve(None, "levels")
        for site, overrides in self.sites.items():
            if stray := [lv.value for lv in overrides if lv not in names]:
                raise ValueError(f"sites.{site}: {', '.join(stray)} is not one of this rule's "
                                 "levels")
            self._resolve(site, f"sites.{site}")
        return self

    def thresholds(self, site: str | None) -> tuple[Threshold, ...]:
        """The levels as they apply at ``site``, mildest first (cached)."""
        key = site if site in self.sites else ""
        found = self._thresholds.get(key)
        if found is None:
            found = self._thresholds[key] = self._resolve(site if key else None, "levels")
        return found

    def _resolve(self, site: str | None, where: str) -> tuple[Threshold, ...]:
        overrides = self.sites.get(site, {}) if site else {}
        out: list[Threshold] = []
        s = self.sign
        for spec in self.levels:
            enter = overrides.get(spec.level, spec.enter)
            band = abs(spec.enter - spec.exit) if spec.exit is not None else self.hysteresis
            exit_ = enter - s * band if spec.level in overrides or spec.exit is None else spec.exit
            if not (math.isfinite(enter) and math.isfinite(exit_)):
                raise ValueError(f"{where}: thresholds must be finite numbers")
            if s * (enter - exit_) < 0:
                side = "at or below" if s > 0 else "at or above"
                raise ValueError(f"{where}: {spec.level.value} exit {exit_:g} must be {side} "
                                 f"its enter {enter:g} ({self.direction} rule)")
            if out and s * (enter - out[-1].enter) <= 0:
                word = "above" if s > 0 else "below"
                raise ValueError(f"{where}: {spec.level.value} enter {enter:g} must be {word} "
                                 f"{out[-1].level.value} enter {out[-1].enter:g}")
            if out and s * (exit_ - out[-1].exit) < 0:
                raise ValueError(f"{where}: {spec.level.value} exit {exit_:g} must not be on "
                                 f"the calm side of {out[-1].level.value} exit {out[-1].exit:g}")
            raise_s = self.raise_after_s if spec.raise_after_s is None else spec.raise_after_s
            clear_s = self.clear_after_s if spec.clear_after_s is None else spec.clear_after_s
            out.append(Threshold(spec.level, enter, exit_, round(raise_s * 1000),
                                 round(clear_s * 1000), spec))
        return tuple(out)


class RuleSet(_Strict):
    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules.{i}.id: {rule.id!r} is used twice")
            seen.add(rule.id)
        return self

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def with_city(self, city: City) -> RuleSet:
        """Per-site thresholds from the city file (a flood site's ``warning_cm``) for rules
        that ask for them; thresholds written in the rule file take precedence."""
        data = self.model_dump(mode="python")
        for rule in data["rules"]:
            level = rule["site_warning_level"]
            if level is None or rule["domain"] is not Domain.FLOOD:
                continue
            for site in city.flood_sites:
                rule["sites"].setdefault(site.id, {}).setdefault(level, site.warning_cm)
        try:
            return RuleSet.model_validate(data)
        except ValidationError as e:
            raise RuleFileError("the city file's warning_cm does not fit the rule file's "
                                "levels", _problems(e)) from None


def parse_rules(text: str, source: str = "<string>") -> RuleSet:
    return parse_toml_model(text, RuleSet, "rule file", source, RuleFileError)


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Load and validate a rule file (default: the built-in HCMC rules)."""
    return load_toml_model(path or default_rules_file(), RuleSet, "rule file", RuleFileError)
