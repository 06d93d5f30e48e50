"""The api against a real InfluxDB and a real Mosquitto: every endpoint, every 4xx, and the
503s when a dependency is down."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.link import MqttLink
from api.main import create_app
from launcher.servers import Influxd, Mosquitto, free_port
from smartcity.city import load_city
from smartcity.models import format_ts
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings
from smartcity.topics import status_topic
from storage.influx import InfluxClient
from tests.mqtt import publish, wait_for

pytestmark = pytest.mark.servers

CITY = load_city()
REGISTRY = CITY.registry()
LEVELS = {site.device_id: site.warning_cm for site in CITY.flood_sites}
MIN = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def line(device_id: str, ts_ms: int, seq: int = 1, source: str = "simulated",
         **metrics: float) -> bytes:
    """One point the way ingest stores it."""
    d = REGISTRY.get(device_id)
    assert d is not None
    fields = ",".join(f"{k}={float(v)!r}" for k, v in metrics.items())
    return (f"{d.domain.value},device_id={d.device_id},site={d.site},ward={d.ward},"
            f"source={source} {fields},seq={seq}i {ts_ms}\n").encode()


def problem(response: httpx.Response) -> str:
    """A 4xx body as one string, whether FastAPI's list of problems or a plain detail."""
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return "; ".join(".".join(map(str, d["loc"])) + ": " + d["msg"] for d in detail)


@pytest.fixture
def settings(influx_settings: InfluxSettings, mqtt_settings: MqttSettings) -> ApiSettings:
    # These tests write points into InfluxDB directly and read them back at once: the
    # answers from InfluxDB. The in-memory answers are held to these in test_api_memory.py.
    return ApiSettings(influx=influx_settings, mqtt=mqtt_settings, reads="influx")


@pytest.fixture
def client(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, REGISTRY, warning_levels=LEVELS)) as c:
        yield c


def tracker(client: TestClient) -> MqttLink:
    status: MqttLink = client.app_state["services"].link
    return status


# --- health ------------------------------------------------------------------------------

def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_when_everything_is_up(client: TestClient, settings: ApiSettings) -> None:
    response = wait_for(lambda: (r := client.get("/readyz")).status_code == 200 and r,
                        what="readyz 200")
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["mqtt"]["ok"] is True
    assert body["checks"]["influxdb"] == {
        "ok": True, "version": body["checks"]["influxdb"]["version"],
        "detail": f"InfluxDB at {settings.influx.url} answers, database "
                  f"'{settings.influx.db}' exists"}
    assert body["checks"]["influxdb"]["version"].startswith("1.6")


def test_readyz_503_when_influxdb_is_unreachable(mqtt_settings: MqttSettings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = ApiSettings(influx=InfluxSettings(url=url), mqtt=mqtt_settings)
    with TestClient(create_app(settings, REGISTRY)) as client:
        wait_for(lambda: tracker(client).connected, what="mqtt connected")
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["mqtt"]["ok"] is True
        assert body["checks"]["influxdb"]["ok"] is False
        assert f"InfluxDB at {url} unreachable" in body["detail"]
        assert "mqtt" not in body["detail"].lower()
        # The data endpoints say so too, as 503s, and liveness is unaffected.
        for path in ("/api/v1/sensors", "/api/v1/sensors/flood-thao-dien/latest",
                     "/api/v1/sensors/flood-thao-dien/history?metric=water_level_cm",
                     "/api/v1/city/summary"):
            r = client.get(path)
            assert r.status_code == 503, path
            assert "InfluxDB is unavailable" in r.json()["detail"]
            assert r.headers["retry-after"] == "5"
        assert client.get("/healthz").status_code == 200


def test_readyz_503_when_the_database_is_missing(influxd: Influxd,
                                                 mqtt_settings: MqttSettings) -> None:
    settings = ApiSettings(influx=InfluxSettings(url=influxd.url, db="no-such-db"),
                           mqtt=mqtt_settings)
    with TestClient(create_app(settings, REGISTRY)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "has no database 'no-such-db'" in response.json()["detail"]
        assert response.json()["checks"]["influxdb"]["version"].startswith("1.6")
        r = client.get("/api/v1/sensors/flood-thao-dien/latest")
        assert r.status_code == 503
        assert "no database 'no-such-db'" in r.json()["detail"]


def test_api_starts_and_says_so_when_the_broker_is_down(influx_settings: InfluxSettings) -> None:
    port = free_port()
    settings = ApiSettings(influx=influx_settings,
                           mqtt=MqttSettings(url=f"mqtt://127.0.0.1:{port}"))
    started = time.monotonic()
    with TestClient(create_app(settings, REGISTRY)) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert f"not connected to MQTT broker 127.0.0.1:{port}" in response.json()["detail"]
        assert response.json()["checks"]["influxdb"]["ok"] is True
        sensors = client.get("/api/v1/sensors").json()
        assert {s["status"] for s in sensors} == {"unknown"}
    assert time.monotonic() - started < 5


# --- sensors -----------------------------------------------------------------------------

def test_sensors_list_last_seen_and_status(client: TestClient, influx: InfluxClient,
                                           mqtt_settings: MqttSettings) -> None:
    now = now_ms()
    influx.write(line("flood-thao-dien", now - 2 * MIN, seq=1, water_level_cm=3.0)
                 + line("flood-thao-dien", now - MIN, seq=2, source="live", battery_pct=90)
                 + line("home-thao-dien", now - 40 * 24 * 60 * MIN, power_w=500))
    root = mqtt_settings.root
    publish(mqtt_settings, str(status_topic("flood", "flood-thao-dien", root)),
            b'{"state":"online","ts":"2026-06-01T08:00:00+07:00"}', retain=True)
    publish(mqtt_settings, str(status_topic("traffic", "saigon-bridge", root)),
            b'{"state":"offline"}', retain=True)
    publish(mqtt_settings, str(status_topic("weather", "rain-sai-gon", root)),
            b'{"state":"asleep"}', retain=True)
    wait_for(lambda: tracker(client).received >= 3, what="three status messages")

    sensors = {s["device_id"]: s for s in client.get("/api/v1/sensors").json()}
    assert set(sensors) == {d.device_id for d in REGISTRY}
    flood = sensors["flood-thao-dien"]
    assert flood == {
        "device_id": "flood-thao-dien", "domain": "flood", "name": flood["name"],
        "name_en": flood["name_en"], "ward": "an-khanh", "site": "flood-thao-dien",
        "location": {"lat": REGISTRY.get("flood-thao-dien").lat,  # type: ignore[union-attr]
                     "lon": REGISTRY.get("flood-thao-dien").lon},  # type: ignore[union-attr]
        "metrics": ["battery_pct", "water_level_cm", "river_level_cm"],
        "status": "online", "status_since": "2026-06-01T01:00:00.000Z",
        "last_seen": format_ts(now - MIN), "source": "live",
    }
    assert (sensors["saigon-bridge"]["status"], sensors["saigon-bridge"]["status_since"]) == (
        "offline", None)
    # A status that breaks the contract is ignored and counted, not fatal.
    assert sensors["rain-sai-gon"]["status"] == "unknown"
    assert tracker(client).rejected == 1
    # Older than the 30-day window: never seen, as far as the api knows.
    assert sensors["home-thao-dien"]["last_seen"] is None
    assert sensors["ton-duc-thang"]["last_seen"] is None

    assert client.get("/api/v1/sensors/flood-thao-dien").json() == flood


def test_retained_status_published_before_start_is_seen(settings: ApiSettings,
                                                        mqtt_settings: MqttSettings) -> None:
    publish(mqtt_settings, str(status_topic("home", "home-thao-dien", mqtt_settings.root)),
            b'{"state":"online"}', retain=True)
    with TestClient(create_app(settings, REGISTRY)) as client:
        wait_for(lambda: client.get("/api/v1/sensors/home-thao-dien").json()["status"]
                 == "online", what="home-thao-dien online")


def test_sensors_domain_filter(client: TestClient) -> None:
    flood = client.get("/api/v1/sensors", params={"domain": "flood"}).json()
    assert sorted(s["device_id"] for s in flood) == sorted(
        s.device_id for s in [*CITY.flood_sites, *CITY.tide_gauges])
    response = client.get("/api/v1/sensors", params={"domain": "lava"})
    assert response.status_code == 422
    assert "query.domain" in problem(response)
    assert "'home', 'traffic', 'flood' or 'weather'" in problem(response)


def test_latest_takes_each_metric_from_its_own_message(client: TestClient,
                                                       influx: InfluxClient) -> None:
    now = now_ms()
    influx.write(line("home-thao-dien", now - 3 * MIN, seq=1, power_w=900, temperature_c=29.5)
                 + line("home-thao-dien", now - 2 * MIN, seq=2, power_w=1250.5)
                 + line("home-thao-dien", now - MIN, seq=3, pm25_ugm3=41)
                 + line("home-le-thanh-ton", now, seq=9, power_w=1))
    response = client.get("/api/v1/sensors/home-thao-dien/latest")
    assert response.status_code == 200
    assert response.json() == {
        "device_id": "home-thao-dien", "domain": "home",
        "last_seen": format_ts(now - MIN), "source": "simulated",
        "values": {
            "power_w": {"value": 1250.5, "unit": "W", "time": format_ts(now - 2 * MIN)},
            "temperature_c": {"value": 29.5, "unit": "°C", "time": format_ts(now - 3 * MIN)},
            "pm25_ugm3": {"value": 41.0, "unit": "µg/m³", "time": format_ts(now - MIN)},
        },
    }


def test_latest_of_a_quiet_device_is_empty_not_404(client: TestClient) -> None:
    response = client.get("/api/v1/sensors/rain-sai-gon/latest")
    assert response.status_code == 200
    assert response.json() == {"device_id": "rain-sai-gon", "domain": "weather",
                               "last_seen": None, "source": None, "values": {}}


# --- history -----------------------------------------------------------------------------

@pytest.fixture
def flood_points(influx: InfluxClient) -> int:
    """Two minutes of flood-thao-dien readings; returns the first minute's start."""
    base = (now_ms() - 30 * MIN) // MIN * MIN
    influx.write(line("flood-thao-dien", base + 5_000, 1, water_level_cm=10)
                 + line("flood-thao-dien", base + 20_000, 2, water_level_cm=20)
                 + line("flood-thao-dien", base + 30_000, 3, battery_pct=1)
                 + line("flood-thao-dien", base + 65_000, 4, water_level_cm=30)
                 + line("flood-thao-dien", base + 70_000, 5, water_level_cm=50)
                 + line("flood-thao-dien", base + 125_000, 6, water_level_cm=99)  # after end
                 + line("flood-nguyen-huu-canh", base + 10_000, 1, water_level_cm=77))
    return base


@pytest.mark.parametrize(("agg", "values"), [
    ("mean", [15.0, 40.0]), ("min", [10.0, 30.0]), ("max", [20.0, 50.0]), (None, [15.0, 40.0]),
])
def test_history_buckets(client: TestClient, flood_points: int, agg: str | None,
                         values: list[float]) -> None:
    base = flood_points
    plus7 = timezone(timedelta(hours=7))
    params = {"metric": "water_level_cm", "every": "1m",
              "start": datetime.fromtimestamp(base / 1000, plus7).isoformat(),
              "end": datetime.fromtimestamp((base + 2 * MIN) / 1000, UTC).isoformat()}
    if agg:
        params["agg"] = agg
    response = client.get("/api/v1/sensors/flood-thao-dien/history", params=params)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "device_id": "flood-thao-dien", "metric": "water_level_cm", "unit": "cm",
        "agg": agg or "mean", "every": "1m",
        "start": format_ts(base), "end": format_ts(base + 2 * MIN),
        "points": [{"t": format_ts(base), "value": values[0]},
                   {"t": format_ts(base + MIN), "value": values[1]}],
    }


def test_history_defaults_to_the_last_hour(client: TestClient, flood_points: int) -> None:
    before = now_ms()
    body = client.get("/api/v1/sensors/flood-thao-dien/history",
                      params={"metric": "water_level_cm", "agg": "max"}).json()
    end = datetime.fromisoformat(body["end"]).timestamp() * 1000
    start = datetime.fromisoformat(body["start"]).timestamp() * 1000
    assert before <= end <= now_ms() and end - start == 60 * MIN
    assert body["every"] == "15s"
    assert [p["value"] for p in body["points"]] == [10, 20, 50, 99]


# --- every 4xx ---------------------------------------------------------------------------

HISTORY = "/api/v1/sensors/flood-thao-dien/history"


@pytest.mark.parametrize(("path", "params", "status", "fragments"), [
    ("/api/v1/sensors/BAD%20ID", {}, 422, ["path.device_id", "'BAD ID' must match ^[a-z0-9]"]),
    ("/api/v1/sensors/a'b/latest", {}, 422, ["path.device_id", '"a\'b" must match']),
    ("/api/v1/sensors/" + "x" * 65 + "/history", {"metric": "water_level_cm"}, 422,
     ["at most 64 characters"]),
    ("/api/v1/sensors/flood-q9", {}, 404, ["unknown device 'flood-q9'"]),
    ("/api/v1/sensors/flood-q9/latest", {}, 404, ["unknown device 'flood-q9'"]),
    ("/api/v1/sensors/flood-q9/history", {"metric": "water_level_cm"}, 404,
     ["unknown device 'flood-q9'"]),
    (HISTORY, {}, 422, ["query.metric", "Field required"]),
    (HISTORY, {"metric": "water_level"}, 422,
     ["query.metric", "'water_level' is not a metric of flood devices",
      "valid: battery_pct, water_level_cm"]),
    (HISTORY, {"metric": "water_level_cm", "agg": "median"}, 422,
     ["query.agg", "'mean', 'min' or 'max'"]),
    (HISTORY, {"metric": "water_level_cm", "start": "-1h", "end": "-2h"}, 422,
     ["query.start", "must be before end"]),
    (HISTORY, {"metric": "water_level_cm", "start": "now", "end": "now"}, 422,
     ["query.start", "must be before end"]),
    (HISTORY, {"metric": "water_level_cm", "start": "-30d", "every": "1m"}, 422,
     ["query.every", "every=1m over 30d makes", "buckets, more than 10000",
      "choose every=5m"]),
    (HISTORY, {"metric": "water_level_cm", "start": "yesterday"}, 422,
     ["query.start", "'yesterday' is not a time", "RFC 3339"]),
    (HISTORY, {"metric": "water_level_cm", "end": "2026-06-01T08:00:00"}, 422,
     ["query.end", "no UTC offset"]),
    (HISTORY, {"metric": "water_level_cm", "every": "5 minutes"}, 422,
     ["query.every", "'5 minutes' is not a duration"]),
    (HISTORY, {"metric": "water_level_cm", "every": "5m) fill(0"}, 422,
     ["query.every", "is not a duration"]),
])
def test_bad_requests_say_what_is_wrong(client: TestClient, path: str, params: dict[str, str],
                                        status: int, fragments: list[str]) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    for fragment in fragments:
        assert fragment in problem(response)


# --- city summary ------------------------------------------------------------------------

def test_city_summary(client: TestClient, influx: InfluxClient) -> None:
    now = now_ms()
    old = now - 20 * MIN  # outside the 15-minute window
    influx.write(
        line("home-le-thanh-ton", now - MIN, power_w=1500, temperature_c=30, pm25_ugm3=12)
        + line("home-thao-dien", now - 2 * MIN, power_w=2500.5, temperature_c=27, pm25_ugm3=60)
        + line("home-thao-dien", old, power_w=99_000)
        + line("home-nguyen-huu-canh", old, power_w=99_000, pm25_ugm3=900)
        + line("ton-duc-thang", now - MIN, speed_kmh=14.9)
        + line("saigon-bridge", now - MIN, speed_kmh=8)
        + line("mai-chi-tho", now - 3 * MIN, speed_kmh=35)
        + line("mai-chi-tho", now - 4 * MIN, speed_kmh=2)
        + line("khanh-hoi-bridge", now - MIN, speed_kmh=15)
        + line("flood-thao-dien", now - MIN, water_level_cm=16)  # warning at 15
        + line("flood-nguyen-huu-canh", now - MIN, water_level_cm=19)  # warning at 20
        + line("flood-huynh-tan-phat", old, water_level_cm=80)
        + line("rain-sai-gon", now - MIN, rain_mm_h=42.5, temperature_c=26.5))
    response = client.get("/api/v1/city/summary")
    assert response.status_code == 200
    s = response.json()
    assert s["window"] == "15m"
    assert s["home"] == {
        "devices_total": 4, "devices_reporting": 2, "total_power_w": 4000.5,
        "mean_temperature_c": 28.5,
        "max_pm25_ugm3": {"device_id": "home-thao-dien", "site": "home-thao-dien",
                          "name": "Biệt thự Thảo Điền", "name_en": "Thao Dien villa",
                          "value": 60.0}}
    traffic = s["traffic"]
    assert (traffic["devices_total"], traffic["devices_reporting"]) == (7, 4)
    assert traffic["mean_speed_kmh"] == round((14.9 + 8 + 35 + 15) / 4, 3) == 18.225
    assert (traffic["slowest"]["device_id"], traffic["slowest"]["value"]) == ("saigon-bridge", 8)
    assert traffic["congested"] == ["saigon-bridge", "ton-duc-thang"]
    assert (traffic["congested_count"], traffic["congested_below_kmh"]) == (2, 15)
    flood = s["flood"]
    assert (flood["devices_total"], flood["devices_reporting"]) == (4, 2)  # 3 sites, 1 gauge
    assert (flood["max_water_level_cm"]["site"], flood["max_water_level_cm"]["value"]) == (
        "flood-nguyen-huu-canh", 19)
    assert [(w["site"], w["water_level_cm"], w["warning_cm"]) for w in flood["at_warning"]] == [
        ("flood-thao-dien", 16, 15)]
    assert flood["at_warning_count"] == 1
    assert s["weather"] == {
        "devices_total": 1, "devices_reporting": 1, "mean_temperature_c": 26.5,
        "max_rain_mm_h": {"device_id": "rain-sai-gon", "site": "rain-sai-gon",
                          "name": s["weather"]["max_rain_mm_h"]["name"],
                          "name_en": s["weather"]["max_rain_mm_h"]["name_en"], "value": 42.5}}


def test_city_summary_of_an_empty_city(settings: ApiSettings) -> None:
    # No registry given: the app loads the city file, warning levels included.
    with TestClient(create_app(settings)) as client:
        s = client.get("/api/v1/city/summary").json()
    assert s["flood"] == {"devices_total": len(CITY.flood_sites) + len(CITY.tide_gauges),
                          "devices_reporting": 0,
                          "max_water_level_cm": None, "at_warning": [], "at_warning_count": 0}
    assert s["home"]["total_power_w"] is None


# --- docs and the entry point -------------------------------------------------------------

def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "smartcity api"
    assert set(spec["paths"]) >= {
        "/healthz", "/readyz", "/api/v1/sensors", "/api/v1/sensors/{device_id}",
        "/api/v1/sensors/{device_id}/latest", "/api/v1/sensors/{device_id}/history",
        "/api/v1/city/summary"}
    history = spec["paths"]["/api/v1/sensors/{device_id}/history"]["get"]
    assert {"404", "422", "503"} <= set(history["responses"])
    assert spec["components"]["schemas"]["CitySummary"]["description"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_main_serves_and_stops_cleanly(sig: signal.Signals, mosquitto: Mosquitto,
                                       influx_settings: InfluxSettings, root: str,
                                       subprocess_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = subprocess_env | {"SMARTCITY_MQTT_URL": mosquitto.url, "SMARTCITY_MQTT_ROOT": root,
                            "SMARTCITY_INFLUX_URL": influx_settings.url,
                            "SMARTCITY_INFLUX_DB": influx_settings.db}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "api", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def ready() -> Any:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                return False

        wait_for(ready, timeout=30, what="the api to be ready")
        proc.send_signal(sig)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"api serving on http://127.0.0.1:{port} (OpenAPI docs at /docs)" in text
    assert "Traceback" not in text
