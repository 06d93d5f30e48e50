"""The live stream's figures."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from api.models.base import ApiModel


class LiveStatsOut(ApiModel):
    model_config = ConfigDict(frozen=True)

    clients: int = Field(description="screens connected now")
    connections: int = Field(description="streams opened since the api started")
    received: int = Field(description="broker messages the hub looked at")
    readings: int = Field(description="valid readings of known devices")
    invalid: int = Field(description="messages refused: invalid, or of an unknown device")
    overflowed: int = Field(description="readings dropped because the fan-out lagged")
    events: int = Field(description="events fanned out")
    delivered: int = Field(description="events handed to screens")
    coalesced: int = Field(description="pending events replaced by a newer one")
    dropped_clients: int = Field(description="screens closed for falling behind")
    held: int = Field(description="readings waiting for their turn (the hub is pacing)")
    budget: int = Field(description="readings x screens the hub hands out per tick now")
