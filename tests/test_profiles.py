"""Every built-in profile and a custom mapping, end to end: the vendors' own sample payloads
(several shapes each, from their documentation) published by a device under its own account
on the real secured broker, on the topics its firmware uses, mapped by ingest and stored in
InfluxDB."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from broker.dynsec import DeviceCredentials, DynSecAdmin
from ingest.service import IngestService
from launcher.servers import Influxd
from smartcity.city import load_city
from smartcity.formats.profile import CustomMapping
from smartcity.models import Source
from smartcity.registry import DeviceInfo
from smartcity.topics import Domain, native_prefix, profile_topic
from storage.influx import InfluxClient
from tests.ingest_helpers import fresh_database, ingest_settings
from tests.mqtt import wait_for
from tests.secured_broker import SecuredBroker, start_secured

pytestmark = pytest.mark.servers

AT = 1_796_677_200  # 2026-12-07T21:00:00Z, the time some samples carry


def j(value: Any) -> bytes:
    return orjson.dumps(value)


# Tasmota: https://tasmota.github.io/docs/MQTT/ and the sensor pages (AM2301, DS18B20, BME280,
# SI7021, energy monitoring). Time is local without an offset unless SetOption52 is on.
TASMOTA = [
    ("tele/booth/SENSOR", j({"Time": "2026-12-07T21:00:00", "AM2301": {
        "Temperature": 29.4, "Humidity": 71.2, "DewPoint": 23.7}, "TempUnit": "C"})),
    # several sensors on one device: the first temperature is kept, the others noted
    ("tele/booth/SENSOR", j({"Time": "2026-12-07T21:01:00",
                             "DS18B20-1": {"Id": "01144A0CB2AA", "Temperature": 28.9},
                             "DS18B20-2": {"Id": "0114A8A9D5AA", "Temperature": 31.0},
                             "BME280": {"Temperature": 29.8, "Humidity": 68.5,
                                        "DewPoint": 23.3, "Pressure": 1008.2},
                             "PressureUnit": "hPa", "TempUnit": "C"})),
    ("tele/booth/SENSOR", j({"Time": "2026-12-07T21:02:00", "SI7021": {
        "Temperature": 84.9, "Humidity": 70.0, "DewPoint": 74.1}, "TempUnit": "F"})),
    ("tele/booth/SENSOR", j({"Time": "2026-12-07T21:03:00+07:00", "ENERGY": {
        "TotalStartTime": "2026-01-01T00:00:00", "Total": 12.345, "Yesterday": 0.5,
        "Today": 0.2, "Power": 850, "ApparentPower": 900, "ReactivePower": 100,
        "Factor": 0.94, "Voltage": 229, "Current": 3.9}})),
    # no readings: the device's own state
    ("tele/booth/STATE", j({"Time": "2026-12-07T21:00:00", "Uptime": "0T01:00:00",
                            "Heap": 25, "POWER": "ON", "Wifi": {"AP": 1, "RSSI": 80}})),
    ("tele/booth/LWT", b"Online"),
]
TASMOTA_STORED = [
    {"temperature_c": 29.4, "humidity_pct": 71.2},
    {"temperature_c": 28.9, "humidity_pct": 68.5},
    {"temperature_c": 29.388889, "humidity_pct": 70.0},
    {"power_w": 850.0},
]

# Shelly Gen2/Gen3: https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt
# (status notifications) and .../Notifications (NotifyStatus, NotifyFullStatus, NotifyEvent).
SHELLY = [
    ("status/temperature:0", j({"id": 0, "tC": 29.4, "tF": 84.9})),
    ("status/humidity:0", j({"id": 0, "rh": 71.2})),
    ("status/devicepower:0", j({"id": 0, "battery": {"V": 5.91, "percent": 97},
                                "external": {"present": False}})),
    ("status/sys", j({"mac": "84FCE63BF0EC", "restart_required": False, "time": "21:00",
                      "unixtime": AT, "uptime": 12, "ram_size": 246284})),
    ("events/rpc", j({"src": "shellyhtg3-84fce63bf0ec", "dst": "x/events",
                      "method": "NotifyStatus", "params": {
                          "ts": AT + 60.52, "temperature:0": {"id": 0, "tC": 30.1, "tF": 86.2}}})),
    ("events/rpc", j({"src": "shellyhtg3-84fce63bf0ec", "dst": "x/events",
                      "method": "NotifyFullStatus", "params": {
                          "ts": AT + 120.0, "sys": {"uptime": 130},
                          "wifi": {"sta_ip": "192.168.1.20", "rssi": -58},
                          "temperature:0": {"id": 0, "tC": 30.4, "tF": 86.7},
                          "humidity:0": {"id": 0, "rh": 69.9},
                          "devicepower:0": {"id": 0, "battery": {"V": 5.9, "percent": 96}}}})),
    ("events/rpc", j({"src": "shellyhtg3-84fce63bf0ec", "dst": "x/events",
                      "method": "NotifyEvent", "params": {"ts": AT + 180.0, "events": [
                          {"component": "sys", "event": "sleep", "ts": AT + 180.0}]}})),
    ("online", b"true"),
]
SHELLY_STORED_AT = {
    (AT + 60) * 1000 + 520: {"temperature_c": 30.1},
    (AT + 120) * 1000: {"temperature_c": 30.4, "humidity_pct": 69.9, "battery_pct": 96.0},
}
SHELLY_ON_ARRIVAL = [{"temperature_c": 29.4}, {"humidity_pct": 71.2}, {"battery_pct": 97.0}]

# zigbee2mqtt: https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html and the
# device pages (Aqara WSDCGQ11LM); nested objects with include_device_information and OTA.
Z2M = [
    ("booth/aqara-th", j({"temperature": 29.4, "humidity": 71.2, "pressure": 1008.1,
                          "battery": 97, "voltage": 2985, "linkquality": 120})),
    ("booth/aqara-th", j({"battery": 100, "humidity": 65.3, "linkquality": 87,
                          "temperature": 28.1, "update": {"installed_version": 8196,
                                                          "latest_version": 8196,
                                                          "state": "idle"},
                          "update_available": False,
                          "last_seen": "2026-12-07T21:05:00+07:00"})),
    ("booth/aqara-th", j({"temperature": 27.5, "last_seen": (AT + 300) * 1000,
                          "device": {"friendlyName": "booth/aqara-th",
                                     "model": "WSDCGQ11LM", "ieeeAddr": "0x00158d0001a2b3c4"}})),
    ("bridge/state", j({"state": "online"})),
    ("booth/aqara-th/availability", j({"state": "online"})),
]
Z2M_STORED_AT = {
    (AT - 7 * 3600 + 300) * 1000: {"temperature_c": 28.1, "humidity_pct": 65.3,
                                   "battery_pct": 100.0},
    (AT + 300) * 1000: {"temperature_c": 27.5},
}
Z2M_ON_ARRIVAL = [{"temperature_c": 29.4, "humidity_pct": 71.2, "battery_pct": 97.0}]

# ESPHome: https://esphome.io/components/mqtt.html (state topics, bare values, nan).
ESPHOME = [
    ("sensor/booth_temperature/state", b"29.4"),
    ("sensor/booth_humidity/state", b"71.2"),
    ("sensor/wifi_signal/state", b"-61"),
    ("sensor/booth_temperature/state", b"nan"),
    ("status", b"online"),
]
ESPHOME_ON_ARRIVAL = [{"temperature_c": 29.4}, {"humidity_pct": 71.2}]

# A home-made ultrasonic gauge: distance in metres from a mount 1.5 m above the ground.
CUSTOM = CustomMapping.model_validate({
    "topic": "gauge/data",
    "metrics": [{"metric": "water_level_cm", "pointer": "/d/dist_m", "unit": "m", "scale": -1,
                 "offset": 150}],
    "time": {"pointer": "/t", "format": "epoch_s"}})
CUSTOM_SAMPLES = [("gauge/data", j({"d": {"dist_m": 1.2}, "t": AT})),
                  ("gauge/data", j({"d": {"dist_m": 0.95}, "t": AT + 60}))]
CUSTOM_STORED_AT = {AT * 1000: {"water_level_cm": 30.0}, (AT + 60) * 1000: {"water_level_cm": 55.0}}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    broker = start_secured(tmp_path_factory.mktemp("profiles"), f"pf-{uuid.uuid4().hex[:8]}")
    yield broker
    broker.server.stop()


@pytest.fixture(scope="module")
def influx_db(influxd: Influxd, secured: SecuredBroker) -> Iterator[InfluxClient]:
    with fresh_database(influxd.url, f"db-{secured.root}") as client:
        yield client


@pytest.fixture(scope="module")
def ingest(secured: SecuredBroker, influx_db: InfluxClient,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestService]:
    settings = ingest_settings(secured.settings("ingest"), influx_db.settings,
                               tmp_path_factory.mktemp("ingest"))
    service = IngestService(settings, load_city().registry())
    service.start()
    assert service.subscribed.wait(10)
    yield service
    service.stop()


def device(fmt: str, domain: Domain, *metrics: str,
           mapping: CustomMapping | None = None) -> DeviceInfo:
    device_id = f"{fmt}-{uuid.uuid4().hex[:6]}"
    return DeviceInfo(device_id=device_id, domain=domain, name=f"Gian {fmt}", ward="sai-gon",
                      site=device_id, lat=10.77, lon=106.70, source=Source.LIVE,
                      metrics=metrics, format=fmt, mapping=mapping)


def register(secured: SecuredBroker, ingest: IngestService,
             info: DeviceInfo) -> DeviceCredentials:
    """As the api does: the device's account, and its retained profile, taken by ingest."""
    with DynSecAdmin(secured.settings("api")) as admin:
        credentials = admin.add_device(info.device_id, info.domain)
    with secured.session("api") as api:
        assert api.publish(str(profile_topic(info.device_id, secured.root)),
                           info.model_dump_json().encode(), retain=True) == 0
    wait_for(lambda: ingest.registry.get(info.device_id) == info, what="the profile applied")
    return credentials


def publish_as_device(secured: SecuredBroker, ingest: IngestService, info: DeviceInfo,
                      samples: list[tuple[str, bytes]]) -> None:
    """Register the device, then publish the samples with its account on its own topics, each
    acknowledged by the broker."""
    credentials = register(secured, ingest, info)
    prefix = native_prefix(info.device_id, secured.root)
    with secured.session(credentials.username, credentials.password,
                         client_id=credentials.client_id) as dev:
        for sub, payload in samples:
            assert dev.publish(f"{prefix}/{sub}", payload) in (0, 0x10)
            time.sleep(0.01)  # readings stamped on arrival get a millisecond each


def stored(influx: InfluxClient, info: DeviceInfo, expected: int) -> dict[int, dict[str, float]]:
    def rows() -> dict[int, dict[str, float]]:
        series = influx.query(f'SELECT * FROM "{info.domain.value}" '
                              f"WHERE \"device_id\" = '{info.device_id}'")
        out = {}
        for s in series:
            for row in s.rows():
                out[int(row["time"])] = {k: v for k, v in row.items()
                                         if k in info.metrics and v is not None}
        return out
    return wait_for(lambda: (r := rows()) and len(r) >= expected and r, timeout=30,
                    what=f"{expected} points of {info.device_id}")


def approx(points: list[dict[str, float]]) -> list[dict[str, Any]]:
    return [{k: pytest.approx(v, abs=1e-4) for k, v in p.items()} for p in points]


def test_tasmota_sensor_messages_are_stored(secured: SecuredBroker, ingest: IngestService,
                                            influx_db: InfluxClient) -> None:
    info = device("tasmota", Domain.HOME, "temperature_c", "humidity_pct", "power_w")
    before = ingest.stats.rejected
    sent = int(time.time() * 1000)
    publish_as_device(secured, ingest, info, TASMOTA)
    points = stored(influx_db, info, len(TASMOTA_STORED))
    assert ingest.stats.rejected == before
    # Tasmota's Time without an offset: stamped on arrival; with one (SetOption52): its own
    with_offset = (AT - 7 * 3600 + 180) * 1000
    assert points.pop(with_offset) == {"power_w": 850.0}
    assert all(t >= sent for t in points)
    assert [points[t] for t in sorted(points)] == approx(TASMOTA_STORED[:3])


@pytest.mark.parametrize(("fmt", "domain", "samples", "stored_at", "on_arrival"), [
    ("shelly", Domain.WEATHER, SHELLY, SHELLY_STORED_AT, SHELLY_ON_ARRIVAL),
    ("zigbee2mqtt", Domain.WEATHER, Z2M, Z2M_STORED_AT, Z2M_ON_ARRIVAL),
    ("esphome", Domain.HOME, ESPHOME, {}, ESPHOME_ON_ARRIVAL),
])
def test_a_vendors_messages_are_stored_at_their_time_or_on_arrival(
        secured: SecuredBroker, ingest: IngestService, influx_db: InfluxClient, fmt: str,
        domain: Domain, samples: list[tuple[str, bytes]],
        stored_at: dict[int, dict[str, float]], on_arrival: list[dict[str, float]]) -> None:
    """Shelly's status and notification forms, zigbee2mqtt's flat and nested messages,
    ESPHome's state topics; the messages that hold no readings are neither stored nor
    refused."""
    metrics = sorted({m for p in [*stored_at.values(), *on_arrival] for m in p})
    info = device(fmt, domain, *metrics)
    before = ingest.stats.rejected
    publish_as_device(secured, ingest, info, samples)
    points = stored(influx_db, info, len(stored_at) + len(on_arrival))
    assert ingest.stats.rejected == before
    for t, expected in stored_at.items():
        assert points.pop(t) == approx([expected])[0]
    assert [points[t] for t in sorted(points)] == approx(on_arrival)


def test_a_custom_mapping_converts_units_and_reads_its_time(secured: SecuredBroker,
                                                            ingest: IngestService,
                                                            influx_db: InfluxClient) -> None:
    info = device("custom", Domain.FLOOD, "water_level_cm", mapping=CUSTOM)
    publish_as_device(secured, ingest, info, CUSTOM_SAMPLES)
    points = stored(influx_db, info, len(CUSTOM_STORED_AT))
    assert points == {t: approx([m])[0] for t, m in CUSTOM_STORED_AT.items()}


def test_a_wrong_sub_topic_is_refused_with_the_topic_to_use(
        secured: SecuredBroker, ingest: IngestService, influx_db: InfluxClient) -> None:
    info = device("tasmota", Domain.HOME, "temperature_c")
    errors = f"{secured.root}/devices/{info.device_id}/errors"
    credentials = register(secured, ingest, info)
    prefix = native_prefix(info.device_id, secured.root)
    with secured.session(credentials.username, credentials.password,
                         client_id=credentials.client_id) as dev:
        assert dev.subscribe(errors) == [1]
        # FullTopic without %prefix%: Tasmota then publishes <prefix>/SENSOR
        assert dev.publish(f"{prefix}/booth/SENSOR", TASMOTA[0][1]) == 0
        report = orjson.loads(wait_for(lambda: dev.on(errors), what="the report")[0].payload)
    assert report["reason"] == "topic not in the device's format"
    assert report["topic"] == f"{prefix}/booth/SENSOR"
    assert f"publish on {prefix}/tele/{info.device_id}/SENSOR" in report["errors"][0]["message"]
