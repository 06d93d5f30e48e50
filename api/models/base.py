"""The one base of the api's models, and what they share: times and the error body."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Timestamp = Annotated[str, Field(description="RFC 3339, UTC, millisecond precision",
                                 examples=["2026-06-01T08:30:00.000Z"],
                                 json_schema_extra={"format": "date-time"})]


class ApiModel(BaseModel):
    """What the api answers and accepts: frozen, separate from the wire models of
    :mod:`smartcity.models`, which describe what devices send."""

    model_config = ConfigDict(frozen=True)


class Problem(ApiModel):
    """The body of a 404, 502 or 503 (a 422 lists its problems the way FastAPI does)."""

    detail: str = Field(examples=["unknown device 'flood-q9'; GET /api/v1/sensors lists the "
                                  "known devices"])
