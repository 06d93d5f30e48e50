"""The two clocks against a real Mosquitto, ingest and InfluxDB: a king-tide storm played at
x600. On the exhibit clock a Grafana panel's own time filter (``time >= now() - 1h``) sees the
storm while it runs and nothing lies in the future; on the engineers' clock the readings
carry the story's time, hours ahead of the wall clock, as a replayable run must."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from simulators.runner import run
from smartcity.control import (
    Clock,
    ResetClock,
    SetSpeed,
    SimulatorState,
    StartScenario,
    command_of,
    command_topic,
    decode_state,
    encode_command,
    state_topic,
)
from smartcity.settings import InfluxSettings, MqttSettings, SimulatorSettings
from storage.influx import InfluxClient
from tests.ingest_helpers import ingest_settings, running_ingest
from tests.mqtt import collecting, publish, wait_for

pytestmark = pytest.mark.servers

HOUR = 3_600_000
SPEED = 600  # fourteen hours of storm in 84 s
# The flood board's water-level panel, as Grafana sends it for "Last 1 hour": $timeFilter is
# `time >= now() - 1h` (no upper bound when the range ends at now), and GROUP BY time() makes
# InfluxDB stop at now().
GRAFANA_LAST_HOUR = ('SELECT mean("water_level_cm") FROM "flood" WHERE time >= now() - 1h '
                     'AND "source" != \'live\' GROUP BY time(10s), "device_id" fill(none)')
IN_THE_FUTURE = 'SELECT count("water_level_cm") FROM "flood" WHERE time > now() + 1m'


def _now_ms() -> int:
    return int(time.time() * 1000)


class States:
    def __init__(self, got: list[object]) -> None:
        self.got = got

    def last(self) -> SimulatorState | None:
        for message in reversed(self.got):
            return decode_state(message.payload)  # type: ignore[attr-defined]
        return None


@contextmanager
def simulating(mqtt: MqttSettings, clock: Clock | None) -> Iterator[States]:
    stop = threading.Event()
    settings = SimulatorSettings(mqtt=mqtt, interval_s=60, seed=11)
    thread = threading.Thread(target=run, kwargs={"settings": settings, "stop": stop,
                                                  "clock": clock})
    with collecting(mqtt, str(state_topic(mqtt.root))) as got:
        thread.start()
        try:
            states = States(got)  # type: ignore[arg-type]
            wait_for(lambda: (s := states.last()) is not None and s.running
                     and s.sim_time is not None, timeout=60, what="the simulator")
            yield states
        finally:
            stop.set()
            thread.join(30)


def command(mqtt: MqttSettings, body: object) -> None:
    publish(mqtt, str(command_topic(command_of(body), mqtt.root)),  # type: ignore[arg-type]
            encode_command(body))  # type: ignore[arg-type]


def last_hour_max(influx: InfluxClient) -> float:
    """The deepest water the panel draws."""
    return max((float(v) for s in influx.query(GRAFANA_LAST_HOUR) for _, v in s.values
                if v is not None), default=0.0)


def future_points(influx: InfluxClient) -> int:
    series = influx.query(IN_THE_FUTURE)
    return int(series[0].values[0][1]) if series else 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("clock", [Clock.EXHIBIT, Clock.ENGINEER])
def test_a_storm_at_x600_and_grafanas_last_hour(
        clock: Clock, mqtt_settings: MqttSettings, influx_settings: InfluxSettings,
        influx: InfluxClient, tmp_path: Path) -> None:
    with running_ingest(ingest_settings(mqtt_settings, influx_settings, tmp_path)), \
            simulating(mqtt_settings, clock) as states:
        command(mqtt_settings, StartScenario(name="king-tide-storm", clock=clock))
        command(mqtt_settings, SetSpeed(speed=SPEED))
        # the storm's water is in the streets 6-8 h into the story: 36-48 s at x600
        wait_for(lambda: (s := states.last()) is not None and s.scenario_started is not None
                 and s.sim_time is not None and s.speed == SPEED
                 and s.sim_time >= s.scenario_started + 7 * HOUR, timeout=150,
                 interval=0.5, what="the story to reach the flooded streets")
        during = states.last()
        assert during is not None and during.scenario == "king-tide-storm"
        assert during.clock is clock
        ahead_ms = (during.sim_time or 0) - _now_ms()
        wait_for(lambda: influx.query('SELECT count("water_level_cm") FROM "flood"'),
                 timeout=30, what="readings in InfluxDB")
        time.sleep(1)  # the batch in flight
        seen, future = last_hour_max(influx), future_points(influx)

        if clock is Clock.EXHIBIT:
            # the story runs hours ahead, the readings carry the wall clock: Grafana's last
            # hour holds the flooded streets, and nothing is stamped in the future
            assert ahead_ms > 5 * HOUR
            assert seen > 20, orjson.dumps({"max_last_hour": seen})
            assert future == 0
            # a reset brings the story back to now, at speed 1
            command(mqtt_settings, ResetClock())
            wait_for(lambda: (s := states.last()) is not None and s.speed == 1
                     and s.scenario is None and s.sim_time is not None
                     and abs(s.sim_time - _now_ms()) < 60_000, timeout=30,
                     what="the clock back at now")
        else:
            # the readings carry the story's time, hours in the future of the wall clock: the
            # panel's last hour holds none of the flooded streets
            assert ahead_ms > 5 * HOUR
            assert future > 0
            assert seen < 20
