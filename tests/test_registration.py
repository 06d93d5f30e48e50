"""Registering an exhibitor device: the pure rules (ids, wards, topics, the ready payload)."""

from __future__ import annotations

import shlex

import orjson
import pytest
from pydantic import ValidationError

from api.models.devices import Credentials, DeviceRequest
from api.registration import (
    RegistrationProblem,
    build_device,
    example_of,
    nearest_ward,
    slug,
    topics_of,
)
from smartcity.city import load_city
from smartcity.codec import decode
from smartcity.ids import is_valid_id
from smartcity.models import Source
from smartcity.topics import Domain

CITY = load_city()
REGISTRY = CITY.registry()
WARDS = [w.id for w in CITY.wards]


def request(**changes: object) -> DeviceRequest:
    body: dict[str, object] = {"name": "Cảm biến ngập gian hàng A3", "domain": "flood",
                               "location": {"lat": 10.7769, "lon": 106.7009},
                               "metrics": ["water_level_cm", "battery_pct"]}
    body.update(changes)
    return DeviceRequest.model_validate(body)


@pytest.mark.parametrize(("name", "expected"), [
    ("Cảm biến ngập gian hàng A3", "cam-bien-ngap-gian-hang-a3"),
    ("Đèn giao thông Đồng Khởi", "den-giao-thong-dong-khoi"),
    ("  ESP32 #7 / booth 12  ", "esp32-7-booth-12"),
    ("🌧️", "device"),
    ("x" * 100, "x" * 40),
])
def test_a_device_id_is_made_from_the_display_name(name: str, expected: str) -> None:
    assert slug(name) == expected


def test_a_registered_device_gets_a_fresh_valid_id_its_ward_and_its_declared_metrics() -> None:
    device = build_device(request(), REGISTRY, WARDS)
    assert device.device_id.startswith("cam-bien-ngap-gian-hang-a3-")
    assert is_valid_id(device.device_id)
    assert device.device_id not in REGISTRY
    assert device.source is Source.LIVE
    assert device.metrics == ("water_level_cm", "battery_pct")
    assert device.ward in WARDS
    assert device.ward == nearest_ward(REGISTRY, 10.7769, 106.7009)
    assert device.name == "Cảm biến ngập gian hàng A3"


def test_the_nearest_ward_is_that_of_the_nearest_city_device() -> None:
    some = next(iter(REGISTRY))
    assert nearest_ward(REGISTRY, some.lat, some.lon) == some.ward


def test_a_wished_for_id_and_ward_are_kept() -> None:
    device = build_device(request(device_id="booth-a3", ward=WARDS[-1]), REGISTRY, WARDS)
    assert (device.device_id, device.ward) == ("booth-a3", WARDS[-1])


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"metrics": ["water_level_cm", "speed_kmh"]}, "metrics.1", "not a flood metric"),
    ({"ward": "atlantis"}, "ward", "unknown ward"),
])
def test_a_request_naming_what_the_city_lacks_is_refused_by_field(
        changes: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(RegistrationProblem) as e:
        build_device(request(**changes), REGISTRY, WARDS)
    assert e.value.field == field
    assert words in str(e.value)


@pytest.mark.parametrize(("changes", "where"), [
    ({"name": ""}, "name"),
    ({"name": "line\nbreak"}, "name"),
    ({"metrics": []}, "metrics"),
    ({"metrics": ["water_level_cm", "water_level_cm"]}, "metrics"),
    ({"domain": "space"}, "domain"),
    ({"location": {"lat": 91, "lon": 0}}, "location.lat"),
    ({"device_id": "Booth A3"}, "device_id"),
    ({"password": "x"}, "password"),
])
def test_a_malformed_request_is_refused_naming_the_field(changes: dict[str, object],
                                                          where: str) -> None:
    with pytest.raises(ValidationError) as e:
        request(**changes)
    assert any(".".join(str(p) for p in err["loc"]).startswith(where) for err in e.value.errors())


def test_the_ready_payload_passes_the_contract_and_the_command_sends_it() -> None:
    device = build_device(request(), REGISTRY, WARDS)
    creds = Credentials(username="dev-x", password="p'w d", broker="mqtt://exhibit.local:1883")
    example = example_of(device, "city", 1_795_000_000_000, creds, creds.broker)
    topics = topics_of(device, "city")
    assert example.topic == topics.telemetry == f"city/flood/{device.device_id}/telemetry"
    assert topics.errors == f"city/devices/{device.device_id}/errors"
    reading = decode(example.topic, orjson.dumps(example.payload), "city")
    assert reading.metrics == {"water_level_cm": 12.5, "battery_pct": 92.0}
    assert reading.domain is Domain.FLOOD
    argv = shlex.split(example.mosquitto_pub)
    assert argv[argv.index("-P") + 1] == "p'w d"
    assert argv[argv.index("-h") + 1] == "exhibit.local"
    assert orjson.loads(argv[argv.index("-m") + 1]) == example.payload
    assert example.senml[0]["bn"] == f"{device.device_id}:"
    assert {r["n"] for r in example.senml} == {"water_level_cm", "battery_pct"}
