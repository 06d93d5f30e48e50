"""The api's answers from memory equal what InfluxDB holds: readings go through the real broker
to the real ingest (into InfluxDB) and to the api's live hub (into memory); then every device's
latest values, the sensors list and the city summary are asked of an api answering from memory
and of one answering from InfluxDB, on the same database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.deps import Services
from api.main import create_app
from smartcity.city import load_city
from smartcity.models import parse_ts
from smartcity.settings import ApiSettings, MqttSettings
from storage.influx import InfluxClient
from tests.ingest_helpers import ingest_settings, running_ingest
from tests.mqtt import close, connect, wait_for

pytestmark = pytest.mark.servers

CITY = load_city()
REGISTRY = CITY.registry()
METRICS = {"home": ("power_w", "temperature_c", "pm25_ugm3"), "traffic": ("speed_kmh",),
           "flood": ("water_level_cm", "battery_pct"), "weather": ("rain_mm_h", "temperature_c")}


def services(client: TestClient) -> Services:
    found: Services = client.app_state["services"]
    return found


def api_settings(mqtt: MqttSettings, influx: InfluxClient, reads: str) -> ApiSettings:
    # Merging with InfluxDB only at start: what memory holds later came through the live hub.
    return ApiSettings(influx=influx.settings, mqtt=mqtt, device_accounts="none",
                       reads=reads, latest_refresh_s=3600)  # type: ignore[arg-type]


@contextmanager
def api(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def messages(root: str, now: int) -> list[tuple[str, bytes]]:
    """Every device: three readings a second apart, each with a different subset of its
    metrics, then one older than those (arriving last, it must not win); flood devices also
    a SenML pack; and readings ingest refuses (not counted anywhere). All carry their own
    time: a single value is stamped on arrival by ingest and by the api each, so its time
    differs by the milliseconds between the two (see the last test)."""
    out: list[tuple[str, bytes]] = []
    for n, device in enumerate(REGISTRY):
        domain = device.domain.value
        topic = f"{root}/{domain}/{device.device_id}/telemetry"
        names = METRICS[domain]
        for k in range(3):
            metrics = {m: 1.0 + n / 2 + k + i for i, m in enumerate(names)
                       if (i + k) % 2 == 0 or len(names) == 1}
            out.append((topic, orjson.dumps({"ts": now - 60_000 + k * 1000, "seq": k,
                                             "source": "simulated", **metrics})))
        out.append((topic, orjson.dumps({"ts": now - 120_000, "seq": 99, "source": "live",
                                         names[0]: 0.25})))
        if domain == "flood":
            out.append((topic, orjson.dumps([{"bn": f"{device.device_id}:", "bt": now / 1000 - 30,
                                              "n": "water_level_cm", "v": 7.25},
                                             {"n": "battery", "u": "%EL", "v": 55.5}])))
    out.append((f"{root}/flood/nobody-knows-me/telemetry",
                orjson.dumps({"ts": now, "seq": 1, "water_level_cm": 999.0})))
    out.append((f"{root}/flood/flood-thao-dien/telemetry",
                orjson.dumps({"ts": now, "seq": 5, "water_level_cm": 9999.0})))  # out of range
    return out


def publish_all(mqtt: MqttSettings, sent: list[tuple[str, bytes]]) -> None:
    client = connect(mqtt)
    try:
        for topic, payload in sent:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        close(client)


def answers(client: TestClient) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for d in REGISTRY:
        got[d.device_id] = client.get(f"/api/v1/sensors/{d.device_id}/latest").json()
        got[f"sensor {d.device_id}"] = client.get(f"/api/v1/sensors/{d.device_id}").json()
    got["sensors"] = client.get("/api/v1/sensors").json()
    got["sensors flood"] = client.get("/api/v1/sensors?domain=flood").json()
    summary = client.get("/api/v1/city/summary").json()
    summary.pop("generated_at")
    got["summary"] = summary
    return got


def test_answers_from_memory_equal_influxdb_after_a_run(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    memory_settings = api_settings(mqtt_settings, influx, "memory")
    now = int(time.time() * 1000)
    sent = messages(mqtt_settings.root, now)
    refused = 2
    stored_points = len(sent) - refused  # a SenML pack's records at one time: one point
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest, \
            api(memory_settings) as memory:
        wait_for(lambda: services(memory).latest.ready, what="the api's first merge")
        publish_all(mqtt_settings, sent)
        wait_for(lambda: ingest.stats.stored == stored_points, timeout=30,
                 what="every good reading stored")
        assert ingest.stats.rejected == refused
        hub = services(memory).live
        assert hub is not None
        wait_for(lambda: services(memory).latest.readings == stored_points, timeout=30,
                 what="every good reading in the api's memory")
        from_memory = answers(memory)
    with api(api_settings(mqtt_settings, influx, "influx")) as from_db:
        from_influx = answers(from_db)
    assert from_memory == from_influx
    # Not vacuous: every device has values, the old reading lost, the refused ones are absent.
    for d in REGISTRY:
        latest = from_memory[d.device_id]
        # A flood device's newest is its SenML pack, which carries no source: live.
        newest = "live" if d.domain.value == "flood" else "simulated"
        assert latest["values"] and latest["source"] == newest, latest
        assert all(v["value"] != 0.25 for v in latest["values"].values())
    thao_dien = from_memory["flood-thao-dien"]["values"]
    assert thao_dien["water_level_cm"]["value"] == 7.25
    assert thao_dien["battery_pct"]["value"] == 55.5
    flood_devices = [d for d in REGISTRY if d.domain.value == "flood"]
    assert from_memory["summary"]["flood"]["devices_reporting"] == len(flood_devices)


def test_an_api_started_after_the_readings_answers_from_its_first_merge(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    sent = messages(mqtt_settings.root, now)
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest:
        publish_all(mqtt_settings, sent)
        wait_for(lambda: ingest.stats.stored == len(sent) - 2, timeout=30,
                 what="every good reading stored")
    with api(api_settings(mqtt_settings, influx, "memory")) as memory:
        wait_for(lambda: services(memory).latest.ready, what="the api's first merge")
        assert services(memory).latest.readings == 0  # nothing came through the hub
        from_memory = answers(memory)
    with api(api_settings(mqtt_settings, influx, "influx")) as from_db:
        assert answers(from_db) == from_memory
    assert all(from_memory[d.device_id]["values"] for d in REGISTRY)


def test_a_single_value_shows_with_its_arrival_time(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    topic = f"{mqtt_settings.root}/flood/flood-thao-dien/telemetry/water_level_cm"
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest, \
            api(api_settings(mqtt_settings, influx, "memory")) as memory:
        wait_for(lambda: services(memory).latest.ready, what="the api's first merge")
        publish_all(mqtt_settings, [(topic, b"12.5")])
        wait_for(lambda: ingest.stats.stored == 1 and services(memory).latest.readings == 1,
                 what="the reading stored and in memory")
        mine = memory.get("/api/v1/sensors/flood-thao-dien/latest").json()
    with api(api_settings(mqtt_settings, influx, "influx")) as from_db:
        stored = from_db.get("/api/v1/sensors/flood-thao-dien/latest").json()
    assert mine["values"]["water_level_cm"]["value"] == stored["values"]["water_level_cm"][
        "value"] == 12.5
    times = [parse_ts(a["values"]["water_level_cm"]["time"]) for a in (mine, stored)]
    assert abs(times[0] - times[1]) < 2000  # each stamped it when it arrived
