"""Health and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.models.base import ApiModel


class Health(ApiModel):
    status: Literal["ok"] = "ok"


class Check(ApiModel):
    ok: bool
    detail: str = Field(description="what was checked and what it answered")
    version: str | None = Field(default=None, description="server version, when known")


class Readiness(ApiModel):
    status: Literal["ready", "unavailable"]
    detail: str = Field(description="'ready', or what is down")
    checks: dict[str, Check] = Field(description="one entry per dependency: mqtt, influxdb")
