"""The event contract: ids, topics, payload models and the codec, as tables."""

from __future__ import annotations

import orjson
import pytest

from smartcity import (
    ContractError,
    Domain,
    FloodTelemetry,
    InvalidId,
    InvalidPayload,
    InvalidTopic,
    Source,
    TopicFilter,
    check_id,
    decode,
    dump,
    encode_reading,
    errors_topic,
    format_ts,
    parse_device_topic,
    parse_ts,
    status_topic,
    telemetry_filter,
    telemetry_topic,
)
from smartcity.city import load_city
from smartcity.durations import parse_duration
from smartcity.topics import Kind, Topic, check_root, device_id_from_topic

TS = 1795316645123  # 2026-11-22T03:04:05.123Z


@pytest.mark.parametrize(("value", "valid"), [
    ("flood-thao-dien", True),
    ("a", True),
    ("0", True),
    ("home_01", True),
    ("a" * 64, True),
    ("a" * 65, False),
    ("", False),
    ("-leading-dash", False),
    ("_leading", False),
    ("Upper", False),
    ("has space", False),
    ("comma,tag=x", False),
    ("equals=1", False),
    ("new\nline", False),
    ("trailing-newline\n", False),
    ("plus+", False),
    ("hash#", False),
    ("slash/level", False),
    ("quote'", False),
    ("nguyễn", False),
    ("..", False),
])
def test_the_id_rule(value: str, valid: bool) -> None:
    if valid:
        assert check_id(value) == value
    else:
        with pytest.raises(InvalidId) as e:
            check_id(value, "device_id")
        assert e.value.problems[0].field == "device_id"
        assert "must match" in str(e.value)


@pytest.mark.parametrize(("build", "expected"), [
    (lambda: telemetry_topic("flood", "flood-thao-dien"), "city/flood/flood-thao-dien/telemetry"),
    (lambda: telemetry_topic(Domain.HOME, "h1", root="t1/city"), "t1/city/home/h1/telemetry"),
    (lambda: status_topic("traffic", "nguyen-huu-canh"), "city/traffic/nguyen-huu-canh/status"),
    (lambda: errors_topic("dev-1"), "city/devices/dev-1/errors"),
])
def test_topic_builders(build: object, expected: str) -> None:
    assert str(build()) == expected  # type: ignore[operator]


@pytest.mark.parametrize(("build", "error", "field"), [
    (lambda: telemetry_topic("volcano", "x"), InvalidTopic, "domain"),
    (lambda: telemetry_topic("flood", "+"), InvalidId, "device_id"),
    (lambda: telemetry_topic("flood", "#"), InvalidId, "device_id"),
    (lambda: telemetry_topic("flood", "a/b"), InvalidId, "device_id"),
    (lambda: Topic("city/flood/+/telemetry"), InvalidTopic, "topic"),
    (lambda: Topic("city/#"), InvalidTopic, "topic"),
    (lambda: Topic(""), InvalidTopic, "topic"),
    (lambda: check_root("City"), InvalidTopic, "root"),
    (lambda: check_root("city/"), InvalidTopic, "root"),
    (lambda: TopicFilter("city/#/x"), InvalidTopic, "topic"),
    (lambda: TopicFilter("city/fl+/x"), InvalidTopic, "topic"),
])
def test_topic_builders_refuse(build: object, error: type[ContractError], field: str) -> None:
    with pytest.raises(error) as e:
        build()  # type: ignore[operator]
    assert e.value.problems[0].field == field


@pytest.mark.parametrize(("pattern", "topic", "matches"), [
    ("city/+/+/telemetry", "city/flood/a/telemetry", True),
    ("city/+/+/telemetry", "city/flood/a/status", False),
    ("city/+/+/telemetry", "city/flood/a/b/telemetry", False),
    ("city/#", "city/flood/a/telemetry", True),
    ("city/#", "city", True),
    ("city/flood/#", "city/home/a/telemetry", False),
    ("#", "$SYS/broker/uptime", False),
    ("+/broker/uptime", "$SYS/broker/uptime", False),
    ("$share/ingest/city/+/+/telemetry", "city/home/h/telemetry", True),
    ("city/+", "city/", True),
    ("city/+/x", "city/a/y", False),
])
def test_topic_filter_matching(pattern: str, topic: str, matches: bool) -> None:
    assert TopicFilter(pattern).matches(topic) is matches


def test_the_ingest_filter_is_a_shared_subscription() -> None:
    assert str(telemetry_filter("city", "ingest")) == "$share/ingest/city/+/+/telemetry"
    assert str(telemetry_filter("city")) == "city/+/+/telemetry"


@pytest.mark.parametrize(("topic", "error", "field"), [
    ("elsewhere/flood/a/telemetry", InvalidTopic, "topic"),
    ("city/flood/a", InvalidTopic, "topic"),
    ("city/flood/a/status/extra", InvalidTopic, "topic"),
    ("city/flood/a/telemetry/extra/more", InvalidTopic, "topic"),
    ("city/flood/a/telemetry/Water Level", InvalidTopic, "metric"),
    ("city/volcano/a/telemetry", InvalidTopic, "domain"),
    ("city/flood/A/telemetry", InvalidId, "device_id"),
    ("city/flood/a/gossip", InvalidTopic, "kind"),
])
def test_parsing_refuses_foreign_topics(topic: str, error: type[ContractError],
                                        field: str) -> None:
    with pytest.raises(error) as e:
        parse_device_topic(topic)
    assert e.value.problems[0].field == field


def test_parsing_a_device_topic() -> None:
    parsed = parse_device_topic("t1/city/flood/flood-thao-dien/status", "t1/city")
    assert (parsed.domain, parsed.device_id, parsed.kind) == (Domain.FLOOD, "flood-thao-dien",
                                                             Kind.STATUS)
    assert device_id_from_topic("city/volcano/dev-9/telemetry") == "dev-9"
    assert device_id_from_topic("city/flood/Dev 9/telemetry") is None


@pytest.mark.parametrize(("value", "ms"), [
    ("2026-11-22T03:04:05.123Z", TS),
    ("2026-11-22T10:04:05.123+07:00", TS),
    (TS, TS),
    (float(TS), TS),
])
def test_timestamps(value: object, ms: int) -> None:
    assert parse_ts(value) == ms


@pytest.mark.parametrize(("value", "message"), [
    ("2026-11-22T03:04:05", "no UTC offset"),
    ("yesterday", "not an RFC 3339"),
    (1795316645, "epoch seconds"),
    (1, "outside the years"),
    (True, "boolean"),
    (None, "RFC 3339 string or epoch"),
])
def test_bad_timestamps(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ts(value)


def test_format_ts_round_trips() -> None:
    assert format_ts(TS) == "2026-11-22T03:04:05.123Z"
    assert parse_ts(format_ts(TS)) == TS


def payload(**fields: object) -> bytes:
    return orjson.dumps({"ts": TS, "seq": 1, **fields})


@pytest.mark.parametrize(("topic", "body", "metrics"), [
    ("city/home/h1/telemetry", payload(power_w=1200, temperature_c=29.5),
     {"power_w": 1200.0, "temperature_c": 29.5}),
    ("city/traffic/t1/telemetry", payload(speed_kmh=12.5, occupancy_pct=61, flow_veh_h=4800),
     {"speed_kmh": 12.5, "occupancy_pct": 61.0, "flow_veh_h": 4800.0}),
    ("city/flood/f1/telemetry", payload(water_level_cm=0), {"water_level_cm": 0.0}),
    ("city/weather/w1/telemetry", payload(rain_mm_h=80.5, wind_kmh=20),
     {"rain_mm_h": 80.5, "wind_kmh": 20.0}),
    ("city/flood/f1/telemetry", payload(water_level_cm=5, battery_pct=71),
     {"water_level_cm": 5.0, "battery_pct": 71.0}),
])
def test_decoding_each_domain(topic: str, body: bytes, metrics: dict[str, float]) -> None:
    reading = decode(topic, body)
    assert reading.metrics == metrics
    assert all(isinstance(v, float) for v in reading.metrics.values())
    assert (reading.ts_ms, reading.seq, reading.source) == (TS, 1, Source.LIVE)


@pytest.mark.parametrize(("body", "field", "message"), [
    (payload(water_level_cm="2"), "water_level_cm", "valid number"),
    (payload(water_level_cm=True), "water_level_cm", "valid number"),
    (payload(water_level_cm=-500), "water_level_cm", "greater than or equal"),
    (payload(water_level_cm=5000), "water_level_cm", "less than or equal"),
    (payload(water_level=2), "water_level", "carry their unit"),
    (payload(speed_kmh=2), "speed_kmh", "not a known field"),
    (payload(), "payload", "no metric given"),
    (orjson.dumps({"ts": TS, "seq": -1, "water_level_cm": 1}), "seq", "greater than or equal"),
    (orjson.dumps({"ts": TS, "seq": 1.5, "water_level_cm": 1}), "seq", "valid integer"),
    (payload(water_level_cm=1, source="imagined"), "source", "live"),
    (b'{"ts": 1795316645123, "seq": 1, "water_level_cm": NaN}', "water_level_cm", "finite"),
    (b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 1', "payload", "JSON"),
    (b"", "payload", "JSON object"),
    (b"42", "payload", "JSON object"),
])
def test_decoding_refuses_with_the_field_named(body: bytes, field: str, message: str) -> None:
    with pytest.raises(InvalidPayload) as e:
        decode("city/flood/f1/telemetry", body)
    problem = next(p for p in e.value.problems if p.field == field)
    assert message in problem.message, problem


def test_ts_and_seq_are_optional_a_reading_without_ts_is_stamped_on_arrival() -> None:
    arrived = 1_795_316_645_123
    bare = decode("city/home/h1/telemetry", b'{"temperature_c": 29.4, "humidity_pct": 71.2}',
                  now_ms=arrived)
    assert (bare.ts_ms, bare.seq) == (arrived, None)
    assert bare.metrics == {"temperature_c": 29.4, "humidity_pct": 71.2}
    stamped = decode("city/flood/f1/telemetry", b'{"seq": 1, "water_level_cm": 2}',
                     now_ms=arrived)
    counted = decode("city/flood/f1/telemetry", b'{"ts": 1795316600000, "water_level_cm": 2}',
                     now_ms=arrived)
    assert (stamped.ts_ms, stamped.seq, counted.ts_ms, counted.seq) == (
        arrived, 1, 1_795_316_600_000, None)


def test_decoding_needs_a_telemetry_topic() -> None:
    with pytest.raises(InvalidPayload, match="not a telemetry topic"):
        decode("city/flood/f1/status", payload(water_level_cm=1))


def test_models_are_frozen() -> None:
    reading = FloodTelemetry.model_validate_json(payload(water_level_cm=3))
    with pytest.raises(ValueError, match="frozen"):
        reading.seq = 2  # type: ignore[misc]


def test_encoding_round_trips() -> None:
    model = FloodTelemetry.model_validate_json(payload(water_level_cm=3.5,
                                                       source="simulated"))
    wire = dump(model)
    assert orjson.loads(wire) == {"ts": "2026-11-22T03:04:05.123Z", "seq": 1,
                                  "source": "simulated", "water_level_cm": 3.5}
    reading = decode("city/flood/f1/telemetry", wire)
    assert decode("city/flood/f1/telemetry", encode_reading(reading)) == reading


def test_the_default_city_is_valid_and_its_devices_are_registered() -> None:
    city = load_city()
    registry = city.registry()
    assert {d.domain for d in registry} == set(Domain)
    assert all(check_id(d.device_id) for d in registry)
    assert registry.get("flood-nguyen-huu-canh").ward == "thanh-my-tay"  # type: ignore[union-attr]
    assert any("ữ" in d.name for d in registry)  # Vietnamese display names, ASCII ids


def test_a_bad_city_file_names_the_field(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "city.toml"
    bad.write_text('version = 1\nname = "X"\n[[wards]]\nid = "w1"\nname = "W"\n'
                   '[[homes]]\nid = "h1"\nname = "H"\nward = "nowhere"\nlat = 1\nlon = 2\n')
    with pytest.raises(ContractError, match="unknown ward 'nowhere'"):
        load_city(bad)
    bad.write_text('version = 1\nname = "X"\n[[wards]]\nid = "W 1"\nname = "W"\n')
    with pytest.raises(ContractError) as e:
        load_city(bad)
    assert e.value.problems[0].field == "city.toml:4: wards[0].id"


# Every duration any setting, option, scenario file or query parameter took before they shared
# one parser still reads the same.
@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), (1.5, 1.5), ("90", 90.0), ("2.5", 2.5), ("0", 0.0), ("45s", 45.0),
    ("1.5s", 1.5), (".5s", 0.5), ("250ms", 0.25), ("5m", 300.0), ("0.5h", 1800.0),
    ("1h30m", 5400.0), ("1h 30m", 5400.0), ("1h2m3s", 3723.0), ("2d", 172_800.0),
    ("1w", 604_800.0), ("0s", 0.0),
])
def test_durations_as_people_write_them(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "m", "5x", "5min", "5M", "-5m", "-5", "1h-30m", "5m3",
                                   "nan", "inf", "5m; DROP", -1, True, None, float("inf")])
def test_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
