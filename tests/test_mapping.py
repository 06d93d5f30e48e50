"""The mapping engine and the profiles as data, without servers: every built-in profile loads,
pointers and units do what they say, the RFC 8428 examples are accepted as devices send them,
and every refusal names the device's own metrics."""

from __future__ import annotations

import string
from typing import Any

import orjson
import pytest

from smartcity.codec import decode_message
from smartcity.errors import ContractError, Reason
from smartcity.formats import catalogue, format_names
from smartcity.formats.decoding import decode_device_message
from smartcity.formats.mapping import Mapped, map_message, resolve
from smartcity.formats.profile import CustomMapping
from smartcity.formats.units import UNITS, conversion
from smartcity.metrics import CATALOGUE
from smartcity.models import METRIC_BOUNDS, Source
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain

NOW = 1_796_677_200_000
ROOT = "city"
PLACEHOLDERS = {"host", "port", "username", "password", "prefix", "device_id", "client_id"}


def dev(fmt: str = "json", domain: Domain = Domain.HOME, metrics: tuple[str, ...] = (),
        mapping: CustomMapping | None = None, device_id: str = "booth-1") -> DeviceInfo:
    return DeviceInfo(device_id=device_id, domain=domain, name="Gian 1", ward="sai-gon",
                      site=device_id, lat=10.77, lon=106.7, source=Source.LIVE,
                      metrics=metrics, format=fmt, mapping=mapping)


def mapped(device: DeviceInfo, sub: str, payload: Any) -> Mapped:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return map_message(device, sub, body, NOW, ROOT)


# -- the profiles as data --------------------------------------------------------------------

def test_the_built_in_profiles_are_the_four_vendors_and_every_metric_is_real() -> None:
    assert set(catalogue()) == {"tasmota", "shelly", "zigbee2mqtt", "esphome"}
    assert format_names()[:3] == ["json", "senml", "value"] and format_names()[-1] == "custom"
    metrics = {m for b in METRIC_BOUNDS.values() for m in b}
    assert set(UNITS) == metrics == set(CATALOGUE)
    # each metric's own unit, the first a device may send it in, is the catalogue's
    assert {m: next(iter(u)) for m, u in UNITS.items()} == {
        m: c.unit for m, c in CATALOGUE.items()}
    for profile in catalogue().values():
        for rule in profile.rules:
            named = [f.metric for f in rule.fields] + \
                list(rule.names.names.values() if rule.names else [])
            assert named and set(named) <= metrics, profile.name
        used = {f for _, f, _, _ in string.Formatter().parse(profile.settings.template) if f}
        assert used <= PLACEHOLDERS, (profile.name, used - PLACEHOLDERS)
        assert {"host", "username", "password", "prefix"} <= used, profile.name


@pytest.mark.parametrize(("metric", "unit", "value", "expected"), [
    ("temperature_c", "°F", 84.9, 29.388889),
    ("temperature_c", "F", 32.0, 0.0),
    ("temperature_c", "K", 300.0, 26.85),
    ("water_level_cm", "m", 1.2, 120.0),
    ("water_level_cm", "mm", 55.0, 5.5),
    ("power_w", "kW", 0.85, 850.0),
    ("wind_kmh", "m/s", 10.0, 36.0),
    ("occupancy_pct", "/", 0.38, 38.0),
])
def test_units_convert_to_the_metrics_own(metric: str, unit: str, value: float,
                                          expected: float) -> None:
    convert = conversion(metric, unit)
    assert convert is not None and convert(value) == pytest.approx(expected, abs=1e-6)
    # a custom mapping's scale and offset apply after the unit
    assert convert.then(-1, 150)(value) == pytest.approx(150 - expected, abs=1e-6)
    assert conversion(metric, "furlong") is None


def test_pointers_take_globs_escapes_and_array_indexes() -> None:
    doc = {"a/b": {"x": 1}, "DS18B20-1": {"Temperature": 2}, "DS18B20-2": {"Temperature": 3},
           "list": [{"v": 4}, {"v": 5}], "temperature:0": {"tC": 6}}
    assert resolve(doc, "/a~1b/x") == [("/a/b/x", 1)]
    assert [v for _, v in resolve(doc, "/*/Temperature")] == [2, 3]
    assert [v for _, v in resolve(doc, "/DS18B20-*/Temperature")] == [2, 3]
    assert resolve(doc, "/list/1/v") == [("/list/1/v", 5)]
    assert resolve(doc, "/temperature:*/tC") == [("/temperature:0/tC", 6)]
    assert resolve(doc, "/missing/x") == [] and resolve(doc, "/list/9/v") == []


# -- each vendor's shapes ----------------------------------------------------------------------

def test_tasmota_keeps_the_first_of_several_sensors_and_notes_the_others() -> None:
    got = mapped(dev("tasmota", metrics=("temperature_c", "humidity_pct")), "tele/b/SENSOR", {
        "Time": "2026-12-07T21:00:00+07:00", "ESP32": {"Temperature": 51.0},
        "DS18B20-1": {"Temperature": 28.9}, "DS18B20-2": {"Temperature": 31.0},
        "BME280": {"Humidity": 68.5, "Pressure": 1008.2}, "TempUnit": "C"})
    [reading] = got.readings
    assert reading.metrics == {"temperature_c": 28.9, "humidity_pct": 68.5}
    assert reading.ts_ms == NOW - 7 * 3600 * 1000
    assert any("DS18B20-2/Temperature: left out, temperature_c is taken from /DS18B20-1" in n
               for n in got.notes), got.notes
    assert not any("ESP32" in n for n in got.notes)  # the chip's own temperature: excluded


def test_tasmota_refuses_a_temperature_unit_it_does_not_know() -> None:
    with pytest.raises(ContractError) as e:
        mapped(dev("tasmota"), "tele/b/SENSOR", {"AM2301": {"Temperature": 30}, "TempUnit": "K"})
    assert e.value.reason == Reason.WRONG_UNIT and e.value.problems[0].field == "/TempUnit"


def test_shelly_notifications_other_than_status_hold_no_readings() -> None:
    got = mapped(dev("shelly"), "events/rpc", {"method": "NotifyEvent", "params": {"ts": 1}})
    assert got.readings == [] and "NotifyEvent" in got.notes[0]


def test_esphome_names_metrics_by_the_sensor_and_notes_what_it_does_not_store() -> None:
    device = dev("esphome", Domain.FLOOD, ("water_level_cm",))
    assert mapped(device, "sensor/canal_water_level/state", b"12.5").readings[0].metrics == \
        {"water_level_cm": 12.5}
    noted = mapped(device, "sensor/booth_temperature/state", b"29.4")
    assert noted.readings == [] and "temperature_c is not a flood metric" in noted.notes[0]
    assert "this device stores water_level_cm" in noted.notes[0]
    with pytest.raises(ContractError) as e:
        mapped(device, "sensor/canal_water_level/state", b"high")
    assert e.value.reason == Reason.NOT_A_NUMBER


def test_a_vendor_message_without_the_devices_metrics_is_refused_naming_them() -> None:
    device = dev("zigbee2mqtt", Domain.FLOOD, ("water_level_cm", "battery_pct"))
    with pytest.raises(ContractError) as e:
        mapped(device, "canal/leak", {"water_leak": True, "temperature": 30,
                                      "linkquality": 90})
    assert e.value.reason == Reason.UNKNOWN_METRIC
    message = e.value.problems[0].message
    assert "it stores water_level_cm, battery_pct" in message
    assert "/temperature: left out, temperature_c is not a flood metric" in message


def test_a_topic_outside_the_format_is_refused_with_the_topic_to_use() -> None:
    with pytest.raises(ContractError) as e:
        mapped(dev("tasmota"), "SENSOR", {"AM2301": {"Temperature": 30}})
    assert e.value.reason == Reason.NATIVE_TOPIC
    assert "publish on city/dev/booth-1/tele/booth-1/SENSOR" in e.value.problems[0].message
    with pytest.raises(ContractError) as e:
        mapped(dev("json"), "tele/b/SENSOR", {})
    assert "publishes on city/home/booth-1/telemetry" in e.value.problems[0].message


@pytest.mark.parametrize(("time", "payload", "expected"), [
    ({"pointer": "/t", "format": "epoch_s"}, {"v": 1, "t": 1_796_677_100}, 1_796_677_100_000),
    ({"pointer": "/t", "format": "epoch_ms"}, {"v": 1, "t": 1_796_677_100_123},
     1_796_677_100_123),
    ({"pointer": "/t", "format": "auto"}, {"v": 1, "t": 1_796_677_100.5}, 1_796_677_100_500),
    ({"pointer": "/t", "format": "rfc3339"}, {"v": 1, "t": "2026-12-07T20:58:20Z"},
     1_796_677_100_000),
    ({"pointer": "/t", "format": "auto"}, {"v": 1}, NOW),  # no time: arrival
    (None, {"v": 1, "t": 5}, NOW),
])
def test_a_custom_mapping_reads_its_time(time: dict[str, str] | None, payload: dict[str, Any],
                                         expected: int) -> None:
    mapping = CustomMapping.model_validate({"metrics": [{"metric": "power_w", "pointer": "/v",
                                                         "unit": "kW"}], "time": time})
    [reading] = mapped(dev("custom", metrics=("power_w",), mapping=mapping), "x/y",
                       payload).readings
    assert (reading.ts_ms, reading.metrics) == (expected, {"power_w": 1000.0})


@pytest.mark.parametrize(("time", "value"), [
    ({"pointer": "/t", "format": "rfc3339"}, "2026-12-07T20:58:20"),
    ({"pointer": "/t", "format": "epoch_s"}, "yesterday"),
    ({"pointer": "/t", "format": "epoch_ms"}, 1_796_677_100),  # seconds sent as ms: 1970
])
def test_a_custom_mapping_refuses_a_time_it_cannot_read(time: dict[str, str],
                                                        value: Any) -> None:
    mapping = CustomMapping.model_validate({"metrics": [{"metric": "power_w", "pointer": "/v"}],
                                            "time": time})
    with pytest.raises(ContractError) as e:
        mapped(dev("custom", metrics=("power_w",), mapping=mapping), "x", {"v": 1, "t": value})
    assert e.value.reason == Reason.CONTRACT and e.value.problems[0].field == "/t"


def test_a_custom_mapping_checks_the_plausible_range_after_conversion() -> None:
    mapping = CustomMapping.model_validate({"metrics": [{"metric": "water_level_cm",
                                                         "pointer": "/d", "unit": "m"}]})
    with pytest.raises(ContractError) as e:
        mapped(dev("custom", Domain.FLOOD, ("water_level_cm",), mapping), "x", {"d": 30})
    assert "3000 is outside its plausible range" in e.value.problems[0].message


# -- SenML as devices send it (RFC 8428, section 5) ----------------------------------------------

RFC8428 = {
    "single datapoint": [{"n": "urn:dev:ow:10e2073a01080063", "u": "Cel", "v": 23.1}],
    "multiple datapoints": [
        {"bn": "urn:dev:ow:10e2073a01080063:", "n": "voltage", "u": "V", "v": 120.1},
        {"n": "current", "u": "A", "v": 1.2}],
    "multiple measurements": [
        {"bn": "urn:dev:ow:10e2073a01080063", "bt": 1.320067464e+09, "bu": "%RH", "v": 20},
        {"u": "lon", "v": 24.30621}, {"u": "lat", "v": 60.07965},
        {"t": 60, "v": 20.3}, {"u": "lon", "t": 60, "v": 24.30622},
        {"u": "lat", "t": 60, "v": 60.07965}, {"t": 120, "v": 20.7},
        {"u": "lon", "t": 120, "v": 24.30623}, {"u": "lat", "t": 120, "v": 60.07966},
        {"u": "%EL", "t": 150, "v": 98}, {"t": 180, "v": 21.2},
        {"u": "lon", "t": 180, "v": 24.30628}, {"u": "lat", "t": 180, "v": 60.07967}],
    "multiple data types": [
        {"bn": "urn:dev:ow:10e2073a01080063:", "n": "temp", "u": "Cel", "v": 23.1},
        {"n": "label", "vs": "Machine Room"}, {"n": "open", "vb": False},
        {"n": "nfc-reader", "vd": "aGkgCg"}],
    "setting an actuator": [
        {"bn": "urn:dev:ow:10e2073a01080063:"}, {"n": "temp", "u": "Cel", "v": 23.1},
        {"n": "heat", "u": "/", "v": 1}, {"n": "fan", "u": "/", "v": 0}],
}
T0 = 1_320_067_464_000


@pytest.mark.parametrize(("example", "expected", "note"), [
    ("single datapoint", [(NOW, {"temperature_c": 23.1})], None),
    ("multiple datapoints", [], "'voltage' in 'V' is not a home metric"),
    ("multiple measurements", [
        (T0, {"humidity_pct": 20.0}), (T0 + 60_000, {"humidity_pct": 20.3}),
        (T0 + 120_000, {"humidity_pct": 20.7}), (T0 + 150_000, {"battery_pct": 98.0}),
        (T0 + 180_000, {"humidity_pct": 21.2})], "the device's position"),
    ("multiple data types", [(NOW, {"temperature_c": 23.1})],
     "10e2073a01080063:label' is not a number"),
    ("setting an actuator", [(NOW, {"temperature_c": 23.1})], "'heat' in '/'"),
])
def test_the_rfc_8428_examples_are_accepted_on_a_registered_devices_topic(
        example: str, expected: list[tuple[int, dict[str, float]]], note: str | None) -> None:
    registry = Registry([dev("senml")])
    got = decode_device_message("city/home/booth-1/telemetry", orjson.dumps(RFC8428[example]),
                                registry, ROOT, now_ms=NOW)
    assert [(r.ts_ms, r.metrics) for r in got.readings] == expected
    assert all(r.device_id == "booth-1" for r in got.readings)
    if note:
        assert any(note in n for n in got.notes), got.notes


def test_a_senml_record_is_recognised_by_its_unit_among_the_declared_metrics() -> None:
    pack = orjson.dumps([{"n": "urn:dev:mac:0024befffe804ff1", "u": "m", "v": 0.3}])
    # a flood device measures two lengths: the unit alone names neither ...
    with pytest.raises(ContractError):
        decode_message("city/flood/f1/telemetry", pack, ROOT, now_ms=NOW)
    # ... unless it declared one
    [reading] = decode_message("city/flood/f1/telemetry", pack, ROOT, now_ms=NOW,
                               metrics=("water_level_cm",))
    assert reading.metrics == {"water_level_cm": 30.0}


def test_the_issues_own_payload_without_ts_and_seq_is_stamped_on_arrival() -> None:
    registry = Registry([dev()])
    got = decode_device_message("city/home/booth-1/telemetry",
                                b'{"temperature_c": 29.4, "humidity_pct": 71.2}', registry,
                                ROOT, now_ms=NOW)
    assert [(r.ts_ms, r.seq, r.metrics) for r in got.readings] == [
        (NOW, None, {"temperature_c": 29.4, "humidity_pct": 71.2})]


def test_an_unknown_field_names_the_devices_own_metrics() -> None:
    registry = Registry([dev(metrics=("temperature_c", "humidity_pct"))])
    with pytest.raises(ContractError) as e:
        decode_device_message("city/home/booth-1/telemetry", b'{"temperature": 29.4}', registry,
                              ROOT, now_ms=NOW)
    assert "temperature_c, humidity_pct" in e.value.problems[0].message
    assert "water_level_cm" not in str(e.value)
