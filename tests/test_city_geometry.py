"""The drawn geography and the simulated city agree: every place lies in its ward's outline
and on land, every road detector on its road's course, the tide gauge in the river."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.citygeometry import distance_m, features, geometry_path, inside, load_geometry
from api.main import create_app
from launcher.servers import free_port
from smartcity.city import load_city
from smartcity.errors import ContractError
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings

CITY = load_city()
GEO = load_geometry(geometry_path(None))
WARDS = features(GEO, "ward")
RIVER = features(GEO, "river")["song-sai-gon"]
WATER = [*features(GEO, "river").values(), *features(GEO, "canal").values()]
ROADS = features(GEO, "road")


def test_the_file_names_its_source_and_covers_the_city() -> None:
    assert "hand-traced" in GEO["source"].lower()
    assert set(WARDS) == {w.id for w in CITY.wards}
    assert set(ROADS) == {r.id for r in CITY.roads}
    assert {"kenh-thi-nghe", "kenh-ben-nghe", "kenh-te"} <= set(features(GEO, "canal"))


PLACES = [p for section, places in CITY.sections() if section not in ("tide_gauges", "roads")
          for p in places]


@pytest.mark.parametrize("road", CITY.roads, ids=lambda r: r.id)
def test_every_road_detector_is_in_its_ward(road: object) -> None:
    lon, lat, ward = road.lon, road.lat, road.ward  # type: ignore[attr-defined]
    assert inside((lon, lat), WARDS[ward]["geometry"]["coordinates"][0]), (lon, lat, ward)


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.id)
def test_every_place_lies_in_its_ward_and_on_land(place: object) -> None:
    lon, lat, ward = place.lon, place.lat, place.ward  # type: ignore[attr-defined]
    assert inside((lon, lat), WARDS[ward]["geometry"]["coordinates"][0]), (lon, lat, ward)
    for water in WATER:
        half = water["properties"]["width_m"] / 2
        assert distance_m((lon, lat), water["geometry"]["coordinates"]) > half, \
            (place.id, water["properties"]["id"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("road", CITY.roads, ids=lambda r: r.id)
def test_every_road_detector_is_on_its_road(road: object) -> None:
    line = ROADS[road.id]["geometry"]["coordinates"]  # type: ignore[attr-defined]
    assert distance_m((road.lon, road.lat), line) < 60  # type: ignore[attr-defined]


def test_the_tide_gauge_is_in_the_river() -> None:
    gauge = CITY.tide_gauges[0]
    assert distance_m((gauge.lon, gauge.lat), RIVER["geometry"]["coordinates"]) < 150


def test_geometry_helpers() -> None:
    square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    assert inside((0.5, 0.5), square) and not inside((1.5, 0.5), square)
    assert distance_m((0.0, 0.001), [[-1.0, 0.0], [1.0, 0.0]]) == pytest.approx(111.3, abs=0.1)


def test_a_bad_geometry_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "city.geojson"
    for text, field in (("{", "file"), ('{"type": "Feature"}', "type"),
                        ('{"type": "FeatureCollection", "features": []}', "source"),
                        ('{"type": "FeatureCollection", "source": "x", "features": '
                         '[{"properties": {"kind": "lake"}}]}', "features[0].properties.kind")):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ContractError) as e:
            load_geometry(bad)
        assert e.value.problems[0].field == field


def test_the_api_serves_it() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    settings = ApiSettings(influx=InfluxSettings(url=f"http://{nowhere}"),
                           mqtt=MqttSettings(url=f"mqtt://{nowhere}"))
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/city/geometry")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.json()["features"] == GEO["features"]
