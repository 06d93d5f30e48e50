"""Replays of the built-in recordings."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from api.models.base import ApiModel


class Recording(ApiModel):
    model_config = ConfigDict(frozen=True)
    name: str
    messages: int
    span_s: float = Field(description="recorded time from the first message to the last")


class ReplayState(ApiModel):
    model_config = ConfigDict(frozen=True)
    name: str
    state: str = Field(description="starting, running, finished, stopped or failed")
    speed: float | None = Field(description="time factor; null: as fast as the broker takes")
    sent: int
    passes_done: int
    position_s: float
    span_s: float
    late_p99_ms: float
    error: str | None = None
    lost: str | None = Field(default=None, description="records of a damaged recording that "
                                                       "were skipped, e.g. '788 records lost'")


class Replays(ApiModel):
    recordings: list[Recording]
    replay: ReplayState | None = Field(description="the current or last replay")
