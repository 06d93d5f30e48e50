"""``GET /api/v1/city/map``: what the kiosk board draws, from the city file, on the real api
(real Mosquitto and InfluxDB behind it)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from smartcity.city import load_city
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings

pytestmark = pytest.mark.servers

CITY = load_city()
REPO = Path(__file__).resolve().parents[1]


def get_map(settings: ApiSettings) -> dict[str, Any]:
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/city/map")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def settings(influx_settings: InfluxSettings, mqtt_settings: MqttSettings) -> ApiSettings:
    return ApiSettings(influx=influx_settings, mqtt=mqtt_settings)


@pytest.fixture
def hcmc(settings: ApiSettings) -> Iterator[dict[str, Any]]:
    yield get_map(settings)


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items}


def point(location: dict[str, float]) -> tuple[float, float]:
    return location["lat"], location["lon"]


def test_the_map_holds_every_place_of_the_city_file_with_its_bilingual_names(
        hcmc: dict[str, Any]) -> None:
    assert (hcmc["name"], hcmc["name_en"], hcmc["scale"]) == ("Thành phố Hồ Chí Minh",
                                                             "Ho Chi Minh City", 1)
    assert [w["id"] for w in hcmc["wards"]] == [w.id for w in CITY.wards]
    assert by_id(hcmc["wards"])["thanh-my-tay"]["name"] == "Phường Thạnh Mỹ Tây"
    assert {r["id"] for r in hcmc["roads"]} == {r.id for r in CITY.roads}
    assert {h["id"] for h in hcmc["homes"]} == {h.id for h in CITY.homes}
    assert [g["id"] for g in hcmc["rain_gauges"]] == ["rain-sai-gon"]
    (tide,) = hcmc["tide_gauges"]
    assert (tide["device_id"], tide["domain"]) == ("tide-phu-an", "flood")

    floods = by_id(hcmc["flood_sites"])
    assert floods["flood-thao-dien"]["warning_cm"] == 15
    assert floods["flood-thao-dien"]["name"] == "Điểm ngập Thảo Điền (Quốc Hương)"
    assert floods["flood-thao-dien"]["name_en"] == "Thao Dien flood point (Quoc Huong)"
    assert floods["flood-nguyen-huu-canh"]["roads"] == ["nguyen-huu-canh"]
    assert floods["flood-nguyen-huu-canh"]["warning_cm"] == 20
    # the levels at which the rules service raises its alerts there (rules/defaults.toml,
    # with the site's own warning depth)
    assert floods["flood-thao-dien"]["levels"] == {"watch": 10, "warning": 15, "danger": 40}
    assert floods["flood-nguyen-huu-canh"]["levels"] == {"watch": 10, "warning": 20,
                                                         "danger": 40}
    home = by_id(hcmc["homes"])["home-thao-dien"]
    assert (home["domain"], home["ward"], point(home["location"])) == \
        ("home", "an-khanh", (10.8030, 106.7335))
    assert (home["copy_of"], home["copy_index"]) == (None, 0)


def test_a_ward_is_centred_on_its_places_and_the_bounds_hold_everything_drawn(
        hcmc: dict[str, Any]) -> None:
    places = [p for _, section in CITY.sections() for p in section]
    for ward in hcmc["wards"]:
        mine = [p for p in places if p.ward == ward["id"]]
        assert ward["places"] == len(mine)
        assert ward["centre"]["lat"] == pytest.approx(sum(p.lat for p in mine) / len(mine))
        assert ward["centre"]["lon"] == pytest.approx(sum(p.lon for p in mine) / len(mine))
    # ... and the bounds hold every place and every road's lines.
    ends = [e for r in hcmc["roads"] for line in r["lines"] for e in line]
    lats = [p.lat for p in places] + [e["lat"] for e in ends]
    lons = [p.lon for p in places] + [e["lon"] for e in ends]
    b = hcmc["bounds"]
    assert b["south"] < min(lats) <= max(lats) < b["north"]
    assert b["west"] < min(lons) <= max(lons) < b["east"]


def test_a_road_is_drawn_from_its_detector_halfway_to_each_road_it_connects_to(
        hcmc: dict[str, Any]) -> None:
    roads = by_id(hcmc["roads"])
    nhc = roads["nguyen-huu-canh"]
    assert nhc["connects"] == ["ton-duc-thang", "dien-bien-phu-hang-xanh", "saigon-bridge"]
    assert (nhc["lanes"], nhc["free_flow_kmh"], nhc["name"]) == (6, 50, "Đường Nguyễn Hữu Cảnh")
    assert len(nhc["lines"]) == 3
    for line, other in zip(nhc["lines"], nhc["connects"], strict=True):
        start, end = point(line[0]), point(line[1])
        assert start == point(nhc["location"])
        o_lat, o_lon = point(roads[other]["location"])
        assert end == pytest.approx(((start[0] + o_lat) / 2, (start[1] + o_lon) / 2))

    # One neighbour: the segment reaches as far the other way, through its detector.
    mct = roads["mai-chi-tho"]
    assert mct["connects"] == ["saigon-bridge"]
    (a0, a1), (b0, b1) = ((point(p) for p in line) for line in mct["lines"])
    assert a0 == b0 == point(mct["location"])
    assert (a1[0] - a0[0], a1[1] - a0[1]) == pytest.approx((a0[0] - b1[0], a0[1] - b1[1]))


def test_a_scaled_city_maps_every_copy_to_its_original(influx_settings: InfluxSettings,
                                                       mqtt_settings: MqttSettings) -> None:
    scaled = get_map(ApiSettings(influx=influx_settings, mqtt=mqtt_settings, scale=3))
    assert scaled["scale"] == 3
    assert len(scaled["roads"]) == 3 * len(CITY.roads)
    assert len(scaled["homes"]) == 3 * len(CITY.homes)
    assert len(scaled["wards"]) == len(CITY.wards)  # wards are shared
    roads = by_id(scaled["roads"])
    copy = roads["nguyen-huu-canh-x2"]
    assert (copy["device_id"], copy["copy_of"], copy["copy_index"]) == \
        ("nguyen-huu-canh-x2", "nguyen-huu-canh", 2)
    assert copy["connects"] == ["ton-duc-thang-x2", "dien-bien-phu-hang-xanh-x2",
                                "saigon-bridge-x2"]
    assert copy["lines"] == roads["nguyen-huu-canh"]["lines"]  # the board spreads copies
    assert by_id(scaled["flood_sites"])["flood-thao-dien-x1"]["warning_cm"] == 15
    assert scaled["bounds"] == get_map(ApiSettings(influx=influx_settings,
                                                   mqtt=mqtt_settings))["bounds"]


def test_a_lone_road_is_drawn_along_its_length_and_an_empty_ward_has_no_centre(
        influx_settings: InfluxSettings, mqtt_settings: MqttSettings, tmp_path: Path) -> None:
    city = tmp_path / "town.toml"
    city.write_text("""version = 2
name = "Thị trấn"
[[wards]]
id = "w1"
name = "Phường Một"
[[wards]]
id = "w2"
name = "Phường Hai"
name_en = "Ward Two"
[[roads]]
id = "lone"
name = "Đường Một"
ward = "w1"
lat = 10.0
lon = 106.0
length_m = 1000
""", encoding="utf-8")
    town = get_map(ApiSettings(influx=influx_settings, mqtt=mqtt_settings, city_file=city))
    assert town["name_en"] is None
    w1, w2 = town["wards"]
    assert (w1["centre"], w1["places"]) == ({"lat": 10.0, "lon": 106.0}, 1)
    assert (w2["centre"], w2["places"], w2["name_en"]) == (None, 0, "Ward Two")
    (road,) = town["roads"]
    (a0, a1), (b0, b1) = ((point(p) for p in line) for line in road["lines"])
    assert a0 == b0 == (10.0, 106.0) and a1[0] == b1[0] == 10.0
    metres = (b1[1] - a1[1]) * 111_320 * math.cos(math.radians(10.0))
    assert abs(metres) == pytest.approx(1000)
    b = town["bounds"]
    assert b["south"] < 10.0 < b["north"] and b["west"] < 106.0 < b["east"]
    assert town["flood_sites"] == town["homes"] == town["rain_gauges"] == []


def test_the_map_is_in_the_openapi_document(settings: ApiSettings) -> None:
    with TestClient(create_app(settings)) as client:
        spec = client.get("/openapi.json").json()
    assert "/api/v1/city/map" in spec["paths"]
    assert {"CityMap", "MapRoad", "MapFloodSite", "MapWard"} <= set(spec["components"]["schemas"])


def test_flood_levels_follow_the_rule_file_the_rules_service_reads(
        settings: ApiSettings, tmp_path: Path) -> None:
    defaults = (REPO / "rules/defaults.toml").read_text(encoding="utf-8")
    assert "level = \"danger\"\nenter = 40\n" in defaults
    rules = tmp_path / "rules.toml"
    rules.write_text(defaults.replace("level = \"danger\"\nenter = 40\n",
                                      "level = \"danger\"\nenter = 55\n"), encoding="utf-8")
    floods = by_id(get_map(settings.model_copy(update={"rules_file": rules}))["flood_sites"])
    assert floods["flood-thao-dien"]["levels"] == {"watch": 10, "warning": 15, "danger": 55}
