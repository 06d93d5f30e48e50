from __future__ import annotations

from fastapi import APIRouter

from api.models.metrics import MetricInfo
from smartcity.metrics import CATALOGUE

router = APIRouter(prefix="/api/v1/metrics", tags=["sensors"])

_CATALOGUE = [MetricInfo.of(m) for m in CATALOGUE.values()]


@router.get("", summary="Every metric a device may send: unit, labels and plausible range",
            response_description="the metric catalogue; the board's labels come from here")
def list_metrics() -> list[MetricInfo]:
    return _CATALOGUE
