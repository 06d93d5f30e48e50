"""The example clients of docs/exhibitors.md run: the Python one as a process, the ESP32's
MicroPython device code under CPython with the real umqtt.simple (tests/micropython/README.md),
both against the real secured broker with credentials the exhibit issued."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from launcher.servers import Influxd
from tests.exhibit import Exhibit, running_exhibit
from tests.mqtt import wait_for

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]
PYTHON_EXAMPLE = REPO / "examples/python/device.py"
MICROPYTHON = REPO / "examples/micropython"


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Exhibit]:
    with running_exhibit(tmp_path_factory.mktemp("examples"), influxd, root="city") as running:
        yield running


def python_example(answer: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    creds = answer["credentials"]
    device = answer["device"]
    return subprocess.run(
        [sys.executable, str(PYTHON_EXAMPLE), "--broker", creds["broker"],
         "--username", creds["username"], "--password", creds["password"],
         "--domain", device["domain"], "--device-id", device["device_id"],
         "--interval", "0.2", *args],
        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("fmt", ["json", "senml", "single"])
def test_the_python_example_gets_its_readings_onto_the_api(exhibit: Exhibit, fmt: str) -> None:
    answer = exhibit.register(metrics=["water_level_cm", "battery_pct"])
    device_id = answer["device"]["device_id"]
    result = python_example(answer, "--metric", "water_level_cm=12.5", "--metric",
                            "battery_pct=90", "--count", "1", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert "REJECTED" not in result.stdout
    exhibit.wait_latest(device_id, "water_level_cm", 12.5)
    exhibit.wait_latest(device_id, "battery_pct", 90.0)
    with exhibit.http(token="") as http:
        sensor = http.get(f"/api/v1/sensors/{device_id}").json()
    assert sensor["status"] == "offline"  # it said goodbye on its status topic


def test_the_python_example_prints_why_a_reading_was_rejected(exhibit: Exhibit) -> None:
    answer = exhibit.register(metrics=["water_level_cm"])
    result = python_example(answer, "--metric", "river_level_cm=3", "--count", "1")
    assert result.returncode == 0, result.stderr
    assert "REJECTED (undeclared metric)" in result.stdout
    assert "river_level_cm" in result.stdout


def test_the_python_example_reports_refused_credentials(exhibit: Exhibit) -> None:
    answer = exhibit.register()
    answer["credentials"]["password"] = "not-the-password"
    result = python_example(answer, "--metric", "water_level_cm=1", "--count", "1")
    assert result.returncode == 1
    assert "refused" in result.stderr


@pytest.mark.parametrize("name", ["main.py", "smartcity_device.py", "config.py"])
def test_the_micropython_files_are_valid_python(name: str) -> None:
    ast.parse((MICROPYTHON / name).read_text(encoding="utf-8"), filename=name)


@pytest.fixture
def micropython_device(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The ESP32 example's device module, imported the way the board imports it: umqtt.simple
    and MicroPython's module names from tests/micropython."""
    monkeypatch.syspath_prepend(str(REPO / "tests/micropython"))
    monkeypatch.syspath_prepend(str(MICROPYTHON))
    for name in ("smartcity_device", "umqtt", "umqtt.simple", "usocket", "ustruct",
                 "ubinascii"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import smartcity_device

    return smartcity_device


def test_the_micropython_device_code_sends_readings_and_hears_rejections(
        exhibit: Exhibit, micropython_device: ModuleType) -> None:
    answer = exhibit.register(metrics=["water_level_cm"])
    creds, device_id = answer["credentials"], answer["device"]["device_id"]
    config = SimpleNamespace(BROKER_HOST="127.0.0.1", BROKER_PORT=exhibit.broker.port,
                             USERNAME=creds["username"], PASSWORD=creds["password"],
                             ROOT=exhibit.root, DOMAIN="flood", DEVICE_ID=device_id)
    device = micropython_device.Device(config, b"esp32-test")
    device.connect()
    try:
        device.send({"water_level_cm": 33.5})
        exhibit.wait_latest(device_id, "water_level_cm", 33.5)
        device.send({"river_level_cm": 1.0})  # not declared

        def heard() -> list[dict[str, Any]]:
            device.client.check_msg()
            return list(device.rejections)

        rejections = wait_for(heard, what="the rejection on the device", timeout=20)
    finally:
        device.close()
    assert rejections[0]["reason"] == "undeclared metric"
    assert micropython_device.unix_ms() == pytest.approx(time.time() * 1000, abs=2000)
    with exhibit.http(token="") as http:
        sensor = http.get(f"/api/v1/sensors/{device_id}").json()
    assert sensor["status"] == "offline"
