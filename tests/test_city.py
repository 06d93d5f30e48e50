"""The city file: the built-in Ho Chi Minh City, errors naming line and field, --scale."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.city import City, load_city
from smartcity.errors import ContractError
from smartcity.ids import is_valid_id
from smartcity.topics import Domain

MINIMAL = """\
version = 2
name = "Thử nghiệm"

[[wards]]
id = "w1"
name = "Phường Một"

[[roads]]
id = "r1"
name = "Đường Một"
ward = "w1"
lat = 10.7
lon = 106.7
connects = ["r2"]

[[roads]]
id = "r2"
name = "Đường Hai"
ward = "w1"
lat = 10.7
lon = 106.7
connects = ["r1"]

[[flood_sites]]
id = "f1"
name = "Điểm ngập"
ward = "w1"
lat = 10.7
lon = 106.7
roads = ["r1"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_built_in_city_has_every_kind_of_place_with_vietnamese_names() -> None:
    city = load_city()
    assert city.version == 2
    assert city.wards and city.homes and city.roads and city.flood_sites and city.rain_gauges
    [tide] = city.tide_gauges
    assert tide.id == "tide-phu-an" and "Phú An" in tide.name
    assert city.registry().get("tide-phu-an").domain is Domain.FLOOD  # type: ignore[union-attr]
    nhc = next(s for s in city.flood_sites if s.id == "flood-nguyen-huu-canh")
    assert nhc.roads == ["nguyen-huu-canh"] and nhc.ground_cm < 178  # a king tide tops it
    assert all(s.warning_cm > 0 for s in city.flood_sites)
    assert all(is_valid_id(d.device_id) for d in city.registry())


def test_a_version_1_file_without_the_physics_still_loads(tmp_path: Path) -> None:
    old = MINIMAL.replace("version = 2", "version = 1").replace('roads = ["r1"]\n', "")
    city = load_city(write(tmp_path, old))
    assert city.version == 1 and city.flood_sites[0].ground_cm == 160 and not city.tide_gauges


@pytest.mark.parametrize(("change", "field", "message"), [
    (('ward = "w1"\nlat = 10.7\nlon = 106.7\nroads', 'ward = "w9"\nlat = 10.7\nlon = 106.7\nroads'),
     "city.toml:27: flood_sites[0].ward", "unknown ward 'w9'"),
    (('connects = ["r1"]', 'connects = ["r7"]'),
     "city.toml:22: roads[1].connects", "unknown road 'r7'"),
    (('roads = ["r1"]', 'roads = ["nowhere"]'),
     "city.toml:30: flood_sites[0].roads", "unknown road 'nowhere'"),
    (('id = "f1"', 'id = "r2"'), "city.toml:25: flood_sites[0].id", "'r2' is used twice"),
    (('id = "f1"', 'id = "F 1"'), "city.toml:25: flood_sites[0].id", "must match"),
    (('roads = ["r1"]', 'drain_cm_h = -3'), "city.toml:30: flood_sites[0].drain_cm_h",
     "greater than or equal to 0"),
    (('roads = ["r1"]', 'depth = 3'), "city.toml:30: flood_sites[0].depth", "not a known field"),
])
def test_a_bad_city_file_names_the_line_and_the_field(tmp_path: Path, change: tuple[str, str],
                                                      field: str, message: str) -> None:
    old, new = change
    assert old in MINIMAL
    with pytest.raises(ContractError) as e:
        load_city(write(tmp_path, MINIMAL.replace(old, new, 1)))
    [problem] = e.value.problems
    assert problem.field == field
    assert message in problem.message
    assert "city.toml" in str(e.value)


def test_scale_copies_every_device_with_its_own_id_and_its_own_roads() -> None:
    city = load_city()
    big = load_city(scale=3)

    assert len(big.registry()) == 3 * len(city.registry())
    assert big.scale == 3 and city.scale == 1
    ids = [d.device_id for d in big.registry()]
    assert len(set(ids)) == len(ids) and all(is_valid_id(i) for i in ids)
    copy = next(r for r in big.roads if r.id == "saigon-bridge-x2")
    assert copy.connects == ["nguyen-huu-canh-x2", "dien-bien-phu-hang-xanh-x2", "mai-chi-tho-x2"]
    assert next(s for s in big.flood_sites if s.id == "flood-nguyen-huu-canh-x1").roads == [
        "nguyen-huu-canh-x1"]
    assert big.original("saigon-bridge-x2") == "saigon-bridge"
    assert big.original("saigon-bridge") == "saigon-bridge"
    assert big.registry().get("home-thao-dien-x1").ward == "an-khanh"  # type: ignore[union-attr]
    assert load_city(scale=1).registry().get("home-thao-dien-x1") is None


def test_scale_refuses_ids_that_would_grow_too_long(tmp_path: Path) -> None:
    long_id = "r" * 61  # room for -x9, not for -x10
    city = load_city(write(tmp_path, MINIMAL.replace('"r2"', f'"{long_id}"')))
    assert city.scaled(10).scale == 10
    with pytest.raises(ContractError, match="longer than 64"):
        city.scaled(11)
    with pytest.raises(ContractError, match="below 1"):
        city.scaled(0)


def test_a_city_built_in_code_checks_its_references() -> None:
    with pytest.raises(ValueError, match=r"homes\[0\].ward: unknown ward 'w9'"):
        City.model_validate({"name": "X", "wards": [{"id": "w1", "name": "W"}],
                             "homes": [{"id": "h1", "name": "H", "ward": "w9", "lat": 1,
                                        "lon": 2}]})
