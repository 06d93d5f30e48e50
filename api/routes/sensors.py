from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import queries
from api.deps import DeviceDep, InfluxDep, LinkDep, NowDep, RegistryDep, ServicesDep, invalid
from api.link import MqttLink
from api.models.base import Problem
from api.models.sensors import History, Latest, Location, MetricValue, Point, Sensor, SensorStatus
from api.queries import Agg, Seen
from smartcity.errors import ContractError
from smartcity.models import format_ts
from smartcity.registry import DeviceInfo
from smartcity.topics import Domain

router = APIRouter(prefix="/api/v1/sensors", tags=["sensors"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown device"},
    503: {"model": Problem, "description": "InfluxDB unavailable"},
}


def _sensor(device: DeviceInfo, seen: Seen | None, status: MqttLink) -> Sensor:
    state = status.state(device.device_id)
    return Sensor(
        device_id=device.device_id, domain=device.domain, name=device.name,
        name_en=device.name_en, ward=device.ward, site=device.site,
        location=Location(lat=device.lat, lon=device.lon),
        metrics=list(device.metrics or queries.metric_names(device.domain)),
        status=SensorStatus(state.state.value) if state else SensorStatus.UNKNOWN,
        status_since=format_ts(state.ts) if state and state.ts is not None else None,
        last_seen=format_ts(seen.time_ms) if seen else None,
        source=seen.source if seen else None,
    )


@router.get("", summary="Every known device, with its status and when it last reported",
            responses={503: NOT_FOUND[503]})
async def list_sensors(
    registry: RegistryDep, services: ServicesDep, status: LinkDep, now: NowDep,
    domain: Annotated[Domain | None, Query(description="only devices of this domain")] = None,
) -> list[Sensor]:
    devices = list(registry.by_domain(domain) if domain else registry)
    seen = await _last_seen(services, devices, now)
    return [_sensor(d, seen.get(d.device_id), status) for d in devices]


@router.get("/{device_id}", summary="One device", responses=NOT_FOUND)
async def get_sensor(device: DeviceDep, services: ServicesDep, status: LinkDep,
                     now: NowDep) -> Sensor:
    seen = await _last_seen(services, [device], now)
    return _sensor(device, seen.get(device.device_id), status)


async def _last_seen(services: ServicesDep, devices: list[DeviceInfo], now: int
                     ) -> dict[str, Seen]:
    if (memory := services.memory()) is not None:
        return memory.last_seen((d.device_id for d in devices), now)
    domains = [d for d in Domain if any(dev.domain is d for dev in devices)]
    if not domains:
        return {}
    return queries.shape_last_seen(await services.influx.query(
        queries.last_seen_query(domains)))


@router.get("/{device_id}/latest", summary="The last value of each of a device's metrics",
            responses=NOT_FOUND)
async def latest(device: DeviceDep, services: ServicesDep, now: NowDep) -> Latest:
    if (memory := services.memory()) is not None:
        seen, values = memory.latest(device.device_id, device.domain, now)
    else:
        seen, values = queries.shape_latest(await services.influx.query(
            queries.latest_query(device.domain, device.device_id)))
    return Latest(
        device_id=device.device_id, domain=device.domain,
        last_seen=format_ts(seen.time_ms) if seen else None,
        source=seen.source if seen else None,
        values={m: MetricValue(value=v.value, unit=queries.unit_of(m), time=format_ts(v.time_ms))
                for m, v in values.items()},
    )


@router.get("/{device_id}/history", summary="A metric in time buckets (mean, min or max)",
            responses=NOT_FOUND)
async def history(
    device: DeviceDep, influx: InfluxDep, now: NowDep,
    metric: Annotated[str, Query(description="a metric of the device's domain",
                                 examples=["water_level_cm"])],
    agg: Annotated[Agg, Query(description="aggregate per bucket")] = Agg.MEAN,
    start: Annotated[str | None, Query(
        description="RFC 3339 with offset, epoch ms, 'now', or a duration before now "
                    "(-1h, now-30m); default: an hour before end",
        examples=["-6h"])] = None,
    end: Annotated[str | None, Query(description="exclusive; same forms as start; default now",
                                     examples=["now"])] = None,
    every: Annotated[str | None, Query(
        description=f"bucket width: a whole number and ms, s, m, h, d or w; default: the "
                    f"finest round width giving at most {queries.TARGET_BUCKETS} buckets; at "
                    f"most {queries.MAX_BUCKETS} buckets",
        examples=["5m"])] = None,
) -> History:
    try:
        plan = queries.plan_history(device.domain, device.device_id, metric, agg, start, end,
                                    every, now)
    except ContractError as e:
        invalid(e, "query", {"metric": metric, "start": start, "end": end, "every": every})
    points = queries.shape_history(await influx.query(queries.history_query(plan)))
    return History(
        device_id=device.device_id, metric=plan.metric, unit=queries.unit_of(plan.metric),
        agg=plan.agg, every=plan.every, start=format_ts(plan.start_ms),
        end=format_ts(plan.end_ms),
        points=[Point(t=format_ts(p.time_ms), value=p.value) for p in points],
    )
