"""The api's pure middle: InfluxQL builders, parameter checks, result shaping, the summary."""

from __future__ import annotations

import pytest

from api import queries
from api.link import MqttLink
from api.queries import Agg, HistoryPlan, Seen, Value
from api.summary import FIGURES, summarize
from smartcity.city import load_city
from smartcity.errors import ContractError
from smartcity.models import TELEMETRY_MODELS, DeviceState, Source, parse_ts
from smartcity.settings import MqttSettings
from smartcity.topics import Domain
from storage.influx import Series

NOW = parse_ts("2026-06-01T12:00:00Z")
H = 3_600_000


def plan(**kw: object) -> HistoryPlan:
    args: dict[str, object] = {"domain": Domain.FLOOD, "device_id": "flood-thao-dien",
                               "metric": "water_level_cm", "agg": Agg.MEAN, "start": None,
                               "end": None, "every": None, "now_ms": NOW}
    args.update(kw)
    return queries.plan_history(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "expected"), [
    (queries.last_seen_query([Domain.FLOOD]),
     'SELECT * FROM "flood" WHERE time > now() - 30d '
     'GROUP BY "device_id", "source" ORDER BY time DESC LIMIT 1'),
    (queries.last_seen_query([Domain.HOME, Domain.WEATHER], "15m"),
     'SELECT * FROM "home" WHERE time > now() - 15m '
     'GROUP BY "device_id", "source" ORDER BY time DESC LIMIT 1; '
     'SELECT * FROM "weather" WHERE time > now() - 15m '
     'GROUP BY "device_id", "source" ORDER BY time DESC LIMIT 1'),
    (queries.latest_query(Domain.FLOOD, "flood-thao-dien"),
     """SELECT last("battery_pct") AS "battery_pct" FROM "flood" WHERE "device_id" = """
     """'flood-thao-dien' AND time > now() - 30d; """
     """SELECT last("water_level_cm") AS "water_level_cm" FROM "flood" WHERE "device_id" = """
     """'flood-thao-dien' AND time > now() - 30d; """
     """SELECT last("river_level_cm") AS "river_level_cm" FROM "flood" WHERE "device_id" = """
     """'flood-thao-dien' AND time > now() - 30d; """
     """SELECT * FROM "flood" WHERE "device_id" = 'flood-thao-dien' """
     """AND time > now() - 30d GROUP BY "source" ORDER BY time DESC LIMIT 1"""),
    (queries.history_query(plan(agg=Agg.MAX, start="2026-06-01T10:00:00Z", every="5m")),
     """SELECT max("water_level_cm") AS "value" FROM "flood" WHERE "device_id" = """
     """'flood-thao-dien' AND time >= 1780308000000ms AND time < 1780315200000ms """
     """GROUP BY time(5m) fill(none)"""),
    (queries.last_values_query({Domain.TRAFFIC: ["speed_kmh"]}, "15m"),
     'SELECT last("seq") AS "seq" FROM "traffic" WHERE time > now() - 15m '
     'GROUP BY "device_id"; '
     'SELECT last("speed_kmh") AS "speed_kmh" FROM "traffic" WHERE time > now() - 15m '
     'GROUP BY "device_id"'),
])
def test_query_builders(query: str, expected: str) -> None:
    assert query == expected


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: queries.latest_query(Domain.FLOOD, "a'b"), "must match"),
    (lambda: queries.latest_query(Domain.FLOOD, 'x" OR 1=1'), "must match"),
    (lambda: queries.last_seen_query([Domain.FLOOD], "1d; DROP DATABASE x"), "not a duration"),
    (lambda: queries.last_values_query({Domain.FLOOD: ["speed_kmh"]}, "15m"), "speed_kmh"),
])
def test_builders_refuse_unvalidated_values(call: object, fragment: str) -> None:
    with pytest.raises(ContractError, match=fragment):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(("text", "ms"), [
    ("1ms", 1), ("30s", 30_000), ("5m", 300_000), ("1h", H), ("2d", 48 * H), ("1w", 168 * H),
    ("5", 5000), ("1.5h", H * 3 // 2), ("5 m", 300_000), ("05m", 300_000), ("1h30m", H * 3 // 2),
    ("1.1s", 1100),
])
def test_duration_ms(text: str, ms: int) -> None:
    assert queries.duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "0s", "0.5ms", "m", "5min", "-5m", "5M",
                                  "99999999w", "5m; DROP", "5m) fill(0"])
def test_duration_ms_refuses(text: str) -> None:
    with pytest.raises(ContractError, match="every"):
        queries.duration_ms(text)


@pytest.mark.parametrize(("text", "ms"), [
    ("now", NOW),
    ("-1h", NOW - H),
    ("now-30m", NOW - H // 2),
    ("2026-06-01T10:00:00Z", NOW - 2 * H),
    ("2026-06-01T17:00:00+07:00", NOW - 2 * H),
    ("2026-06-01T17:00:00 07:00", NOW - 2 * H),  # '+' left unencoded in a query string
    (str(NOW - H), NOW - H),
])
def test_parse_time(text: str, ms: int) -> None:
    assert queries.parse_time(text, NOW, "start") == ms


@pytest.mark.parametrize(("text", "fragment"), [
    ("yesterday", "'yesterday' is not a time"),
    ("2026-06-01T10:00:00", "no UTC offset"),
    ("1h", "'1h' is not a time"),
    ("-1 hour", "not a duration"),
    ("1999-01-01T00:00:00Z", "2000-2099"),
])
def test_parse_time_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ContractError, match=fragment) as info:
        queries.parse_time(text, NOW, "start")
    assert info.value.problems[0].field == "start"


@pytest.mark.parametrize(("ms", "text"), [
    (0, "0ms"), (500, "500ms"), (90_061_000, "1d1h1m1s"), (30 * 24 * H, "30d"), (2 * H, "2h"),
])
def test_format_span(ms: int, text: str) -> None:
    assert queries.format_span(ms) == text


@pytest.mark.parametrize(("start", "end", "every", "count"), [
    (0, 60_000, 60_000, 1),
    (0, 60_001, 60_000, 2),
    (30_000, 90_000, 60_000, 2),  # buckets are aligned to the epoch, not to start
    (59_999, 60_000, 60_000, 1),
])
def test_bucket_count(start: int, end: int, every: int, count: int) -> None:
    assert queries.bucket_count(start, end, every) == count


@pytest.mark.parametrize(("span", "every"), [
    (60_000, "1s"), (H, "15s"), (6 * H, "2m"), (24 * H, "5m"), (7 * 24 * H, "1h"),
    (365 * 24 * H, "2d"),
])
def test_default_every(span: int, every: str) -> None:
    assert queries.default_every(NOW - span, NOW) == every
    assert queries.bucket_count(NOW - span, NOW, queries.duration_ms(every)) <= 300


def test_plan_defaults_to_the_last_hour() -> None:
    p = plan()
    assert (p.start_ms, p.end_ms, p.every, p.agg) == (NOW - H, NOW, "15s", Agg.MEAN)


@pytest.mark.parametrize(("kw", "field", "fragment"), [
    ({"metric": "water_level"}, "metric", "valid: battery_pct, water_level_cm"),
    ({"metric": "speed_kmh"}, "metric", "not a metric of flood devices"),
    ({"start": "now", "end": "-1h"}, "start", "must be before end"),
    ({"start": "-1h", "end": "-1h"}, "start", "must be before end"),
    ({"start": "-2d", "every": "1s"}, "every",
     "every=1s over 2d makes 172800 buckets, more than 10000; choose every=30s"),
    ({"every": "fortnight"}, "every", "'fortnight' is not a duration"),
    ({"end": "tomorrow"}, "end", "'tomorrow' is not a time"),
])
def test_plan_refuses(kw: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(ContractError) as info:
        plan(**kw)
    assert info.value.problems[0].field == field
    assert fragment in info.value.problems[0].message


def test_every_metric_has_a_unit() -> None:
    for model in TELEMETRY_MODELS.values():
        for metric in model.metric_names():
            assert queries.unit_of(metric), metric
    assert queries.unit_of("water_level_cm") == "cm"
    assert queries.unit_of("temperature_c") == "°C"
    assert queries.unit_of("flow_veh_h") == "veh/h"


def test_summary_figures_are_metrics_of_their_domain() -> None:
    for domain, metrics in FIGURES.items():
        for m in metrics:
            queries.check_metric(domain, m)


def test_shape_last_seen_takes_the_newest_source() -> None:
    series = [
        Series("flood", ["time", "seq"], [[1000, 5]], {"device_id": "a", "source": "simulated"}),
        Series("flood", ["time", "seq"], [[3000, 1]], {"device_id": "a", "source": "live"}),
        Series("flood", ["time", "seq"], [[2000, 9]], {"device_id": "b", "source": "weird"}),
    ]
    assert queries.shape_last_seen(series) == {"a": Seen(3000, Source.LIVE), "b": Seen(2000, None)}


def test_shape_latest_keeps_each_metrics_own_time() -> None:
    series = [
        Series("flood", ["time", "battery_pct"], [[2000, 80]]),
        Series("flood", ["time", "water_level_cm"], [[1000, 14.5]]),
        Series("flood", ["time", "seq"], [[2000, 7]], {"source": "simulated"}),
    ]
    seen, values = queries.shape_latest(series)
    assert seen == Seen(2000, Source.SIMULATED)
    assert values == {"battery_pct": Value(80.0, 2000), "water_level_cm": Value(14.5, 1000)}
    assert isinstance(values["battery_pct"].value, float)
    assert queries.shape_latest([]) == (None, {})


def test_shape_history_sorts_and_skips_nulls() -> None:
    series = [Series("flood", ["time", "value"],
                     [[2000, 38.459999999999994], [1000, 1.5], [3000, None]])]
    assert queries.shape_history(series) == [Value(1.5, 1000), Value(38.46, 2000)]


def _last(rows: dict[str, dict[str, float]], domain: str) -> list[Series]:
    out = []
    for device, metrics in rows.items():
        for metric, value in metrics.items():
            out.append(Series(domain, ["time", metric], [[NOW, value]], {"device_id": device}))
    return out


def test_summarize() -> None:
    city = load_city()
    levels = {s.device_id: s.warning_cm for s in city.flood_sites}
    series = [
        *_last({"home-le-thanh-ton": {"seq": 1, "power_w": 1200, "temperature_c": 30,
                                      "pm25_ugm3": 35},
                "home-thao-dien": {"seq": 1, "power_w": 800.5, "pm25_ugm3": 80},
                "home-huynh-tan-phat": {"seq": 1, "temperature_c": 27},
                "not-in-the-registry": {"seq": 1, "power_w": 99999}}, "home"),
        *_last({"ton-duc-thang": {"seq": 1, "speed_kmh": 12},
                "saigon-bridge": {"seq": 1, "speed_kmh": 9.5},
                "mai-chi-tho": {"seq": 1, "speed_kmh": 40}}, "traffic"),
        *_last({"flood-thao-dien": {"seq": 1, "water_level_cm": 15},  # warning at 15 cm
                "flood-nguyen-huu-canh": {"seq": 1, "water_level_cm": 19.9},  # warning at 20
                "flood-huynh-tan-phat": {"seq": 1, "water_level_cm": 31}}, "flood"),
    ]
    s = summarize(queries.shape_last_values(series), city.registry(), levels, NOW)
    assert s.generated_at == "2026-06-01T12:00:00.000Z"
    assert (s.home.devices_total, s.home.devices_reporting) == (4, 3)
    assert s.home.total_power_w == 2000.5
    assert s.home.mean_temperature_c == 28.5
    assert s.home.max_pm25_ugm3 is not None
    assert (s.home.max_pm25_ugm3.device_id, s.home.max_pm25_ugm3.value) == ("home-thao-dien", 80)
    assert s.home.max_pm25_ugm3.name == "Biệt thự Thảo Điền"
    assert (s.traffic.devices_total, s.traffic.devices_reporting) == (7, 3)
    assert s.traffic.mean_speed_kmh == 20.5
    assert s.traffic.slowest is not None
    assert (s.traffic.slowest.device_id, s.traffic.slowest.value) == ("saigon-bridge", 9.5)
    assert s.traffic.congested == ["saigon-bridge", "ton-duc-thang"]
    assert s.traffic.congested_count == 2
    assert s.flood.max_water_level_cm is not None
    assert s.flood.max_water_level_cm.site == "flood-huynh-tan-phat"
    assert [(w.device_id, w.water_level_cm, w.warning_cm) for w in s.flood.at_warning] == [
        ("flood-huynh-tan-phat", 31, 20), ("flood-thao-dien", 15, 15)]
    assert s.flood.at_warning_count == 2
    assert (s.weather.devices_reporting, s.weather.max_rain_mm_h,
            s.weather.mean_temperature_c) == (0, None, None)


@pytest.mark.parametrize(("topic", "payload", "accepted"), [
    ("r/flood/flood-a/status", b'{"state":"online","ts":"2026-06-01T12:00:00Z"}', True),
    ("r/flood/flood-a/status", b'{"state":"offline"}', True),
    ("r/flood/flood-a/status", b'{"state":"sleepy"}', False),
    ("r/flood/flood-a/status", b"online", False),
    ("r/flood/flood-a/status", b'{"state":"online","extra":1}', False),
    ("r/flood/Flood-A/status", b'{"state":"online"}', False),
    ("r/lava/flood-a/status", b'{"state":"online"}', False),
    ("r/flood/flood-a/telemetry", b'{"state":"online"}', False),
])
def test_status_handle(topic: str, payload: bytes, accepted: bool) -> None:
    tracker = MqttLink(MqttSettings(root="r"))
    if accepted:
        tracker.handle(topic, payload)
        state = tracker.state("flood-a")
        assert state is not None and state.state in (DeviceState.ONLINE, DeviceState.OFFLINE)
        tracker.handle(topic, b"")  # a cleared retained status forgets the device
        assert tracker.state("flood-a") is None
    else:
        with pytest.raises(ContractError):
            tracker.handle(topic, payload)
        assert tracker.states() == {}
