"""The api's scenario endpoints: the catalogue, the simulator's state, and commands with the
admin token, through a real Mosquitto to a running simulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from launcher.servers import free_port
from simulators.runner import SEEDED_START_MS, run
from smartcity.city import load_city
from smartcity.models import parse_ts
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings, SimulatorSettings
from tests.mqtt import collecting, wait_for

pytestmark = pytest.mark.servers

TOKEN = "a-long-admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
REGISTRY = load_city().registry()
NO_INFLUX = InfluxSettings(url=f"http://127.0.0.1:{free_port()}")  # these endpoints need none


def app_client(mqtt: MqttSettings, token: str | None = TOKEN) -> TestClient:
    return TestClient(create_app(ApiSettings(influx=NO_INFLUX, mqtt=mqtt, admin_token=token),
                                 REGISTRY, warning_levels={}))


@pytest.fixture
def client(mqtt_settings: MqttSettings) -> Iterator[TestClient]:
    with app_client(mqtt_settings) as c:
        wait_for(lambda: c.get("/readyz").json()["checks"]["mqtt"]["ok"], what="the broker")
        yield c


@pytest.fixture
def simulator(mqtt_settings: MqttSettings) -> Iterator[None]:
    stop = threading.Event()
    settings = SimulatorSettings(mqtt=mqtt_settings, interval_s=10, seed=3)
    thread = threading.Thread(target=run, kwargs={"settings": settings, "stop": stop,
                                                  "start": SEEDED_START_MS, "speed": 60})
    thread.start()
    with collecting(mqtt_settings, f"{mqtt_settings.root}/control/state") as got:
        wait_for(lambda: got, what="the simulator's state")
    yield
    stop.set()
    thread.join(15)


def test_the_catalogue_lists_every_built_in_scenario(client: TestClient) -> None:
    body = client.get("/api/v1/scenarios").json()
    names = [s["name"] for s in body["scenarios"]]
    assert {"normal-day", "rush-hour", "king-tide-storm", "heatwave", "sensor-faults"} <= \
        set(names)
    storm = next(s for s in body["scenarios"] if s["name"] == "king-tide-storm")
    assert "king tide" in storm["description"] and storm["duration_s"] == 14 * 3600
    assert body["simulation"] == client.get("/api/v1/simulation").json()
    assert body["simulation"]["running"] is False


@pytest.mark.parametrize(("headers", "detail"), [
    ({}, "missing or wrong admin token"),
    ({"Authorization": "Bearer not-the-token"}, "missing or wrong admin token"),
    ({"Authorization": f"Basic {TOKEN}"}, "missing or wrong admin token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, "missing or wrong admin token"),
])
def test_commands_need_the_admin_token(client: TestClient, headers: dict[str, str],
                                       detail: str) -> None:
    for path in ("/api/v1/scenarios/rush-hour/start", "/api/v1/scenarios/stop",
                 "/api/v1/simulation/pause", "/api/v1/simulation/resume"):
        response = client.post(path, headers=headers)
        assert response.status_code == 401, path
        assert detail in response.json()["detail"]
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/api/v1/simulation/speed", json={"speed": 5},
                       headers=headers).status_code == 401


def test_without_a_configured_token_commands_are_disabled(mqtt_settings: MqttSettings) -> None:
    with app_client(mqtt_settings, token=None) as c:
        response = c.post("/api/v1/scenarios/stop", headers=ADMIN)
    assert response.status_code == 503
    assert "SMARTCITY_ADMIN_TOKEN" in response.json()["detail"]


def test_bad_names_and_speeds(client: TestClient) -> None:
    assert client.post("/api/v1/scenarios/monsoon/start", headers=ADMIN).status_code == 404
    bad = client.post("/api/v1/scenarios/King%20Tide/start", headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "name"]
    for speed in (0, -5, 10**9, "fast"):
        assert client.post("/api/v1/simulation/speed", json={"speed": speed},
                           headers=ADMIN).status_code == 422


def test_commands_without_a_running_simulator_are_refused(client: TestClient) -> None:
    response = client.post("/api/v1/scenarios/rush-hour/start", headers=ADMIN)
    assert response.status_code == 409
    assert "no simulator is running" in response.json()["detail"]


def test_commands_without_a_broker_are_503(root: str) -> None:
    with app_client(MqttSettings(url=f"mqtt://127.0.0.1:{free_port()}", root=root)) as c:
        response = c.post("/api/v1/scenarios/rush-hour/start", headers=ADMIN)
    assert response.status_code == 503 and "MQTT broker" in response.json()["detail"]


@pytest.mark.usefixtures("simulator")
def test_the_exhibit_floor_runs_the_storm_through_the_api(client: TestClient,
                                                         mqtt_settings: MqttSettings) -> None:
    def simulation() -> dict[str, Any]:
        body: dict[str, Any] = client.get("/api/v1/simulation").json()
        return body

    def simulation_where(condition: Callable[[dict[str, Any]], object],
                         what: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            state = simulation()
            return state if condition(state) else None

        state = wait_for(found, what=what)
        assert state is not None
        return state

    running = simulation_where(lambda s: s["running"], "the simulator")
    assert running["speed"] == 60 and running["seed"] == 3 and running["devices"] == 16
    assert running["start"] == "2025-07-13T23:00:00.000Z"

    response = client.post("/api/v1/scenarios/king-tide-storm/start", headers=ADMIN)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["command"] == "scenario/start"
    assert accepted["topic"] == f"{mqtt_settings.root}/control/scenario/start"
    # started from the exhibit floor: the exhibit clock, readings stamped with the wall clock
    assert accepted["payload"] == {"name": "king-tide-storm", "clock": "exhibit",
                                   "id": accepted["id"]}
    state = simulation_where(lambda s: s["last_command"] and
                             s["last_command"]["id"] == accepted["id"],
                             "the simulator to apply the command")
    assert state["scenario"] == "king-tide-storm"
    assert state["clock"] == "exhibit"
    assert state["last_command"]["ok"] is True
    assert parse_ts(state["scenario_ends"]) - parse_ts(state["scenario_started"]) == \
        14 * 3_600_000
    assert parse_ts(state["sim_time_now"]) >= parse_ts(state["sim_time"])

    assert client.post("/api/v1/simulation/speed", json={"speed": 120},
                       headers=ADMIN).status_code == 202
    wait_for(lambda: simulation()["speed"] == 120, what="the new speed")
    assert client.post("/api/v1/simulation/pause", headers=ADMIN).status_code == 202
    paused = simulation_where(lambda s: s["paused"], "the pause")
    assert paused["sim_time_now"] == paused["sim_time"]
    assert client.post("/api/v1/simulation/resume", headers=ADMIN).status_code == 202
    wait_for(lambda: not simulation()["paused"], what="the resume")
    assert client.post("/api/v1/scenarios/stop", headers=ADMIN).status_code == 202
    simulation_where(lambda s: s["scenario"] is None and s["sim_time_now"] and
                     s["speed"] == 1, "the scenario to stop")
    listed = client.get("/api/v1/scenarios").json()["simulation"]
    assert listed["running"] is True and listed["scenario"] is None
    # The simulator began in 2025 (a seeded start); stopping on the exhibit clock brought
    # the city back to now, at speed 1.
    assert listed["speed"] == 1
    assert abs(parse_ts(listed["sim_time_now"]) - int(time.time() * 1000)) < 60_000

    # The reset: from a fast clock back to now.
    assert client.post("/api/v1/simulation/speed", json={"speed": 600},
                       headers=ADMIN).status_code == 202
    wait_for(lambda: simulation()["speed"] == 600, what="the new speed")
    reset = client.post("/api/v1/simulation/reset", headers=ADMIN)
    assert reset.status_code == 202 and reset.json()["topic"].endswith("/control/clock/reset")
    back = simulation_where(lambda s: s["last_command"] and s["sim_time_now"] and
                            s["last_command"]["id"] == reset.json()["id"], "the reset")
    assert back["speed"] == 1 and back["scenario"] is None
    assert abs(parse_ts(back["sim_time_now"]) - int(time.time() * 1000)) < 60_000
