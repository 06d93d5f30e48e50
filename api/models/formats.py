"""The formats a device may speak, and the desk's preview and format change."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from api.models.base import ApiModel
from api.models.devices import DeviceRequest
from smartcity.formats.profile import CustomMapping

MAX_SAMPLE_BYTES = 65536


class FormatOut(ApiModel):
    name: str
    title: str
    summary: str
    native: bool = Field(description="publishes under the device's own prefix")
    publishes: list[str]
    docs: str | None


class PreviewRequest(ApiModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: DeviceRequest
    topic: str = Field(default="", max_length=512, description="the topic under the device's "
                       "prefix (tele/booth/SENSOR) for vendor formats; for ours, '' (the "
                       "telemetry topic) or a metric name (its single-value topic)")
    payload: str = Field(max_length=MAX_SAMPLE_BYTES, description="the sample, as the device "
                                                                  "sends it")


class FormatChange(ApiModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = Field(description="the new format (GET /api/v1/formats)")
    mapping: CustomMapping | None = Field(default=None, description="for the custom format")
    metrics: list[str] | None = Field(default=None, min_length=1, max_length=16,
                                      description="the metrics it sends; default: as before")
