"""Alert events: what the rules service publishes on ``{root}/alerts/{domain}/{alert_id}``.

An alert is one episode of one rule on one device: raised, then updated whenever its level
changes, then cleared. Every event carries the whole alert (not a diff), so a screen that
sees only the retained message has everything it shows: bilingual title and message, the
value, the threshold it crossed and the times.

The ``alert_id`` is deterministic per episode: the rule, the device and the event time of
the reading that raised it. Re-evaluating the same readings (a redelivery after a crash)
therefore yields the same id, the same retained topic and the same InfluxDB point, so
at-least-once processing cannot duplicate an alert; a new episode gets a new id, so a screen
never sees a cleared alert come back to life under the same topic.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from smartcity.codec import problems_of
from smartcity.errors import InvalidPayload
from smartcity.ids import Id, is_valid_id
from smartcity.models import Source, parse_ts
from smartcity.topics import Domain


class AlertLevel(StrEnum):
    """Severity, mildest first; a rule uses an increasing subset (flood: watch, warning,
    danger; traffic: warning, danger)."""

    ADVISORY = "advisory"
    WATCH = "watch"
    WARNING = "warning"
    DANGER = "danger"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {level: i for i, level in enumerate(AlertLevel)}


class AlertState(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"


def _utc_ts(value: str) -> str:
    parse_ts(value)
    if not value.endswith("Z"):
        raise ValueError("must be RFC 3339 in UTC, ending in 'Z'")
    return value


UtcTimestamp = Annotated[str, AfterValidator(_utc_ts)]


class Alert(BaseModel):
    """One alert event. ``updated_at`` is the event time of this event (for ``raised`` it
    equals ``raised_at``, for ``cleared`` it equals ``cleared_at``); all times are event
    times taken from the readings, not the clock of the rules process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: Id
    domain: Domain
    rule: Id
    device_id: Id
    site: Id
    ward: Id
    level: AlertLevel
    state: AlertState
    source: Source = Field(description="source of the reading behind this event")
    raised_at: UtcTimestamp
    updated_at: UtcTimestamp
    cleared_at: UtcTimestamp | None = None
    metric: str = Field(description="the metric the rule watches, e.g. water_level_cm")
    value: float = Field(description="the reading's value at this event")
    threshold: float = Field(description="the threshold of ``level`` that was crossed")
    unit: str
    title_vi: str
    title_en: str
    message_vi: str
    message_en: str
    silent_since: UtcTimestamp | None = Field(
        default=None, description="set while the sensor behind an active alert has gone "
                                  "silent: the event time of its last reading (``value`` is "
                                  "that reading's, no longer current)")

    @property
    def active(self) -> bool:
        return self.state is not AlertState.CLEARED

    @property
    def updated_ms(self) -> int:
        return parse_ts(self.updated_at)

    @property
    def raised_ms(self) -> int:
        return parse_ts(self.raised_at)


def alert_id(rule: str, device_id: str, raised_ms: int) -> str:
    """``{rule}_{device_id}_{yyyymmddThhmmssmmm}z``, readable in a topic; a hash stands in
    for the rule and device when that would break the 64-character id rule."""
    stamp = datetime.fromtimestamp(raised_ms / 1000, tz=UTC).strftime("%Y%m%dt%H%M%S")
    stamp += f"{raised_ms % 1000:03d}z"
    readable = f"{rule}_{device_id}_{stamp}"
    if is_valid_id(readable):
        return readable
    digest = hashlib.sha256(f"{rule}\x00{device_id}".encode()).hexdigest()[:16]
    return f"{rule[:20]}_{digest}_{stamp}"


def decode_alert(payload: bytes) -> Alert | None:
    """An alert message's payload; None for the empty retained message of a cleared alert."""
    if not payload:
        return None
    try:
        return Alert.model_validate_json(payload)
    except ValidationError as e:
        raise InvalidPayload("alert does not match the contract", problems_of(e)) from None


def encode_alert(alert: Alert) -> bytes:
    return alert.model_dump_json(exclude_none=True).encode()


__all__ = ["Alert", "AlertLevel", "AlertState", "alert_id", "decode_alert", "encode_alert"]
