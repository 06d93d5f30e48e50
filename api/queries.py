"""InfluxQL builders and result shaping: pure functions, no I/O.

Every value that reaches a query is validated here first (ids by the id rule, metrics from
the domain's model, durations by the contract's parser, times parsed to epoch ms) and then
quoted, so a request can never change a query's meaning. Problems raise
:class:`ContractError` naming the query parameter at fault; the routes turn that into a 422.

InfluxDB 1.x returns the time of the interval's start, not of the point, when one SELECT
holds several selectors (``last(a), last(b)``), so "latest" asks one statement per metric,
aliased to the metric's name, all in one request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from smartcity.durations import UNIT_S, parse_duration
from smartcity.errors import ContractError, FieldProblem
from smartcity.ids import check_id
from smartcity.metrics import CATALOGUE
from smartcity.models import TELEMETRY_MODELS, Source, format_ts, parse_ts
from smartcity.topics import Domain
from storage.influx import Series, quote_ident, quote_literal

LAST_SEEN_WINDOW = "30d"
"""How far back "last seen" and "latest" look; older devices show as never seen."""

MAX_BUCKETS = 10_000
TARGET_BUCKETS = 300
DECIMALS = 3
"""Computed figures (means, sums) are rounded to this many decimals: sensors report one or
two, and a display should not show 38.459999999999994."""
DEFAULT_HISTORY = "1h"

# Nanoseconds in an int64 last 292 years; InfluxDB rejects longer durations.
MAX_DURATION_MS = 100 * 365 * 86_400_000
_NICE_EVERY = ("1s", "5s", "10s", "15s", "30s", "1m", "2m", "5m", "10m", "15m", "30m",
               "1h", "2h", "3h", "6h", "12h", "1d", "2d", "1w", "2w", "4w")
# A '+' in a query string arrives as a space when the client did not percent-encode it.
_SPACE_OFFSET_RE = re.compile(r"(T[0-9:.]+) ([0-9]{2}:?[0-9]{2})")


class Agg(StrEnum):
    MEAN = "mean"
    MIN = "min"
    MAX = "max"


def _problem(field: str, message: str, reason: str = "invalid query parameter") -> ContractError:
    return ContractError(reason, [FieldProblem(field, message)])


# --- metrics -----------------------------------------------------------------------------

def metric_names(domain: Domain) -> tuple[str, ...]:
    return TELEMETRY_MODELS[domain].metric_names()


def check_metric(domain: Domain, metric: str, field: str = "metric") -> str:
    names = metric_names(domain)
    if metric not in names:
        raise _problem(field, f"{metric[:40]!r} is not a metric of {domain.value} devices; "
                              f"valid: {', '.join(names)}", "unknown metric")
    return metric


def unit_of(metric: str) -> str:
    """The unit a metric is in, as people read it (``flow_veh_h`` -> ``veh/h``)."""
    m = CATALOGUE.get(metric)
    return m.unit if m else ""


# --- durations and times -----------------------------------------------------------------

def duration_ms(text: str, field: str = "every") -> int:
    """A duration (:func:`smartcity.durations.parse_duration`) in whole milliseconds, above
    zero and at most 100 years."""
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise _problem(field, str(e), "bad duration") from None
    ms = round(seconds * 1000)
    if ms < 1 or abs(seconds * 1000 - ms) > 1e-6:
        raise _problem(field, f"{text[:40]!r} is not a duration of whole milliseconds above "
                              "zero (30s, 5m, 1h)", "bad duration")
    if ms > MAX_DURATION_MS:
        raise _problem(field, f"{text[:40]!r} is longer than 100 years", "bad duration")
    return ms


def parse_time(text: str, now_ms: int, field: str) -> int:
    """``now``, ``-1h`` / ``now-1h`` (relative to now), RFC 3339 with an offset, or epoch ms."""
    text = text.strip()
    if text == "now":
        return now_ms
    relative = re.fullmatch(r"(?:now)?-(.+)", text)
    if relative:
        ms = now_ms - duration_ms(relative[1], field)
    else:
        try:
            ms = parse_ts(int(text) if text.isdigit() else _SPACE_OFFSET_RE.sub(r"\1+\2", text))
        except ValueError as e:
            hint = ("use RFC 3339 with an offset (2025-06-01T08:00:00+07:00), epoch "
                    "milliseconds, 'now', or a duration before now (-1h, now-30m)")
            raise _problem(field, f"{text[:40]!r} is not a time ({e}); {hint}",
                           "bad time") from None
    if ms < 0:
        raise _problem(field, f"{text!r} is before 1970", "bad time")
    return ms


def format_span(ms: int) -> str:
    """``90061000`` -> ``1d1h1m1s``; what a duration parameter would say, roughly."""
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, ms = divmod(ms, round(UNIT_S[unit] * 1000))
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or f"{ms}ms"


def bucket_count(start_ms: int, end_ms: int, every_ms: int) -> int:
    """Buckets of ``GROUP BY time(every)`` over [start, end): InfluxDB aligns them to the epoch."""
    return (end_ms - 1) // every_ms - start_ms // every_ms + 1


def default_every(start_ms: int, end_ms: int) -> str:
    """The finest round interval giving at most about :data:`TARGET_BUCKETS` buckets."""
    for every in _NICE_EVERY:
        if bucket_count(start_ms, end_ms, duration_ms(every)) <= TARGET_BUCKETS:
            return every
    return _NICE_EVERY[-1]


@dataclass(frozen=True)
class HistoryPlan:
    domain: Domain
    device_id: str
    metric: str
    agg: Agg
    start_ms: int
    end_ms: int
    every: str
    every_ms: int


def plan_history(domain: Domain, device_id: str, metric: str, agg: Agg, start: str | None,
                 end: str | None, every: str | None, now_ms: int) -> HistoryPlan:
    """Validate a history request; times are resolved against ``now_ms``."""
    check_id(device_id)
    check_metric(domain, metric)
    end_ms = parse_time(end, now_ms, "end") if end else now_ms
    start_ms = (parse_time(start, now_ms, "start") if start
                else end_ms - duration_ms(DEFAULT_HISTORY))
    if start_ms >= end_ms:
        raise _problem("start", f"start ({format_ts(start_ms)}) must be before end "
                                f"({format_ts(end_ms)})", "bad time range")
    every = every or default_every(start_ms, end_ms)
    every_ms = duration_ms(every, "every")
    buckets = bucket_count(start_ms, end_ms, every_ms)
    if buckets > MAX_BUCKETS:
        least = _NICE_EVERY[-1]
        for nice in _NICE_EVERY:
            if bucket_count(start_ms, end_ms, duration_ms(nice)) <= MAX_BUCKETS:
                least = nice
                break
        span = format_span(end_ms - start_ms)
        raise _problem("every", f"every={every} over {span} makes {buckets} buckets, "
                                f"more than {MAX_BUCKETS}; choose every={least} or more, or a "
                                "shorter range", "too many buckets")
    return HistoryPlan(domain, device_id, metric, agg, start_ms, end_ms, every, every_ms)


# --- query builders ----------------------------------------------------------------------

def influx_duration(ms: int) -> str:
    """``900000`` -> ``15m``: a duration literal of InfluxQL, in its largest exact unit."""
    for unit in ("w", "d", "h", "m", "s"):
        unit_ms = round(UNIT_S[unit] * 1000)
        if ms % unit_ms == 0:
            return f"{ms // unit_ms}{unit}"
    return f"{ms}ms"


def _window(window: str) -> str:
    # InfluxQL gets the duration as we read it, never the text as it came.
    return influx_duration(duration_ms(window, "window"))


def _where_device(device_id: str) -> str:
    return f"{quote_ident('device_id')} = {quote_literal(check_id(device_id))}"


def last_seen_query(domains: Iterable[Domain], window: str = LAST_SEEN_WINDOW) -> str:
    """When each device of ``domains`` last reported, and with which source tag."""
    # The newest point of each series, whatever fields it has: SenML and single-value
    # readings carry no seq.
    return "; ".join(
        f"SELECT * FROM {quote_ident(Domain(d).value)} "
        f'WHERE time > now() - {_window(window)} GROUP BY "device_id", "source" '
        "ORDER BY time DESC LIMIT 1"
        for d in domains)


def latest_query(domain: Domain, device_id: str, window: str = LAST_SEEN_WINDOW) -> str:
    """The last value of every metric of one device, each with its own time."""
    where = f"{_where_device(device_id)} AND time > now() - {_window(window)}"
    measurement = quote_ident(domain.value)
    statements = [f"SELECT last({quote_ident(m)}) AS {quote_ident(m)} FROM {measurement} "
                  f"WHERE {where}" for m in metric_names(domain)]
    statements.append(f'SELECT * FROM {measurement} WHERE {where} GROUP BY "source" '
                      "ORDER BY time DESC LIMIT 1")
    return "; ".join(statements)


def history_query(plan: HistoryPlan) -> str:
    metric = quote_ident(check_metric(plan.domain, plan.metric))
    every = influx_duration(duration_ms(plan.every))
    return (f"SELECT {Agg(plan.agg).value}({metric}) AS \"value\" "
            f"FROM {quote_ident(plan.domain.value)} WHERE {_where_device(plan.device_id)} "
            f"AND time >= {int(plan.start_ms)}ms AND time < {int(plan.end_ms)}ms "
            f"GROUP BY time({every}) fill(none)")


def last_values_query(metrics: Mapping[Domain, Sequence[str]], window: str) -> str:
    """The last value per device of each listed metric (and of ``seq``) within ``window``."""
    statements = []
    for domain, names in metrics.items():
        for m in ("seq", *(check_metric(domain, n) for n in names)):
            statements.append(
                f"SELECT last({quote_ident(m)}) AS {quote_ident(m)} FROM "
                f"{quote_ident(domain.value)} WHERE time > now() - {_window(window)} "
                'GROUP BY "device_id"')
    return "; ".join(statements)


# --- result shaping ----------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    time_ms: int
    source: Source | None


@dataclass(frozen=True)
class Value:
    value: float
    time_ms: int


def _source(tag: str | None) -> Source | None:
    try:
        return Source(tag) if tag else None
    except ValueError:
        return None


def shape_last_seen(series: Iterable[Series]) -> dict[str, Seen]:
    """device id -> its most recent point over every source tag."""
    out: dict[str, Seen] = {}
    for s in series:
        device = s.tags.get("device_id")
        for row in s.values:
            if device is None or row[0] is None:
                continue
            seen = Seen(int(row[0]), _source(s.tags.get("source")))
            if device not in out or seen.time_ms > out[device].time_ms:
                out[device] = seen
    return out


def shape_latest(series: Iterable[Series]) -> tuple[Seen | None, dict[str, Value]]:
    """The answer to :func:`latest_query`: (last seen, metric -> its last value)."""
    seen: Seen | None = None
    values: dict[str, Value] = {}
    for s in series:
        column = s.columns[1]
        newest = "source" in s.tags  # the statement that finds the newest point
        for row in s.values:
            if row[0] is None or (row[1] is None and not newest):
                continue
            if newest:
                candidate = Seen(int(row[0]), _source(s.tags.get("source")))
                if seen is None or candidate.time_ms > seen.time_ms:
                    seen = candidate
            else:
                values[column] = Value(float(row[1]), int(row[0]))
    return seen, values


def shape_history(series: Iterable[Series]) -> list[Value]:
    points = [Value(round(float(row[1]), DECIMALS), int(row[0]))
              for s in series for row in s.values if row[1] is not None]
    return sorted(points, key=lambda p: p.time_ms)


LastValues = dict[Domain, dict[str, dict[str, float]]]
"""domain -> device id -> metric (or ``seq``) -> last value."""


def shape_last_values(series: Iterable[Series]) -> LastValues:
    out: LastValues = {}
    for s in series:
        try:
            domain = Domain(s.name)
        except ValueError:
            continue
        device = s.tags.get("device_id")
        column = s.columns[1]
        for row in s.values:
            if device is not None and row[1] is not None:
                out.setdefault(domain, {}).setdefault(device, {})[column] = float(row[1])
    return out
