"""Exhibitors plug in their own devices: registration to data on the api through the real
secured broker with the credentials the exhibit issued, every format, every rejection
explained, rotation and revocation, and the command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.sync.client import connect as ws_connect

from launcher.servers import Influxd
from tests.exhibit import Exhibit, running_exhibit
from tests.mqtt import wait_for
from tests.secured_broker import NOT_AUTHORIZED

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Exhibit]:
    with running_exhibit(tmp_path_factory.mktemp("exhibit"), influxd) as running:
        yield running


def errors_of(session: Any, device_id: str, root: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in session.on(f"{root}/devices/{device_id}/errors")]


def test_a_registered_device_is_live_at_once_with_its_own_credentials(exhibit: Exhibit) -> None:
    with ws_connect(exhibit.api_url.replace("http", "ws") + "/api/v1/live?domain=flood") as ws:
        assert orjson.loads(ws.recv(timeout=10))["type"] == "snapshot"
        answer = exhibit.register()
        device_id = answer["device"]["device_id"]
        creds = answer["credentials"]
        assert creds["username"] == f"dev-{device_id}"
        assert len(creds["password"]) >= 16
        assert answer["topics"]["telemetry"] == f"{exhibit.root}/flood/{device_id}/telemetry"
        assert "cannot show it again" in answer["note"]

        with exhibit.connect(answer) as device:
            assert device.connected
            assert device.publish(answer["example"]["topic"],
                                  orjson.dumps(answer["example"]["payload"])) == 0
            exhibit.wait_latest(device_id, "water_level_cm", 12.5)

        # The board's stream announced the device and then carried its reading.
        seen: list[dict[str, Any]] = []

        def got_reading() -> bool:
            seen.append(orjson.loads(ws.recv(timeout=10)))
            return seen[-1].get("type") == "reading" and seen[-1]["device_id"] == device_id

        wait_for(got_reading, what="the reading on the live stream", timeout=20)
        added = [m for m in seen if m["type"] == "device"]
        assert added and added[0]["action"] == "added"
        assert added[0]["device"]["device_id"] == device_id

    report = exhibit.device(device_id)
    assert report["device"]["metrics"] == ["water_level_cm", "battery_pct"]
    assert report["messages"]["stored"] == 1
    assert report["last_seen"] is not None
    assert report["last_rejected"] == []
    assert report["hints"] == ["Readings are arriving and stored."]
    with exhibit.http(token="") as http:
        listed = http.get("/api/v1/devices").json()
        sensors = http.get("/api/v1/sensors", params={"domain": "flood"}).json()
    assert device_id in [d["device_id"] for d in listed]
    sensor = next(s for s in sensors if s["device_id"] == device_id)
    assert sensor["last_seen"] is not None
    assert sensor["metrics"] == ["water_level_cm", "battery_pct"]  # what it declared
    # ... and the exhibitor Grafana board's device picker offers it, with nothing restarted.
    assert device_id in exhibitor_board_devices(exhibit)


def exhibitor_board_devices(exhibit: Exhibit) -> list[str]:
    board = orjson.loads((REPO / "grafana/dashboards/exhibitor-devices.json").read_bytes())
    picker = next(v for v in board["templating"]["list"] if v["name"] == "device")
    query = picker["definition"]
    return [row[-1] for series in exhibit.influx.query(query) for row in series.values]


def test_every_format_a_device_sends_reaches_the_api(exhibit: Exhibit) -> None:
    answer = exhibit.register(name="Trạm thời tiết gian hàng B2", domain="weather",
                              metrics=["temperature_c", "humidity_pct", "rain_mm_h"])
    device_id = answer["device"]["device_id"]
    topic = answer["topics"]["telemetry"]
    with exhibit.connect(answer) as device:
        assert device.publish(topic, orjson.dumps({"ts": exhibit_now(), "seq": 1,
                                                   "temperature_c": 31.5})) == 0
        exhibit.wait_latest(device_id, "temperature_c", 31.5)
        senml = [{"bn": f"{device_id}:", "bt": exhibit_now() / 1000, "n": "humidity",
                  "u": "%RH", "v": 77}, {"n": "rain", "u": "mm/h", "v": 12}]
        assert device.publish(topic, orjson.dumps(senml)) == 0
        exhibit.wait_latest(device_id, "humidity_pct", 77.0)
        exhibit.wait_latest(device_id, "rain_mm_h", 12.0)
        assert device.publish(topic + "/temperature_c", b"29.25") == 0
        exhibit.wait_latest(device_id, "temperature_c", 29.25)
    assert exhibit.device(device_id)["messages"]["rejected"] == 0


REFUSED = [
    ("payload does not match the contract", 0x99,
     b'{"ts": 1795316645123, "seq": 1, "water_level_cm": "3"}', "water_level_cm"),
    ("undeclared metric", 0x99, b'{"ts": 1795316645123, "seq": 2, "river_level_cm": 3}',
     "river_level_cm"),
    ("wrong unit", 0x99, b'[{"n": "water_level_cm", "u": "m", "v": 0.2}]', "[0].u"),
    ("payload is not valid JSON", 0x99, b'{"ts": 1, "seq": 3, "water_level_cm": 4', "payload"),
]


def test_every_rejection_is_explained_to_the_device_and_kept_for_its_page(
        exhibit: Exhibit) -> None:
    answer = exhibit.register(metrics=["water_level_cm"])
    device_id = answer["device"]["device_id"]
    topic = answer["topics"]["telemetry"]
    with exhibit.connect(answer) as device:
        assert device.subscribe(answer["topics"]["errors"]) == [1]
        for _, _, payload, _ in REFUSED:
            device.publish(topic, payload)
        errors = wait_for(lambda: len(errors_of(device, device_id, exhibit.root)) == len(REFUSED)
                          and errors_of(device, device_id, exhibit.root),
                          what="an explanation of each rejection")
        # Another device's errors and data stay out of reach.
        assert device.subscribe(f"{exhibit.root}/devices/flood-thao-dien/errors") == \
            [NOT_AUTHORIZED]
        assert device.publish(f"{exhibit.root}/flood/flood-thao-dien/telemetry",
                              b'{"ts": 1, "seq": 1, "water_level_cm": 90}') == NOT_AUTHORIZED
    for error, (reason, code, _, field) in zip(errors, REFUSED, strict=True):
        assert (error["reason"], error["reason_code"]) == (reason, code)
        assert field in [e["field"] for e in error["errors"]]

    report = wait_for(lambda: (r := exhibit.device(device_id))["messages"]["rejected"]
                      == len(REFUSED) and r, what="the rejections on the device page")
    assert [r["reason"] for r in report["last_rejected"]] == [r[0] for r in reversed(REFUSED)]
    assert report["last_rejected"][0]["payload"] == REFUSED[-1][2].decode()
    assert report["last_rejected"][0]["reason_code"] == 0x99
    assert report["last_seen"] is None
    assert any("rejected" in hint for hint in report["hints"])
    # Nothing of it was stored, yet the exhibitor board's picker offers it, to show why.
    assert device_id in exhibitor_board_devices(exhibit)


def test_rotation_disconnects_the_device_and_only_the_new_password_works(
        exhibit: Exhibit) -> None:
    answer = exhibit.register()
    device_id = answer["device"]["device_id"]
    with exhibit.connect(answer) as device:
        with exhibit.http() as http:
            rotated = http.post(f"/api/v1/devices/{device_id}/rotate")
        assert rotated.status_code == 200, rotated.text
        wait_for(lambda: device.disconnects, what="the device to be disconnected")
    new = rotated.json()["credentials"]
    assert new["username"] == answer["credentials"]["username"]
    assert new["password"] != answer["credentials"]["password"]
    with exhibit.connect(answer) as old:
        assert old.refused == NOT_AUTHORIZED
    with exhibit.connect(answer, password=new["password"]) as device:
        assert device.publish(answer["topics"]["telemetry"],
                              orjson.dumps({"ts": exhibit_now(), "seq": 1,
                                            "water_level_cm": 7.5})) == 0
    exhibit.wait_latest(device_id, "water_level_cm", 7.5)


def test_removal_revokes_the_account_disconnects_the_device_and_forgets_it(
        exhibit: Exhibit) -> None:
    answer = exhibit.register()
    device_id = answer["device"]["device_id"]
    with exhibit.connect(answer) as device:
        with exhibit.http() as http:
            assert http.delete(f"/api/v1/devices/{device_id}").status_code == 204
        wait_for(lambda: device.disconnects, what="the device to be disconnected")
    with exhibit.connect(answer) as again:
        assert again.refused == NOT_AUTHORIZED
    with exhibit.http() as http:
        assert http.get(f"/api/v1/devices/{device_id}").status_code == 404
        assert device_id not in [d["device_id"] for d in http.get("/api/v1/devices").json()]
    wait_for(lambda: exhibit.ingest.judge.registry.get(device_id) is None,
             what="ingest to forget the device")


@pytest.mark.parametrize(("method", "path", "body", "token", "status", "words"), [
    ("post", "/api/v1/devices", {}, "", 401, "admin token"),
    ("post", "/api/v1/devices", {}, "wrong-token-wrong-token", 401, "admin token"),
    ("post", "/api/v1/devices", {"name": "x", "domain": "flood", "metrics": ["speed_kmh"],
                                 "location": {"lat": 10.8, "lon": 106.7}}, None, 422,
     "not a flood metric"),
    ("post", "/api/v1/devices", {"name": "x", "domain": "flood", "metrics": ["water_level_cm"],
                                 "location": {"lat": 10.8, "lon": 106.7},
                                 "device_id": "flood-thao-dien"}, None, 409, "taken"),
    ("post", "/api/v1/devices/flood-thao-dien/rotate", None, None, 409, "city's own"),
    ("delete", "/api/v1/devices/flood-thao-dien", None, None, 409, "city's own"),
    ("post", "/api/v1/devices/nobody-here/rotate", None, None, 404, "unknown device"),
    ("get", "/api/v1/devices/Bad%20Id", None, None, 422, "device_id"),
])
def test_refusals_of_the_device_api_name_the_problem(
        exhibit: Exhibit, method: str, path: str, body: dict[str, Any] | None,
        token: str | None, status: int, words: str) -> None:
    with exhibit.http(token) as http:
        response = http.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert words in response.text


def run_cli(exhibit: Exhibit, *args: str,
            token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SMARTCITY_API_URL=exhibit.api_url,
               SMARTCITY_ADMIN_TOKEN=exhibit.admin_token if token is None else token)
    return subprocess.run([sys.executable, "-m", "launcher.cli", "devices", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_command_line_adds_lists_shows_rotates_and_removes(exhibit: Exhibit) -> None:
    added = run_cli(exhibit, "--json", "add", "--name", "Đèn đường thông minh", "--domain",
                    "traffic", "--lat", "10.78", "--lon", "106.70", "--metric", "speed_kmh",
                    "--metric", "occupancy_pct")
    assert added.returncode == 0, added.stderr
    answer = orjson.loads(added.stdout)
    device_id = answer["device"]["device_id"]
    assert device_id.startswith("den-duong-thong-minh-")
    with exhibit.connect(answer) as device:
        assert device.connected

    listed = run_cli(exhibit, "list")
    assert listed.returncode == 0 and device_id in listed.stdout
    shown = run_cli(exhibit, "show", device_id)
    assert shown.returncode == 0 and "Nothing received yet" in shown.stdout
    rotated = run_cli(exhibit, "rotate", device_id)
    assert rotated.returncode == 0 and "password:" in rotated.stdout
    refused = run_cli(exhibit, "remove", device_id, token="not-the-admin-token")
    assert refused.returncode == 1 and "401" in refused.stderr
    removed = run_cli(exhibit, "remove", device_id)
    assert removed.returncode == 0 and "revoked" in removed.stdout
    gone = run_cli(exhibit, "show", device_id)
    assert gone.returncode == 1 and "unknown device" in gone.stderr


def test_the_cli_says_when_the_api_is_unreachable(tmp_path: Path) -> None:
    env = dict(os.environ, SMARTCITY_API_URL="http://127.0.0.1:9", SMARTCITY_ADMIN_TOKEN="x")
    result = subprocess.run([sys.executable, "-m", "launcher.cli", "devices", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "cannot reach the api at http://127.0.0.1:9" in result.stderr
    # a newcomer learns where the address goes
    assert "--api URL or SMARTCITY_API_URL=URL" in result.stderr


def exhibit_now() -> int:
    return int(time.time() * 1000)


def test_the_command_line_registers_a_vendor_format_with_its_settings(exhibit: Exhibit) -> None:
    added = run_cli(exhibit, "add", "--name", "Ổ cắm Tasmota gian B1", "--domain", "home",
                    "--lat", "10.78", "--lon", "106.70", "--metric", "power_w",
                    "--format", "tasmota")
    assert added.returncode == 0, added.stderr
    device_id = re.search(r"registered (\S+)", added.stdout).group(1)  # type: ignore[union-attr]
    assert f"publish:  {exhibit.root}/dev/{device_id}/tele/{device_id}/SENSOR" in added.stdout
    assert f"FullTopic {exhibit.root}/dev/{device_id}/%prefix%/%topic%/" in added.stdout
    report = exhibit.device(device_id)
    assert report["topics"]["native"] == [f"{exhibit.root}/dev/{device_id}/tele/{device_id}/SENSOR"]
    # the hints name the topic to publish on and the device's own metrics
    assert any(f"publishes on {exhibit.root}/dev/{device_id}/tele/{device_id}/SENSOR" in h
               for h in report["hints"]), report["hints"]
    assert any("This device stores power_w" in h for h in report["hints"]), report["hints"]


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"format": "lorawan"}, "format", "is not a format"),
    ({"format": "custom"}, "mapping", "the custom format needs a mapping"),
    ({"format": "json", "mapping": {"metrics": [{"metric": "water_level_cm",
                                                 "pointer": "/d"}]}},
     "mapping", "only it takes one"),
    ({"format": "custom", "mapping": {"metrics": [{"metric": "water_level_cm", "pointer": "/d",
                                                   "unit": "furlong"}]}},
     "mapping", "does not come in 'furlong'"),
    ({"format": "custom", "mapping": {"metrics": [{"metric": "river_level_cm",
                                                   "pointer": "/d"}]}},
     "mapping.metrics.0", "not among the device's metrics"),
])
def test_a_registration_with_a_wrong_format_names_the_field(
        exhibit: Exhibit, changes: dict[str, Any], field: str, words: str) -> None:
    body: dict[str, Any] = {"name": "Gian C2", "domain": "flood",
                            "location": {"lat": 10.7769, "lon": 106.7009},
                            "metrics": ["water_level_cm"], **changes}
    with exhibit.http() as http:
        response = http.post("/api/v1/devices", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text and words in response.text, response.text


def test_the_zigbee2mqtt_answer_is_configuration_yaml_with_a_qr_code(exhibit: Exhibit) -> None:
    answer = exhibit.register(format="zigbee2mqtt", domain="weather",
                              metrics=["temperature_c", "humidity_pct"])
    settings = answer["settings"]
    device_id, creds = answer["device"]["device_id"], answer["credentials"]
    assert settings["kind"] == "yaml"
    assert f'base_topic: "{exhibit.root}/dev/{device_id}"' in settings["text"]
    assert f'user: "{creds["username"]}"' in settings["text"]
    assert f'password: "{creds["password"]}"' in settings["text"]
    assert settings["qr_svg"].startswith("<svg") and "<path" in settings["qr_svg"]
    assert answer["device"]["format"] == "zigbee2mqtt"


def test_a_format_change_applies_to_the_next_message(exhibit: Exhibit) -> None:
    answer = exhibit.register(domain="weather", metrics=["temperature_c", "humidity_pct"])
    device_id = answer["device"]["device_id"]
    prefix = f"{exhibit.root}/dev/{device_id}"
    with exhibit.http() as http:
        refused = http.put(f"/api/v1/devices/{device_id}/format", json={"format": "lorawan"})
        assert refused.status_code == 422 and "is not a format" in refused.text
        city = http.put("/api/v1/devices/flood-thao-dien/format", json={"format": "json"})
        assert city.status_code == 409
        changed = http.put(f"/api/v1/devices/{device_id}/format",
                           json={"format": "zigbee2mqtt"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["format"] == "zigbee2mqtt"
    wait_for(lambda: (d := exhibit.ingest.registry.get(device_id)) is not None
             and d.format == "zigbee2mqtt", what="ingest to take the new format")
    with exhibit.connect(answer) as device:
        assert device.publish(f"{prefix}/terrace/aqara", b'{"temperature": 31.5, "humidity": 60,'
                                                        b' "linkquality": 99}') == 0
    exhibit.wait_latest(device_id, "temperature_c", 31.5)
    assert exhibit.latest(device_id)["humidity_pct"] == 60.0


def test_the_command_line_registers_a_custom_mapping_from_a_file(exhibit: Exhibit,
                                                                 tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_bytes(orjson.dumps({
        "topic": "data", "metrics": [{"metric": "temperature_c", "pointer": "/env/t_f",
                                      "unit": "°F"}]}))
    added = run_cli(exhibit, "--json", "add", "--name", "Trạm đo tự chế", "--domain",
                    "weather", "--lat", "10.78", "--lon", "106.70", "--metric", "temperature_c",
                    "--format", "custom", "--mapping", str(mapping))
    assert added.returncode == 0, added.stderr
    answer = orjson.loads(added.stdout)
    device_id = answer["device"]["device_id"]
    assert answer["settings"]["publishes_on"] == [f"{exhibit.root}/dev/{device_id}/data"]
    with exhibit.connect(answer) as device:
        assert device.publish(f"{exhibit.root}/dev/{device_id}/data",
                              b'{"env": {"t_f": 86.0}}') == 0
    exhibit.wait_latest(device_id, "temperature_c", 30.0)
    missing = run_cli(exhibit, "add", "--name", "x", "--domain", "weather", "--lat", "10.78",
                      "--lon", "106.70", "--metric", "temperature_c", "--format", "custom",
                      "--mapping", str(tmp_path / "nowhere.json"))
    assert missing.returncode == 2 and "nowhere.json" in missing.stderr
