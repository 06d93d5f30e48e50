"""What InfluxDB knows of one device: stored points, when it last reported, and the messages
ingest rejected (the ``device_rejections`` measurement, written by ingest for exhibitors).

Query builders and result shaping are pure; :func:`fetch` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from api.models.devices import Rejected
from api.registration import REJECTIONS_MEASUREMENT
from smartcity.ids import check_id
from smartcity.models import format_ts
from smartcity.registry import DeviceInfo
from storage.influx import AsyncInfluxClient, Series, quote_ident, quote_literal

LAST_REJECTED = 10


def _where(device_id: str) -> str:
    return f"{quote_ident('device_id')} = {quote_literal(check_id(device_id))}"


def stored_query(device: DeviceInfo) -> str:
    m = quote_ident(device.domain.value)
    where = _where(device.device_id)
    return (f"SELECT count(*) FROM {m} WHERE {where}; "
            f"SELECT * FROM {m} WHERE {where} ORDER BY time DESC LIMIT 1")


def rejected_query(device: DeviceInfo, limit: int = LAST_REJECTED) -> str:
    m = quote_ident(REJECTIONS_MEASUREMENT)
    where = _where(device.device_id)
    return (f'SELECT count("reason_code") AS "rejected", sum("suppressed") AS "suppressed" '
            f"FROM {m} WHERE {where}; "
            f'SELECT "reason", "reason_code", "topic", "problems", "payload", "suppressed" '
            f"FROM {m} WHERE {where} ORDER BY time DESC LIMIT {int(limit)}")


@dataclass
class Facts:
    stored: int = 0
    last_seen_ms: int | None = None
    rejected: int = 0
    last_rejected_ms: int | None = None
    last_rejected: list[Rejected] = field(default_factory=list)


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def shape_stored(series: list[Series], facts: Facts) -> None:
    for s in series:
        for row in s.rows():
            if any(c.startswith("count_") for c in s.columns):
                # count(*) counts each field; a reading carries at least its most frequent one.
                facts.stored = max((_int(v) for c, v in row.items() if c.startswith("count_")),
                                   default=0)
            elif row.get("time") is not None:
                facts.last_seen_ms = int(row["time"])


def shape_rejected(series: list[Series], facts: Facts) -> None:
    for s in series:
        for row in s.rows():
            if "rejected" in row:
                facts.rejected = _int(row["rejected"]) + _int(row.get("suppressed"))
                continue
            t = int(row["time"])
            facts.last_rejected_ms = max(facts.last_rejected_ms or t, t)
            facts.last_rejected.append(Rejected(
                time=format_ts(t), reason=str(row.get("reason") or ""),
                reason_code=_int(row["reason_code"]) if row.get("reason_code") is not None
                else None,
                topic=str(row.get("topic") or ""), problems=str(row.get("problems") or ""),
                payload=str(row.get("payload") or ""), suppressed=_int(row.get("suppressed"))))


async def fetch(influx: AsyncInfluxClient, device: DeviceInfo) -> Facts:
    facts = Facts()
    shape_stored(await influx.query(stored_query(device)), facts)
    shape_rejected(await influx.query(rejected_query(device)), facts)
    return facts
