"""The ``alerts`` measurement: the rules service writes every alert event to it
(:func:`alert_line`), the api reads them back (the queries and :func:`shape_events`). Pure.

Tags: alert_id, device_id, domain, level, rule, site, source, state, ward (all ids or enum
values). Fields: value and threshold (floats), metric and unit, the four texts, and
raised_at_ms (integer), and for an active alert silent_since_ms (integer epoch ms; 0 while
its sensor reports). The point's time is the event time (``updated_at``), so the identity
(measurement, tags, time) of an event is fixed by the readings behind it and a re-emitted
event overwrites its own point instead of adding one.

An alert is active when its last event is not ``cleared``, so both "active alerts" and
"recent alerts" are the last event of each alert_id; "history" is the events themselves.
Values reaching a query are enum members and epoch-ms integers, quoted anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from smartcity.alerts import Alert, AlertState
from smartcity.ids import check_id
from smartcity.models import format_ts, parse_ts
from smartcity.topics import Domain
from storage.influx import Series, quote_ident, quote_literal
from storage.lineprotocol import point_line

MEASUREMENT = "alerts"

TAGS = ("alert_id", "device_id", "domain", "level", "rule", "site", "source", "state", "ward")
TEXT_FIELDS = ("metric", "unit", "title_vi", "title_en", "message_vi", "message_en")

ACTIVE_WINDOW_MS = 90 * 86_400_000
"""How far back to look for alerts that are still active: an alert raised earlier and never
cleared (a sensor that died under water) drops out of the list after this long."""


def alert_line(alert: Alert) -> str:
    data = alert.model_dump(mode="json")
    fields: dict[str, float | int | str] = {"value": float(alert.value),
                                            "threshold": float(alert.threshold),
                                            "raised_at_ms": alert.raised_ms}
    fields |= {k: str(data[k]) for k in TEXT_FIELDS}
    if alert.active:
        # always written, 0 when heard: an event republished on its own point must overwrite
        # the field, never leave an old value behind
        fields["silent_since_ms"] = (parse_ts(alert.silent_since)
                                     if alert.silent_since is not None else 0)
    return point_line(MEASUREMENT, {k: str(data[k]) for k in TAGS}, fields, alert.updated_ms)


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
