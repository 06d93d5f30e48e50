"""The metric catalogue as the api serves it."""

from __future__ import annotations

from pydantic import Field

from api.models.base import ApiModel
from smartcity.metrics import Metric


class MetricInfo(ApiModel):
    name: str = Field(examples=["water_level_cm"], description="as devices send it")
    unit: str = Field(examples=["cm"], description="as people read it, in English")
    unit_vi: str = Field(examples=["cm"], description="as people read it, in Vietnamese")
    label_vi: str = Field(examples=["Mực nước"])
    label_en: str = Field(examples=["Water level"])
    min: float = Field(description="the lowest plausible value; lower ones are refused")
    max: float = Field(description="the highest plausible value; higher ones are refused")

    @classmethod
    def of(cls, m: Metric) -> MetricInfo:
        return cls(name=m.name, unit=m.unit, unit_vi=m.unit_in("vi"), label_vi=m.label_vi,
                   label_en=m.label_en, min=m.low, max=m.high)
