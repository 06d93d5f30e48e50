from __future__ import annotations

from fastapi import APIRouter

from api import queries, summary
from api.deps import InfluxDep, NowDep, ServicesDep
from api.schemas import CitySummary, Problem

router = APIRouter(prefix="/api/v1/city", tags=["city"])


@router.get("/summary", summary="One figure set per domain, for the city overview screen",
            responses={503: {"model": Problem, "description": "InfluxDB unavailable"}})
async def city_summary(services: ServicesDep, influx: InfluxDep, now: NowDep) -> CitySummary:
    series = await influx.query(queries.last_values_query(summary.FIGURES, summary.WINDOW))
    return summary.summarize(queries.shape_last_values(series), services.registry,
                             services.warning_levels, now)
