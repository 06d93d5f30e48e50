"""Replaying the built-in recordings from the api, through the real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.main import create_app
from api.routes.replays import builtin_recordings
from simulators.scenarios import builtin_names
from smartcity.codec import decode
from smartcity.models import Source
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings
from tests.mqtt import collecting, wait_for

pytestmark = pytest.mark.servers

TOKEN = "a-token-for-tests-only"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(influx_settings: InfluxSettings, mqtt_settings: MqttSettings) -> Iterator[TestClient]:
    settings = ApiSettings(influx=influx_settings, mqtt=mqtt_settings,
                           admin_token=SecretStr(TOKEN))
    with TestClient(create_app(settings)) as client:
        yield client


def test_every_builtin_scenario_has_a_recording(api: TestClient) -> None:
    assert sorted(builtin_recordings()) == sorted(builtin_names())
    listed = api.get("/api/v1/replays").json()
    assert listed["replay"] is None
    for recording in listed["recordings"]:
        assert recording["messages"] > 1000 and 20 < recording["span_s"] < 40, recording


def test_a_replay_plays_onto_this_citys_root_as_of_now_and_can_be_stopped(
        api: TestClient, mqtt_settings: MqttSettings) -> None:
    root = mqtt_settings.root
    assert api.post("/api/v1/replays/king-tide-storm/start").status_code == 401
    with collecting(mqtt_settings, f"{root}/flood/+/telemetry") as got:
        began_ms = time.time() * 1000
        started = api.post("/api/v1/replays/king-tide-storm/start", params={"speed": 4},
                           headers=ADMIN)
        assert started.status_code == 202, started.text
        assert started.json()["name"] == "king-tide-storm"
        wait_for(lambda: len(got) >= 20, what="replayed flood readings on this root")
        again = api.post("/api/v1/replays/rush-hour/start", headers=ADMIN)
        assert again.status_code == 409 and "king-tide-storm" in again.text
        stopped = api.post("/api/v1/replays/stop", headers=ADMIN)
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
        assert api.get("/api/v1/replays").json()["replay"]["state"] == "stopped"

    readings = [decode(m.topic, m.payload, root) for m in got[:20]]
    assert all(r.source is Source.REPLAYED for r in readings)
    assert all(orjson.loads(m.payload)["source"] == "replayed" for m in got[:20])
    # Rebased: the recording's first reading (simulated September 2025) lands at the moment
    # the replay started, and the story moves forward from there in its own (compressed) time.
    assert abs(readings[0].ts_ms - began_ms) < 10_000
    assert [r.ts_ms for r in readings] == sorted(r.ts_ms for r in readings)
    assert api.post("/api/v1/replays/stop", headers=ADMIN).status_code == 409


@pytest.mark.parametrize(("url", "status"), [
    ("/api/v1/replays/no-such-thing/start", 404),
    ("/api/v1/replays/BAD%20NAME/start", 404),
    ("/api/v1/replays/rush-hour/start?speed=0", 422),
])
def test_bad_replay_requests(api: TestClient, url: str, status: int) -> None:
    assert api.post(url, headers=ADMIN).status_code == status
