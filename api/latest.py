"""Each device's newest readings, in memory: what ``/latest``, ``/sensors`` and the city summary
answer from, so a hall of screens costs the api dictionary look-ups, not InfluxDB queries.

Fed by the live hub with every reading it accepts (judged as ingest judges: a registered
device, its domain, its declared metrics). Seeded from InfluxDB when the api starts and merged
with it every ``refresh_s``, for what reached InfluxDB without passing the hub: readings from
before the api started, backfilled recordings, one the hub's QoS 0 subscription missed. Each
metric keeps its newest value by the reading's own time, as InfluxDB's ``last()`` does, and
the windows (30 days for latest, 15 minutes for the summary) are applied when asked, against
the same clock the InfluxDB queries use. Until the first seed has arrived the routes ask
InfluxDB, so an answer is never emptier than the database. A reading without a time of its
own (a single value) is stamped on arrival by ingest and by the api each: its time here may
differ from the stored one by the milliseconds between the two arrivals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from api.queries import LAST_SEEN_WINDOW, LastValues, Seen, Value, duration_ms, last_seen_query
from smartcity.codec import Reading
from smartcity.models import TELEMETRY_MODELS, Source
from smartcity.topics import Domain
from storage.influx import AsyncInfluxClient, InfluxError, Series, quote_ident

log = logging.getLogger(__name__)

LATEST_WINDOW_MS = duration_ms(LAST_SEEN_WINDOW)


@dataclass(slots=True)
class _Device:
    values: dict[str, Value] = field(default_factory=dict)  # metric (and "seq") -> newest
    seen: Seen | None = None  # the newest point, and its source tag

    def put(self, name: str, value: float, time_ms: int) -> None:
        old = self.values.get(name)
        if old is None or time_ms >= old.time_ms:
            self.values[name] = Value(value, time_ms)

    def saw(self, seen: Seen) -> None:
        if self.seen is None or seen.time_ms >= self.seen.time_ms:
            self.seen = seen


class LatestStore:
    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}
        self.ready = False  # seeded from InfluxDB at least once
        self.readings = 0

    # -- feeding ------------------------------------------------------------------------------

    def add(self, reading: Reading) -> None:
        """A reading the live hub accepted (on the event loop)."""
        device = self._devices.get(reading.device_id)
        if device is None:
            device = self._devices[reading.device_id] = _Device()
        ts = reading.ts_ms
        for name, value in reading.metrics.items():
            device.put(name, float(value), ts)
        if reading.seq is not None:
            device.put("seq", float(reading.seq), ts)
        device.saw(Seen(ts, reading.source))
        self.readings += 1

    def merge(self, series: Iterable[Series]) -> None:
        """The answer to :func:`seed_query`: newer values win, whichever side has them."""
        for s in series:
            device_id = s.tags.get("device_id")
            if device_id is None:
                continue
            device = self._devices.get(device_id)
            if device is None:
                device = self._devices[device_id] = _Device()
            if "source" in s.tags:  # the statement that finds the newest point
                for row in s.values:
                    if row[0] is not None:
                        device.saw(Seen(int(row[0]), _source(s.tags["source"])))
                continue
            name = s.columns[1]
            for row in s.values:
                if row[0] is not None and row[1] is not None:
                    device.put(name, float(row[1]), int(row[0]))

    # -- answering ----------------------------------------------------------------------------

    def latest(self, device_id: str, domain: Domain, now_ms: int
               ) -> tuple[Seen | None, dict[str, Value]]:
        """As :func:`api.queries.shape_latest` reads InfluxDB: within the last 30 days."""
        device = self._devices.get(device_id)
        if device is None:
            return None, {}
        since = now_ms - LATEST_WINDOW_MS
        names = TELEMETRY_MODELS[domain].metric_names()
        values = {m: device.values[m] for m in names
                  if m in device.values and device.values[m].time_ms > since}
        seen = device.seen if device.seen and device.seen.time_ms > since else None
        return seen, values

    def last_seen(self, device_ids: Iterable[str], now_ms: int) -> dict[str, Seen]:
        since = now_ms - LATEST_WINDOW_MS
        out = {}
        for device_id in device_ids:
            device = self._devices.get(device_id)
            if device is not None and device.seen is not None and device.seen.time_ms > since:
                out[device_id] = device.seen
        return out

    def last_values(self, metrics: Mapping[Domain, Sequence[str]], domains: Mapping[str, Domain],
                    now_ms: int, window: str) -> LastValues:
        """As :func:`api.queries.shape_last_values` reads InfluxDB: each listed metric (and
        ``seq``) of each device within ``window``; ``domains`` maps device ids to domains."""
        since = now_ms - duration_ms(window, "window")
        out: LastValues = {}
        for device_id, device in self._devices.items():
            domain = domains.get(device_id)
            if domain is None or domain not in metrics:
                continue
            got = {m: v.value for m in ("seq", *metrics[domain])
                   if (v := device.values.get(m)) is not None and v.time_ms > since}
            if got:
                out.setdefault(domain, {})[device_id] = got
        return out


def _source(tag: str | None) -> Source | None:
    try:
        return Source(tag) if tag else None
    except ValueError:
        return None


def seed_query(domains: Iterable[Domain] = tuple(Domain)) -> str:
    """Every device's newest value of each metric and of ``seq``, each with its own time
    (one selector a statement: InfluxDB 1.x gives the interval's start otherwise), and each
    device's newest point with its source; all within the latest window."""
    statements = []
    for domain in domains:
        measurement = quote_ident(domain.value)
        for m in ("seq", *TELEMETRY_MODELS[domain].metric_names()):
            statements.append(f"SELECT last({quote_ident(m)}) AS {quote_ident(m)} FROM "
                              f"{measurement} WHERE time > now() - {LAST_SEEN_WINDOW} "
                              'GROUP BY "device_id"')
    return "; ".join([*statements, last_seen_query(domains)])


async def keep_merged(store: LatestStore, influx: AsyncInfluxClient, refresh_s: float) -> None:
    """Seed the store, then merge InfluxDB into it every ``refresh_s`` (a task of the
    lifespan); retries every few seconds while InfluxDB is away."""
    query = seed_query()
    while True:
        try:
            store.merge(await influx.query(query))
        except InfluxError as e:
            log.info("latest readings not merged from InfluxDB yet: %s", e)
            await asyncio.sleep(min(5.0, refresh_s))
            continue
        if not store.ready:
            log.info("latest readings seeded from InfluxDB")
        store.ready = True
        await asyncio.sleep(refresh_s)
