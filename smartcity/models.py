"""Payload models: one frozen model per domain, metrics named with their units.

Wire rules: a payload is a JSON object with at least one metric, and optionally ``ts`` (RFC 3339
with offset, or epoch milliseconds; without it the reading is stamped when it arrives) and
``seq`` (the device's message counter; without it ingest detects no gaps and a repeated
message is stored twice). Unknown keys
are refused, so a misspelt or unit-less metric (``water_level``) is reported, not dropped.
Numbers must be JSON numbers: ``"12"`` is a wrong type, not twelve.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from smartcity.metrics import metric
from smartcity.topics import Domain

TS_MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def parse_ts(value: Any) -> int:
    """RFC 3339 string with an offset, or epoch milliseconds, to epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 string or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be finite")
        ms = int(value)
        if TS_MIN_MS // 1000 <= ms < TS_MAX_MS // 1000:
            raise ValueError(f"{value} looks like epoch seconds; send epoch milliseconds")
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{value[:40]!r} has no UTC offset (add 'Z' or '+07:00')")
        ms = int(parsed.timestamp() * 1000)
    else:
        raise ValueError("must be an RFC 3339 string or epoch milliseconds")
    if not TS_MIN_MS <= ms < TS_MAX_MS:
        raise ValueError("is outside the years 2000-2099")
    return ms


def format_ts(ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC with millisecond precision."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


EpochMs = Annotated[int, BeforeValidator(parse_ts)]


class Source(StrEnum):
    LIVE = "live"
    SIMULATED = "simulated"
    REPLAYED = "replayed"


def _metric(name: str, description: str) -> Any:
    """A metric field, with the catalogue's plausible range."""
    m = metric(name)
    return Field(default=None, ge=m.low, le=m.high, description=description)


_NOT_METRICS = frozenset({"ts", "seq", "source"})


class Telemetry(BaseModel):
    """Fields every telemetry payload shares."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    domain: ClassVar[Domain]
    ts: EpochMs | None = Field(default=None, description="RFC 3339 with offset, or epoch "
                                                         "milliseconds; default: when the "
                                                         "message arrived")
    seq: int | None = Field(default=None, ge=0, lt=2**63,
                            description="per-device message counter; lets ingest count gaps "
                                        "(optional)")
    source: Source = Field(default=Source.LIVE, description="live, simulated or replayed")
    battery_pct: float | None = _metric("battery_pct", "battery charge")

    @model_validator(mode="after")
    def _has_a_metric(self) -> Telemetry:
        if not self.metrics():
            names = ", ".join(self.metric_names())
            raise ValueError(f"no metric given; send at least one of: {names}")
        return self

    @classmethod
    def metric_names(cls) -> tuple[str, ...]:
        return tuple(n for n in cls.model_fields if n not in _NOT_METRICS)

    def metrics(self) -> dict[str, float]:
        # On the ingest hot path: read the instance dict rather than walking model_fields.
        return {k: v for k, v in self.__dict__.items() if v is not None and k not in _NOT_METRICS}


class HomeTelemetry(Telemetry):
    domain: ClassVar[Domain] = Domain.HOME
    power_w: float | None = _metric("power_w", "household electrical load")
    temperature_c: float | None = _metric("temperature_c", "indoor air temperature")
    humidity_pct: float | None = _metric("humidity_pct", "indoor relative humidity")
    pm25_ugm3: float | None = _metric("pm25_ugm3", "indoor PM2.5 concentration")
    co2_ppm: float | None = _metric("co2_ppm", "indoor CO2 concentration")


class TrafficTelemetry(Telemetry):
    domain: ClassVar[Domain] = Domain.TRAFFIC
    speed_kmh: float | None = _metric("speed_kmh", "mean speed on the segment")
    occupancy_pct: float | None = _metric("occupancy_pct",
                                          "share of time a vehicle is over the detector")
    flow_veh_h: float | None = _metric("flow_veh_h", "vehicles per hour (motorbikes count as one)")


class FloodTelemetry(Telemetry):
    domain: ClassVar[Domain] = Domain.FLOOD
    water_level_cm: float | None = _metric("water_level_cm", "water depth above the site's ground")
    # A tide gauge's reading: not a depth on a street, so flood-depth rules and the city
    # summary's street warnings never mistake a high river for a flooded street.
    river_level_cm: float | None = _metric("river_level_cm", "river level above the gauge's datum")


class WeatherTelemetry(Telemetry):
    domain: ClassVar[Domain] = Domain.WEATHER
    rain_mm_h: float | None = _metric("rain_mm_h", "rain intensity")
    temperature_c: float | None = _metric("temperature_c", "outdoor air temperature")
    humidity_pct: float | None = _metric("humidity_pct", "outdoor relative humidity")
    wind_kmh: float | None = _metric("wind_kmh", "wind speed")


TELEMETRY_MODELS: dict[Domain, type[Telemetry]] = {
    m.domain: m for m in (HomeTelemetry, TrafficTelemetry, FloodTelemetry, WeatherTelemetry)
}


def _bounds(model: type[Telemetry]) -> dict[str, tuple[float, float]]:
    out = {}
    for name in model.metric_names():
        lo = hi = None
        for m in model.model_fields[name].metadata:
            lo = getattr(m, "ge", lo)
            hi = getattr(m, "le", hi)
        if lo is None or hi is None:
            raise RuntimeError(f"{model.__name__}.{name} needs a plausible range")
        out[name] = (float(lo), float(hi))
    return out


METRIC_BOUNDS: dict[Domain, dict[str, tuple[float, float]]] = {
    domain: _bounds(model) for domain, model in TELEMETRY_MODELS.items()}
"""Each domain's metrics and their plausible ranges, for payloads judged outside the models
(SenML records, single values)."""


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class DeviceStatus(BaseModel):
    """Retained on ``.../status``; the offline form is also the device's last will."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: DeviceState
    ts: EpochMs | None = None


class ProblemOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class DeviceError(BaseModel):
    """Published on ``{root}/devices/{device_id}/errors``: why a message was rejected."""

    model_config = ConfigDict(frozen=True)

    ts: str = Field(description="when ingest rejected it, RFC 3339 UTC")
    topic: str
    reason: str
    reason_code: int = Field(description="the MQTT 5 reason code of the reason (0x99 payload "
                                         "format invalid, 0x87 not authorized, ...)")
    reason_code_name: str = Field(description="the reason code's name in the MQTT 5 "
                                              "specification")
    errors: list[ProblemOut] = Field(default_factory=list)
    payload: str = Field(description="the start of the rejected payload, for recognition")
    suppressed: int = Field(default=0, description="rejections of this device not reported "
                                                   "since the previous report (rate limit)")
    kind: Literal["rejected"] = "rejected"
