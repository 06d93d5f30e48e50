"""Rehearsals of the built-in recordings: alert timelines, and what one rule file changes
against another."""

from __future__ import annotations

from pydantic import Field

from api.models.base import ApiModel
from rules.rehearsal import Difference, Rehearsal, Step


class Timeline(ApiModel):
    rules: str = Field(description="'in force', or 'given' for the rule file in the body")
    messages: int
    readings: int
    elapsed_s: float = Field(description="how long the rehearsal took")
    events: list[Step]

    @classmethod
    def of(cls, rules: str, r: Rehearsal) -> Timeline:
        return cls(rules=rules, messages=r.messages, readings=r.readings,
                   elapsed_s=round(r.elapsed_s, 3), events=r.steps)


class RehearsalResult(ApiModel):
    recording: str
    in_force: Timeline
    given: Timeline | None = Field(default=None, description="with the rule file of a POST")
    differences: list[Difference] = Field(
        default_factory=list, description="what the given rules add, drop or move")
