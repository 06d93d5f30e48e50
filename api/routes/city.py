from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from api import queries, summary
from api.citygeometry import geometry_path, load_geometry
from api.citymap import city_map
from api.deps import InfluxDep, NowDep, ServicesDep
from api.models.base import Problem
from api.models.city import CityMap, CitySummary
from smartcity.city import load_city
from smartcity.errors import ContractError
from smartcity.rulefile import load_rules

router = APIRouter(prefix="/api/v1/city", tags=["city"])


@router.get("/summary", summary="One figure set per domain, for the city overview screen",
            responses={503: {"model": Problem, "description": "InfluxDB unavailable"}})
async def city_summary(services: ServicesDep, influx: InfluxDep, now: NowDep) -> CitySummary:
    if (memory := services.memory()) is not None:
        domains = {d.device_id: d.domain for d in services.registry}
        last = memory.last_values(summary.FIGURES, domains, now, summary.WINDOW)
    else:
        last = queries.shape_last_values(await influx.query(
            queries.last_values_query(summary.FIGURES, summary.WINDOW)))
    return summary.summarize(last, services.registry, services.warning_levels, now)


@lru_cache(maxsize=4)
def _map_of(city_file: Path | None, scale: int, rules_file: Path | None) -> CityMap:
    # The city and rule files are read once per process: they do not change while it runs.
    city = load_city(city_file, scale=scale)
    return city_map(city, load_rules(rules_file).with_city(city))


@router.get("/map", summary="The city's geometry, for the kiosk board's map",
            response_description="wards, roads, flood sites, homes and gauges, in lat/lon")
def city_map_(services: ServicesDep) -> CityMap:
    settings = services.settings
    return _map_of(settings.city_file, settings.scale, settings.rules_file)


@lru_cache(maxsize=4)
def _geometry_of(city_file: Path | None) -> bytes:
    path = geometry_path(city_file)
    if not path.is_file():
        raise HTTPException(404, f"the city file has no geometry beside it ({path.name})")
    try:
        load_geometry(path)
    except ContractError as e:
        raise HTTPException(500, str(e)) from None
    return path.read_bytes()


@router.get("/geometry", summary="The river, canals, ward outlines and road courses (GeoJSON)",
            response_class=Response,
            responses={200: {"content": {"application/geo+json": {}},
                             "description": "a FeatureCollection naming its source"},
                       404: {"model": Problem, "description": "no geometry for this city"}})
def city_geometry(services: ServicesDep) -> Response:
    return Response(_geometry_of(services.settings.city_file),
                    media_type="application/geo+json")
