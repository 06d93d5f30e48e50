"""The attract loop: idle controls make the exhibit tell its story by itself; an operator's
command hands the city back. The plan on a clock the test turns, then the real thing: the
api and a simulator on a real Mosquitto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.attract import AttractLoop, Phase
from api.main import create_app
from simulators.runner import run
from smartcity.control import Clock, ResetClock, SetSpeed, StartScenario
from smartcity.settings import ApiSettings, MqttSettings, SimulatorSettings
from tests.mqtt import collecting, wait_for
from tests.test_scenarios_api import ADMIN, NO_INFLUX, REGISTRY, TOKEN


class Turned:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_plan_cycles_day_storm_and_rest_until_an_operator_touches() -> None:
    clock = Turned()
    loop = AttractLoop(idle_s=60, plan=(Phase("normal-day", 1440, 30),
                                        Phase("king-tide-storm", 600, 90)),
                       rest_s=20, clock=clock)
    assert loop.due() == [] and not loop.active
    clock.now = 59
    assert loop.due() == []
    clock.now = 60
    start, speed = loop.due()
    assert isinstance(start, StartScenario) and start.name == "normal-day"
    assert start.clock is Clock.EXHIBIT and start.id == "attract-1"
    assert isinstance(speed, SetSpeed) and speed.speed == 1440
    clock.now = 89
    assert loop.due() == []
    clock.now = 90
    storm, _ = loop.due()
    assert isinstance(storm, StartScenario) and storm.name == "king-tide-storm"
    clock.now = 180
    reset, = loop.due()
    assert isinstance(reset, ResetClock)  # the recovery told, back to now for a breather
    clock.now = 199
    assert loop.due() == []
    clock.now = 200
    again, _ = loop.due()
    assert isinstance(again, StartScenario) and again.name == "normal-day"
    loop.touch()
    assert not loop.active and loop.due() == []
    clock.now = 259
    assert loop.due() == []
    clock.now = 260
    assert loop.due()[0] == StartScenario(name="normal-day", clock=Clock.EXHIBIT,
                                          id="attract-8")
    assert AttractLoop(idle_s=0, clock=clock).due() == []  # switched off


@pytest.fixture
def simulator(mqtt_settings: MqttSettings) -> Iterator[None]:
    stop = threading.Event()
    settings = SimulatorSettings(mqtt=mqtt_settings, interval_s=10)
    thread = threading.Thread(target=run, kwargs={"settings": settings, "stop": stop})
    thread.start()
    with collecting(mqtt_settings, f"{mqtt_settings.root}/control/state") as got:
        wait_for(lambda: got, what="the simulator's state")
    yield
    stop.set()
    thread.join(15)


@pytest.mark.servers
@pytest.mark.usefixtures("simulator")
def test_idle_controls_start_the_story_and_an_operator_takes_over(
        mqtt_settings: MqttSettings) -> None:
    settings = ApiSettings(influx=NO_INFLUX, mqtt=mqtt_settings, admin_token=TOKEN,
                           attract_idle_s=1)
    with TestClient(create_app(settings, REGISTRY, warning_levels={})) as client:
        def simulation() -> dict[str, object]:
            body: dict[str, object] = client.get("/api/v1/simulation").json()
            return body

        told = wait_for(lambda: (s := simulation())["scenario"] == "normal-day"
                        and s["speed"] == 1440 and s, timeout=30, what="the attract loop")
        assert told["clock"] == "exhibit"
        assert str(told["last_command"]["id"]).startswith("attract-")  # type: ignore[index]
        # an operator's command: the loop gives way and sends nothing more
        assert client.post("/api/v1/simulation/speed", json={"speed": 5},
                           headers=ADMIN).status_code == 202
        wait_for(lambda: simulation()["speed"] == 5, what="the operator's speed")
        time.sleep(0.8)  # under idle_s: still the operator's
        assert simulation()["speed"] == 5
