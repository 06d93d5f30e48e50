"""Flood, rain, traffic-jam and home alerts, as the rules service raised them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import InfluxDep, NowDep, invalid
from smartcity.alerts import Alert
from smartcity.errors import ContractError
from smartcity.ids import ID_PATTERN
from smartcity.topics import Domain
from storage import alerts

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

DAY_MS = 86_400_000


@router.get("", summary="Alerts for public screens, most severe first")
async def list_alerts(
    influx: InfluxDep,
    now: NowDep,
    active: Annotated[bool | None, Query(
        description="true: alerts still in force; false: cleared ones; leave out for "
                    "both")] = None,
    domain: Annotated[Domain | None, Query(description="only this domain")] = None,
) -> list[Alert]:
    """The latest state of each alert of the last 90 days, each with Vietnamese and English
    titles and messages ready for a public screen. Live changes arrive retained on
    ``city/alerts/{domain}/{alert_id}``."""
    series = await influx.query(alerts.latest_events_query(now, domain))
    return alerts.for_screen(alerts.shape_events(series), active)


@router.get("/{alert_id}/events", summary="The lifecycle of one alert, newest first")
async def alert_events(
    alert_id: Annotated[str, Path(description=f"alert id, {ID_PATTERN}")],
    influx: InfluxDep,
    now: NowDep,
    days: Annotated[int, Query(ge=1, le=365, description="how far back to look")] = 90,
) -> list[Alert]:
    """Every event of the alert: raised, each update (level changes), cleared."""
    try:
        statement = alerts.events_query(now - days * DAY_MS, alert_id=alert_id)
    except ContractError as e:
        invalid(e, "path", {"alert_id": alert_id})
    return alerts.shape_events(await influx.query(statement))
