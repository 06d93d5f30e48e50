"""InfluxQL for the api's alert endpoints, and shaping the answer back into alerts. Pure.

The rules service writes every alert event to the ``alerts`` measurement (``rules.lines``).
An alert is active when its last event is not ``cleared``, so both "active alerts" and
"recent alerts" are the last event of each alert_id; "history" is the events themselves.
Values reaching a query are enum members and epoch-ms integers, quoted anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rules.lines import MEASUREMENT
from smartcity.alerts import Alert, AlertState
from smartcity.ids import check_id
from smartcity.influx import Series, quote_ident, quote_literal
from smartcity.models import format_ts
from smartcity.topics import Domain

ACTIVE_WINDOW_MS = 90 * 86_400_000
"""How far back to look for alerts that are still active: an alert raised earlier and never
cleared (a sensor that died under water) drops out of the list after this long."""


def _where(domain: Domain | None, since_ms: int, until_ms: int | None,
           alert_id: str | None = None) -> str:
    clauses = [f"time >= {int(since_ms)}ms"]
    if until_ms is not None:
        clauses.append(f"time <= {int(until_ms)}ms")
    if domain is not None:
        clauses.append(f"{quote_ident('domain')} = {quote_literal(Domain(domain).value)}")
    if alert_id is not None:
        clauses.append(f"{quote_ident('alert_id')} = "
                       f"{quote_literal(check_id(alert_id, 'alert_id'))}")
    return " AND ".join(clauses)


def latest_events_query(now_ms: int, domain: Domain | None = None,
                        since_ms: int | None = None) -> str:
    """The last event of every alert with an event since ``since_ms`` (default: the active
    window before ``now_ms``)."""
    since = now_ms - ACTIVE_WINDOW_MS if since_ms is None else since_ms
    return (f"SELECT * FROM {quote_ident(MEASUREMENT)} WHERE {_where(domain, since, None)} "
            f"GROUP BY {quote_ident('alert_id')} ORDER BY time DESC LIMIT 1")


def events_query(since_ms: int, until_ms: int | None = None, domain: Domain | None = None,
                 alert_id: str | None = None, limit: int = 500) -> str:
    """Alert events between two times, newest first: the history of every alert, or of one.
    An invalid ``alert_id`` raises :class:`InvalidId` naming it (a 422 in the api)."""
    if not 1 <= limit <= 10_000:
        raise ValueError("limit must be between 1 and 10000")
    where = _where(domain, since_ms, until_ms, alert_id)
    return (f"SELECT * FROM {quote_ident(MEASUREMENT)} WHERE {where} "
            f"ORDER BY time DESC LIMIT {int(limit)}")


def _alert(row: dict[str, Any]) -> Alert:
    state = AlertState(row["state"])
    at = format_ts(int(row["time"]))
    return Alert(
        alert_id=row["alert_id"], domain=row["domain"], rule=row["rule"],
        device_id=row["device_id"], site=row["site"], ward=row["ward"], level=row["level"],
        state=state, source=row["source"], raised_at=format_ts(int(row["raised_at_ms"])),
        updated_at=at, cleared_at=at if state is AlertState.CLEARED else None,
        metric=row["metric"], value=row["value"], threshold=row["threshold"], unit=row["unit"],
        title_vi=row["title_vi"], title_en=row["title_en"], message_vi=row["message_vi"],
        message_en=row["message_en"],
        silent_since=format_ts(int(row["silent_since_ms"])) if row.get("silent_since_ms")
        else None)


def shape_events(series: Iterable[Series]) -> list[Alert]:
    """Rows of either query as alert events (the query's order is kept within a series)."""
    return [_alert({**row, **s.tags}) for s in series for row in s.rows()]


def for_screen(alerts: Iterable[Alert], active: bool | None = True) -> list[Alert]:
    """Most severe first, then most recently changed; ``active`` True keeps only active
    alerts, False only cleared ones, None both."""
    kept = [a for a in alerts if active is None or a.active is active]
    return sorted(kept, key=lambda a: (-a.level.rank, -a.updated_ms, a.alert_id))
