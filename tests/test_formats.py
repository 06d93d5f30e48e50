"""The formats exhibitors' devices send, as tables: what each is read as, every reason a
message is refused (with the field named and its MQTT 5 reason code), declared metrics, the
stored rejection records, and device profiles. Pure: no broker, no database."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from ingest.judge import Accepted, Judge, Rejection
from smartcity.city import load_city
from smartcity.codec import SENML_METRICS, Reading, decode, decode_message
from smartcity.errors import (
    REASON_CODES,
    ContractError,
    InvalidPayload,
    MqttReasonCode,
    Reason,
    reason_code,
)
from smartcity.models import METRIC_BOUNDS, Source
from smartcity.profiles import Change, Profile, apply_profile, decode_profile
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import (
    Domain,
    Kind,
    device_id_from_topic,
    parse_device_topic,
    value_filter,
    value_topic,
)
from storage.lineprotocol import printable, rejection_line, to_line

NOW = 1795316645123  # 2026-11-22T03:04:05.123Z: when the message arrived
S = 1795316000  # an absolute SenML time, in seconds
MS = S * 1000
LIVE = Source.LIVE

EXPO = DeviceInfo(device_id="expo-flood-1", domain=Domain.FLOOD, name="Gian A3",
                  ward="an-khanh", site="expo-flood-1", lat=10.8, lon=106.7, source=LIVE,
                  metrics=("water_level_cm",))
# A registry entry that could not be stored; only reachable through a registry built by hand.
BROKEN = DeviceInfo.model_construct(device_id="broken-entry", domain=Domain.FLOOD, name="B",
                                    ward="w\n1", site="b", lat=0.0, lon=0.0, source=LIVE,
                                    metrics=())


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge(Registry([*load_city().registry(), EXPO, BROKEN]), "city", 4096)


def readings(topic: str, payload: bytes) -> list[tuple[int, int | None, dict[str, float]]]:
    got = decode_message(f"city/{topic}", payload, "city", now_ms=NOW)
    assert all(r.source is LIVE and r.device_id == topic.split("/")[1] for r in got)
    assert all(isinstance(v, float) for r in got for v in r.metrics.values())
    return [(r.ts_ms, r.seq, r.metrics) for r in got]


def j(value: Any) -> bytes:
    return orjson.dumps(value)


# -- accepted: one table per format ---------------------------------------------------------

JSON_OBJECTS = [
    ("flood/flood-thao-dien/telemetry", j({"ts": NOW - 5, "seq": 3, "water_level_cm": 12.5}),
     [(NOW - 5, 3, {"water_level_cm": 12.5})]),
    ("home/home-thao-dien/telemetry", j({"ts": "2026-11-22T10:04:05.123+07:00", "seq": 0,
                                         "power_w": 900, "temperature_c": 29}),
     [(NOW, 0, {"power_w": 900.0, "temperature_c": 29.0})]),
    ("flood/flood-thao-dien/telemetry", b'  {"ts": 1795316645123, "seq": 1, "battery_pct": 80}',
     [(NOW, 1, {"battery_pct": 80.0})]),
]


@pytest.mark.parametrize(("topic", "payload", "expected"), JSON_OBJECTS)
def test_our_json_object(topic: str, payload: bytes, expected: list[Any]) -> None:
    assert readings(topic, payload) == expected


SENML = [
    # our own names: no unit, or the metric's own unit; no time at all is "now"
    ("flood/flood-thao-dien/telemetry", [{"n": "water_level_cm", "v": 12.5}],
     [(NOW, None, {"water_level_cm": 12.5})]),
    ("flood/flood-thao-dien/telemetry", [{"n": "water_level_cm", "u": "cm", "v": 7, "t": S}],
     [(MS, None, {"water_level_cm": 7.0})]),
    # a plain name with a unit of the registry, converted: m to cm
    ("flood/flood-thao-dien/telemetry",
     [{"bn": "flood-thao-dien:", "bt": S, "n": "water_level", "u": "m", "v": 0.235}],
     [(MS, None, {"water_level_cm": 23.5})]),
    # urn-style base name ending with the device id, base unit, records at two times
    ("flood/flood-thao-dien/telemetry",
     [{"bn": "urn:dev:mac:0024befffe804ff1:flood-thao-dien:", "bt": S, "bu": "cm",
       "n": "water_level", "v": 10},
      {"n": "water_level", "v": 12, "t": 60},
      {"n": "battery", "u": "%EL", "v": 80}],
     [(MS, None, {"water_level_cm": 10.0, "battery_pct": 80.0}),
      (MS + 60_000, None, {"water_level_cm": 12.0})]),
    # times below 2**28 s are relative to now; oldest first
    ("flood/flood-thao-dien/telemetry",
     [{"n": "water_level_cm", "v": 6}, {"n": "water_level_cm", "v": 5, "t": -30.5}],
     [(NOW - 30_500, None, {"water_level_cm": 5.0}), (NOW, None, {"water_level_cm": 6.0})]),
    ("flood/flood-thao-dien/telemetry",
     [{"bt": -120, "n": "water_level_cm", "v": 1}, {"n": "water_level_cm", "v": 2, "t": 60}],
     [(NOW - 120_000, None, {"water_level_cm": 1.0}), (NOW - 60_000, None,
                                                      {"water_level_cm": 2.0})]),
    # a base value is added to the value
    ("flood/flood-thao-dien/telemetry", [{"bv": 10, "n": "water_level_cm", "v": 2.5}],
     [(NOW, None, {"water_level_cm": 12.5})]),
    # a smart home's whole set at one time; kW to W, pm2.5 spelt the usual way
    ("home/home-thao-dien/telemetry",
     [{"bn": "home-thao-dien/", "bt": S, "n": "temperature", "u": "Cel", "v": 29.5},
      {"n": "humidity", "u": "%RH", "v": 71}, {"n": "power", "u": "kW", "v": 1.25},
      {"n": "pm2.5", "u": "ug/m3", "v": 18}, {"n": "co2", "u": "ppm", "v": 640}],
     [(MS, None, {"temperature_c": 29.5, "humidity_pct": 71.0, "power_w": 1250.0,
                  "pm25_ugm3": 18.0, "co2_ppm": 640.0})]),
    # traffic: m/s to km/h, a ratio to %, vehicles a minute to an hour
    ("traffic/nguyen-huu-canh/telemetry",
     [{"bt": S, "n": "speed", "u": "m/s", "v": 5}, {"n": "occupancy", "u": "/", "v": 0.42},
      {"n": "flow", "u": "1/min", "v": 30}],
     [(MS, None, {"speed_kmh": 18.0, "occupancy_pct": 42.0, "flow_veh_h": 1800.0})]),
    # weather: names are not case-sensitive, units are
    ("weather/rain-sai-gon/telemetry",
     [{"bt": S, "n": "Rain", "u": "mm/h", "v": 42}, {"n": "Temperature", "u": "Cel", "v": 31},
      {"n": "wind", "u": "m/s", "v": 2.5}],
     [(MS, None, {"rain_mm_h": 42.0, "temperature_c": 31.0, "wind_kmh": 9.0})]),
    # a header record, an update time, a sum, a vendor field: read past, not refused
    ("flood/flood-thao-dien/telemetry",
     [{"bn": "flood-thao-dien/", "bt": S, "bver": 10},
      {"n": "water_level_cm", "v": 1, "ut": 60, "x-vendor": "abc"},
      {"n": "water_level_cm", "s": 100, "t": 1}],
     [(MS, None, {"water_level_cm": 1.0})]),
    # the device named without a separator, in n, or in the base name alone
    ("flood/flood-thao-dien/telemetry",
     [{"bn": "flood-thao-dien", "n": "water_level", "u": "cm", "v": 3, "t": S}],
     [(MS, None, {"water_level_cm": 3.0})]),
    ("flood/flood-thao-dien/telemetry", [{"n": "flood-thao-dien:water_level_cm", "v": 3}],
     [(NOW, None, {"water_level_cm": 3.0})]),
    ("flood/flood-thao-dien/telemetry", [{"bn": "flood-thao-dien/water_level_cm", "v": 3}],
     [(NOW, None, {"water_level_cm": 3.0})]),
]


@pytest.mark.parametrize(("topic", "pack", "expected"), SENML)
def test_senml(topic: str, pack: list[dict[str, Any]], expected: list[Any]) -> None:
    assert readings(topic, j(pack)) == expected


SINGLE_VALUES = [
    ("flood/flood-thao-dien/telemetry/water_level_cm", b"21.5", {"water_level_cm": 21.5}),
    ("flood/flood-thao-dien/telemetry/water_level_cm", b" 21.5\r\n", {"water_level_cm": 21.5}),
    ("flood/flood-thao-dien/telemetry/river_level_cm", b"-3", {"river_level_cm": -3.0}),
    ("home/home-thao-dien/telemetry/power_w", b"1e3", {"power_w": 1000.0}),
    ("home/home-thao-dien/telemetry/temperature_c", b"+29.", {"temperature_c": 29.0}),
    ("weather/rain-sai-gon/telemetry/battery_pct", b"0", {"battery_pct": 0.0}),
]


@pytest.mark.parametrize(("topic", "payload", "metrics"), SINGLE_VALUES)
def test_single_values_are_stamped_when_they_arrive(topic: str, payload: bytes,
                                                    metrics: dict[str, float]) -> None:
    assert readings(topic, payload) == [(NOW, None, metrics)]


def test_the_senml_table_covers_exactly_the_contracts_metrics() -> None:
    assert set(SENML_METRICS) == {m for b in METRIC_BOUNDS.values() for m in b}


def test_decode_still_reads_our_json_object_only() -> None:
    body = j({"ts": NOW, "seq": 1, "water_level_cm": 2})
    assert decode("city/flood/f1/telemetry", body).seq == 1
    with pytest.raises(InvalidPayload, match="JSON object"):
        decode("city/flood/f1/telemetry", j([{"n": "water_level_cm", "v": 1}]))


# -- refused: every reason, with the field named -------------------------------------------

BIG = j({"ts": NOW, "seq": 1, "water_level_cm": 3, "pad": "x" * 5000})
F = "city/flood/flood-thao-dien/telemetry"
H = "city/home/home-thao-dien/telemetry"
E = "city/flood/expo-flood-1/telemetry"


def pack(**record: Any) -> bytes:
    return j([record])


REFUSALS: list[tuple[str, bytes, Reason, str]] = [
    # the topic
    ("other/flood/flood-thao-dien/telemetry", b"1", Reason.OUTSIDE_ROOT, "topic"),
    ("city/flood/flood-thao-dien", b"1", Reason.TOPIC_LEVELS, "topic"),
    (F + "/water_level_cm/more", b"1", Reason.TOPIC_LEVELS, "topic"),
    ("city/volcano/flood-thao-dien/telemetry", b"{}", Reason.UNKNOWN_DOMAIN, "domain"),
    ("city/flood/BAD ID/telemetry", b"{}", Reason.INVALID_ID, "device_id"),
    ("city/flood/flood-thao-dien/gossip", b"{}", Reason.TOPIC_KIND, "kind"),
    ("city/flood/flood-thao-dien/status", b'{"state": "online"}', Reason.NOT_TELEMETRY, "topic"),
    (F + "/water_level", b"3", Reason.UNKNOWN_TOPIC_METRIC, "metric"),
    (F + "/power_w", b"3", Reason.UNKNOWN_TOPIC_METRIC, "metric"),
    (F + "/Water", b"3", Reason.UNKNOWN_TOPIC_METRIC, "metric"),
    # the payload
    (F, BIG, Reason.TOO_LARGE, "payload"),
    (F, b"{oops", Reason.NOT_JSON, "payload"),
    (F, b"[{oops", Reason.NOT_JSON, "payload"),
    (F, b"42", Reason.UNKNOWN_FORMAT, "payload"),
    (F, b'"hello"', Reason.UNKNOWN_FORMAT, "payload"),
    (F, b"", Reason.UNKNOWN_FORMAT, "payload"),
    (F + "/water_level_cm", b'"21.5"', Reason.NOT_A_NUMBER, "payload"),
    (F + "/water_level_cm", b"21,5", Reason.NOT_A_NUMBER, "payload"),
    (F + "/water_level_cm", b"true", Reason.NOT_A_NUMBER, "payload"),
    (F + "/water_level_cm", b"nan", Reason.NOT_A_NUMBER, "payload"),
    (F + "/water_level_cm", b"", Reason.NOT_A_NUMBER, "payload"),
    (F + "/water_level_cm", b"{\"v\": 1}", Reason.NOT_A_NUMBER, "payload"),
    (F, j({"ts": NOW, "seq": 1, "water_level_cm": "3"}), Reason.CONTRACT, "water_level_cm"),
    (F, j({"ts": NOW, "seq": 1, "water_level_cm": True}), Reason.CONTRACT, "water_level_cm"),
    (F, j({"ts": NOW, "seq": 1, "water_level_cm": 5000}), Reason.CONTRACT, "water_level_cm"),
    (F, pack(n="water_level_cm", v="3"), Reason.CONTRACT, "[0].v"),
    (F, pack(n="water_level_cm", v=True), Reason.CONTRACT, "[0].v"),
    (F, pack(n="water_level_cm", v=None), Reason.CONTRACT, "[0].v"),
    (F, pack(n="water_level_cm", vs="3"), Reason.CONTRACT, "[0].vs"),
    (F, pack(n="water_level_cm", vb=False), Reason.CONTRACT, "[0].vb"),
    (F, pack(n="water_level_cm", vd="AAEC"), Reason.CONTRACT, "[0].vd"),
    (F, pack(n="water_level", u="m", v=30), Reason.CONTRACT, "[0].v"),  # 3000 cm
    (F + "/water_level_cm", b"-200", Reason.CONTRACT, "water_level_cm"),
    (F + "/water_level_cm", b"1e999", Reason.CONTRACT, "water_level_cm"),
    (F, b"[]", Reason.INVALID_SENML, "payload"),
    (F, b"[1, 2]", Reason.INVALID_SENML, "[0]"),
    (F, pack(n="water_level_cm", v=1, foo_=1), Reason.INVALID_SENML, "[0].foo_"),
    (F, pack(bver=11, n="water_level_cm", v=1), Reason.INVALID_SENML, "[0].bver"),
    (F, pack(bt=NOW, n="water_level_cm", v=1), Reason.INVALID_SENML, "[0].bt"),  # ms, not s
    (F, pack(bt="2026-11-22", n="water_level_cm", v=1), Reason.INVALID_SENML, "[0].bt"),
    (F, pack(n=7, v=1), Reason.INVALID_SENML, "[0].n"),
    (F, pack(n="water level", v=1), Reason.INVALID_SENML, "[0].n"),
    (F, pack(v=1), Reason.INVALID_SENML, "[0]"),
    (F, pack(n="water_level_cm"), Reason.INVALID_SENML, "[0]"),
    (F, pack(n="water_level_cm", v=1, vs="1"), Reason.INVALID_SENML, "[0]"),
    (F, pack(bn="flood-thao-dien:", bt=S), Reason.INVALID_SENML, "payload"),
    (F, j([{"n": "water_level_cm", "v": 1}, {"n": "water_level_cm", "v": 2}]),
     Reason.INVALID_SENML, "[1]"),
    (F, pack(n="lava", v=1), Reason.UNKNOWN_METRIC, "[0].n"),
    (F, pack(n="temperature", u="Cel", v=30), Reason.UNKNOWN_METRIC, "[0].n"),
    (F, pack(n="water_level_cm", u="m", v=1), Reason.WRONG_UNIT, "[0].u"),
    (F, pack(n="water_level", v=1), Reason.WRONG_UNIT, "[0].n"),
    (H, pack(bu="Far", n="temperature", v=80), Reason.WRONG_UNIT, "bu"),
    (H, pack(n="humidity", u="%", v=70), Reason.WRONG_UNIT, "[0].u"),
    (E, j({"ts": NOW, "seq": 1, "river_level_cm": 100}), Reason.UNDECLARED_METRIC,
     "river_level_cm"),
    (E, pack(n="battery", u="%EL", v=90), Reason.UNDECLARED_METRIC, "battery_pct"),
    (E + "/battery_pct", b"90", Reason.UNDECLARED_METRIC, "battery_pct"),
    # the device
    ("city/flood/ghost/telemetry", j({"ts": NOW, "seq": 1, "water_level_cm": 1}),
     Reason.UNKNOWN_DEVICE, "device_id"),
    ("city/flood/ghost/telemetry/water_level_cm", b"1", Reason.UNKNOWN_DEVICE, "device_id"),
    ("city/home/flood-thao-dien/telemetry", j({"ts": NOW, "seq": 1, "power_w": 1}),
     Reason.WRONG_DOMAIN, "domain"),
    ("city/dev/expo-flood-1/tele/booth/SENSOR", b"{}", Reason.NATIVE_TOPIC, "topic"),
    ("city/dev/ghost/tele/booth/SENSOR", b"{}", Reason.UNKNOWN_DEVICE, "device_id"),
    ("city/flood/broken-entry/telemetry", j({"ts": NOW, "seq": 1, "water_level_cm": 1}),
     Reason.UNSTORABLE, "payload"),
]


@pytest.mark.parametrize(("topic", "payload", "reason", "field"), REFUSALS)
def test_every_refusal_names_its_reason_and_field(judge: Judge, topic: str, payload: bytes,
                                                  reason: Reason, field: str) -> None:
    verdict = judge(topic, payload, NOW)
    assert isinstance(verdict, Rejection), verdict
    assert verdict.reason == reason, verdict.problems
    assert field in [p.field for p in verdict.problems], verdict.problems
    assert all(p.message for p in verdict.problems)
    assert verdict.device_id == device_id_from_topic(topic, "city")
    assert verdict.code is REASON_CODES[reason]


def test_the_refusal_table_covers_every_reason() -> None:
    # The broker's own refusals are read from its log (tests/test_broker_refusals.py).
    assert {r for _, _, r, _ in REFUSALS} == set(Reason) - {Reason.BROKER_REFUSED}


@pytest.mark.parametrize(("payload", "message"), [
    (b'"21.5"', "send the bare number (21.5)"),
    (b"21,5", "not a number such as 21.5"),
])
def test_a_single_value_refusal_says_what_to_send(payload: bytes, message: str) -> None:
    with pytest.raises(ContractError) as e:
        decode_message(F + "/water_level_cm", payload, "city", now_ms=NOW)
    assert message in e.value.problems[0].message


@pytest.mark.parametrize(("payload", "message"), [
    (pack(n="water_level", v=1), "send it in cm or m or mm, or name it water_level_cm"),
    (pack(n="water_level_cm", u="m", v=1), "send u 'cm' or none"),
    (pack(n="temperature", u="Cel", v=1), "means temperature_c, which is not a flood metric"),
    (pack(bt=NOW, n="water_level_cm", v=1), "seconds, not milliseconds"),
    (pack(n="water_level_cm", vs="3"), "send it as v, not a string (vs)"),
])
def test_a_senml_refusal_says_what_to_send(payload: bytes, message: str) -> None:
    with pytest.raises(ContractError) as e:
        decode_message(F, payload, "city", now_ms=NOW)
    assert message in e.value.problems[0].message, e.value.problems


def test_undeclared_metrics_are_named_with_the_declared_ones(judge: Judge) -> None:
    verdict = judge(E, j({"ts": NOW, "seq": 1, "water_level_cm": 1, "river_level_cm": 2,
                          "battery_pct": 50}), NOW)
    assert isinstance(verdict, Rejection)
    assert sorted(p.field for p in verdict.problems) == ["battery_pct", "river_level_cm"]
    assert all("declared: water_level_cm" in p.message for p in verdict.problems)


def test_a_declared_metric_passes_and_a_city_device_may_send_any_of_its_domain(
        judge: Judge) -> None:
    assert isinstance(judge(E, pack(n="water_level", u="cm", v=4), NOW), Accepted)
    assert isinstance(judge(F, j({"ts": NOW, "seq": 1, "river_level_cm": 2,
                                  "battery_pct": 50}), NOW), Accepted)


def test_a_message_is_refused_whole(judge: Judge) -> None:
    # One bad record refuses the pack: no half-stored message.
    verdict = judge(F, j([{"n": "water_level_cm", "v": 1}, {"n": "lava", "v": 2, "t": 1}]), NOW)
    assert isinstance(verdict, Rejection) and verdict.reason == Reason.UNKNOWN_METRIC


def test_a_report_names_at_most_twenty_records() -> None:
    bad = [{"n": "lava", "v": i, "t": i} for i in range(30)]
    with pytest.raises(ContractError) as e:
        decode_message(F, j([{"n": "water_level", "v": 1}, *bad]), "city", now_ms=NOW)
    assert e.value.reason == Reason.WRONG_UNIT  # the first record's reason, and only its
    assert [p.field for p in e.value.problems] == ["[0].n"]
    with pytest.raises(ContractError) as e:
        decode_message(F, j(bad), "city", now_ms=NOW)
    assert len(e.value.problems) == 21
    assert e.value.problems[-1].message == "10 more records are refused for the same reason"


# -- MQTT 5 reason codes ---------------------------------------------------------------------

@pytest.mark.parametrize(("reason", "code", "name"), [
    (Reason.NOT_JSON, 0x99, "Payload format invalid"),
    (Reason.CONTRACT, 0x99, "Payload format invalid"),
    (Reason.INVALID_SENML, 0x99, "Payload format invalid"),
    (Reason.UNDECLARED_METRIC, 0x99, "Payload format invalid"),
    (Reason.TOO_LARGE, 0x95, "Packet too large"),
    (Reason.UNKNOWN_DOMAIN, 0x90, "Topic Name invalid"),
    (Reason.UNKNOWN_TOPIC_METRIC, 0x90, "Topic Name invalid"),
    (Reason.UNKNOWN_DEVICE, 0x87, "Not authorized"),
    (Reason.WRONG_DOMAIN, 0x87, "Not authorized"),
    (Reason.BROKER_REFUSED, 0x87, "Not authorized"),
    (Reason.NATIVE_TOPIC, 0x90, "Topic Name invalid"),
    (Reason.UNSTORABLE, 0x83, "Implementation specific error"),
])
def test_reason_codes(reason: Reason, code: int, name: str) -> None:
    assert reason_code(reason) == code and reason_code(reason).spec_name == name
    assert reason_code(str(reason)) == code  # the plain string a report carries


def test_every_reason_has_a_code_and_others_are_implementation_specific() -> None:
    assert set(REASON_CODES) == set(Reason)
    assert reason_code("something new") is MqttReasonCode.IMPLEMENTATION_SPECIFIC_ERROR


# -- what is stored --------------------------------------------------------------------------

def test_a_reading_without_seq_is_stored_without_it(judge: Judge) -> None:
    verdict = judge(F, j([{"bt": S, "n": "water_level_cm", "v": 1},
                          {"n": "water_level_cm", "v": 2, "t": 60}]), NOW)
    assert isinstance(verdict, Accepted) and (verdict.seq, verdict.points) == (None, 2)
    key = "flood,device_id=flood-thao-dien,site=flood-thao-dien,source=live,ward=an-khanh"
    assert verdict.line.split("\n") == [f"{key} water_level_cm=1.0 {MS}",
                                        f"{key} water_level_cm=2.0 {MS + 60_000}"]
    device = load_city().registry().get("flood-thao-dien")
    assert device is not None
    reading = Reading(Domain.FLOOD, "flood-thao-dien", MS, 4, LIVE, {"water_level_cm": 1.0})
    assert to_line(reading, device) == f"{key} water_level_cm=1.0,seq=4i {MS}"


HOSTILE: list[tuple[bytes, str]] = [
    (b'{"say": "hi"}', '{"say": "hi"}'),  # quotes stay readable
    (b"back\\slash", "back\\\\slash"),
    (b"two\nlines\r\n", "two\\nlines\\r\\n"),
    (b"nul\x00here\x7f", "nul\\u0000here\\u007f"),
    (b"tab\tend", "tab\\tend"),
    (b"bad \xff\xfe utf-8", "bad \ufffd\ufffd utf-8"),
    ("ngập\u2028sâu".encode(), "ngập\\u2028sâu"),
    ("tag \U000e0041".encode(), "tag \\udb40\\udc41"),
    (b'",x=1 1\nflood,device_id=evil water_level_cm=9', '",x=1 1\\nflood,device_id=evil '
                                                       "water_level_cm=9"),
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE)
def test_untrusted_text_is_made_printable(raw: bytes, shown: str) -> None:
    assert printable(raw, 256) == shown
    assert shown.isprintable()
    # JSON string escapes: the api can show exactly what the device sent.
    assert json.loads('"' + shown.replace('"', '\\"') + '"') == raw.decode("utf-8", "replace")


@pytest.mark.parametrize(("raw", "chars"), [
    (b"a" * 300, 256),
    ("ữ".encode() * 200, 85),  # 3 bytes each
    (b"a" * 255 + "ữ".encode(), 255),  # the character the limit cuts is left out
    (b"\x00" * 100, 42),  # 6 bytes per escape; an escape is never cut
])
def test_the_payload_start_is_at_most_256_bytes(raw: bytes, chars: int) -> None:
    shown = printable(raw, 256)
    assert len(shown.encode()) <= 256
    assert len(shown) == chars * (6 if raw[:1] == b"\x00" else 1)


@pytest.mark.parametrize(("raw", "_"), HOSTILE)
def test_a_rejection_record_is_one_line_whatever_the_device_sent(raw: bytes, _: str) -> None:
    line = rejection_line("flood-thao-dien", Reason.CONTRACT, 0x99, 'city/flood/"x\\/telemetry',
                          'a\nb: "bad"', raw, 3, NOW)
    assert "\n" not in line and "\r" not in line and line.isprintable()
    assert line.startswith("device_rejections,device_id=flood-thao-dien,reason=payload\\ does"
                           "\\ not\\ match\\ the\\ contract,source=unknown "
                           "reason_code=153i,topic=")
    assert line.endswith(f",suppressed=3i {NOW}")


# -- topics ----------------------------------------------------------------------------------

def test_single_value_topics() -> None:
    assert str(value_topic("flood", "f1", "water_level_cm")) == \
        "city/flood/f1/telemetry/water_level_cm"
    assert str(value_filter("city", "ingest")) == "$share/ingest/city/+/+/telemetry/+"
    assert str(value_filter("t1/city")) == "t1/city/+/+/telemetry/+"
    parsed = parse_device_topic("city/flood/f1/telemetry/water_level_cm")
    assert (parsed.kind, parsed.device_id, parsed.metric) == (Kind.TELEMETRY, "f1",
                                                              "water_level_cm")
    assert parse_device_topic("city/flood/f1/telemetry").metric is None
    assert device_id_from_topic("city/volcano/dev-9/telemetry/x") == "dev-9"
    assert device_id_from_topic("city/flood/dev-9/status/x") is None
    assert value_filter("city").matches("city/flood/f1/telemetry/water_level_cm")
    assert not value_filter("city").matches("city/flood/f1/telemetry")


# -- profiles --------------------------------------------------------------------------------

PROFILE_TOPIC = "city/devices/expo-flood-1/profile"


def test_profiles_add_update_and_remove_exhibitor_devices() -> None:
    registry = Registry(load_city().registry())
    body = EXPO.model_dump_json().encode()
    assert apply_profile(registry, decode_profile(PROFILE_TOPIC, body)) is Change.ADDED
    assert registry.get("expo-flood-1") == EXPO
    assert apply_profile(registry, decode_profile(PROFILE_TOPIC, body)) is Change.UNCHANGED
    moved = EXPO.model_copy(update={"metrics": ("water_level_cm", "battery_pct")})
    assert apply_profile(registry, decode_profile(PROFILE_TOPIC, moved.model_dump_json()
                                                  .encode())) is Change.UPDATED
    assert registry.get("expo-flood-1") == moved
    assert apply_profile(registry, decode_profile(PROFILE_TOPIC, b"")) is Change.REMOVED
    assert "expo-flood-1" not in registry
    assert apply_profile(registry, decode_profile(PROFILE_TOPIC, b"")) is Change.UNCHANGED


def test_the_citys_own_devices_are_never_replaced_or_removed_by_a_profile() -> None:
    registry = Registry(load_city().registry())
    city_device = registry.get("flood-thao-dien")
    assert city_device is not None
    fake = city_device.model_copy(update={"source": LIVE, "ward": "sai-gon"})
    assert apply_profile(registry, Profile("flood-thao-dien", fake)) is Change.REFUSED
    assert apply_profile(registry, Profile("flood-thao-dien", None)) is Change.REFUSED
    assert registry.get("flood-thao-dien") == city_device


@pytest.mark.parametrize(("topic", "payload", "field"), [
    (PROFILE_TOPIC, b"{not json", "device_id"),
    (PROFILE_TOPIC, EXPO.model_copy(update={"device_id": "expo-flood-2"}).model_dump_json()
     .encode(), "device_id"),
    ("city/devices/Bad Id/profile", b"", "device_id"),
    ("city/devices/expo-flood-1/errors", b"", "topic"),
])
def test_a_bad_profile_is_refused_with_the_field_named(topic: str, payload: bytes,
                                                       field: str) -> None:
    with pytest.raises(ContractError) as e:
        decode_profile(topic, payload)
    assert e.value.problems[0].field in (field, "payload"), e.value.problems
