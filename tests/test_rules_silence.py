"""An alert whose sensor went silent says so, and since when: on MQTT (the rules service
republishes it), in InfluxDB and so in the api; and stops saying so when the sensor speaks
again. The pure part first, then against a real Mosquitto and InfluxDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from rules.silence import Silence
from smartcity.alerts import AlertLevel, AlertState
from smartcity.models import format_ts
from smartcity.settings import ApiSettings, MqttSettings
from storage import alerts
from storage.influx import InfluxClient
from tests.mqtt import collecting, wait_for
from tests.test_rules_engine import engine, run
from tests.test_rules_service import (
    BASE,
    MIN,
    alerts_in,
    retained,
    rules_settings,
    running_rules,
    send,
)


def test_silence_is_told_once_and_lifted_when_heard_again() -> None:
    (_, alert), = run(engine(), [0, 25, 25, 25])
    silence = Silence(after_ms=60_000)
    assert silence.check([alert], 1_000_000) == []  # never heard: nothing to say
    silence.heard(alert.device_id, wall_ms=1_000_000, ts_ms=123_000)
    assert silence.check([alert], 1_059_999) == []
    told, = silence.check([alert], 1_060_000)
    assert told.silent_since == format_ts(123_000) and told.alert_id == alert.alert_id
    assert told.value == alert.value and told.state is alert.state
    assert silence.check([alert], 1_200_000) == []  # once
    assert silence.resumed([alert], {"another-device"}, set()) == []
    back, = silence.resumed([alert], {alert.device_id}, set())
    assert back.silent_since is None
    silence.heard(alert.device_id, 1_300_000, 200_000)
    assert silence.check([alert], 1_300_001) == []
    # the reading that brings it back changes the alert itself: no extra event
    silence.check([alert], 1_400_000)
    assert silence.resumed([alert], {alert.device_id}, {alert.alert_id}) == []


@pytest.mark.servers
def test_the_rules_service_says_a_sensor_went_silent_on_mqtt_and_in_the_api(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    settings = rules_settings(mqtt_settings, influx.settings, tmp_path, silent_after_s=1.0)
    root = mqtt_settings.root
    with collecting(mqtt_settings, f"{root}/alerts/#") as got, running_rules(settings), \
            TestClient(create_app(ApiSettings(influx=influx.settings,
                                              mqtt=mqtt_settings))) as api:
        send(mqtt_settings, [0, 45, 45, 45])  # danger from minute 3
        wait_for(lambda: any(a.level is AlertLevel.DANGER for a in alerts_in(got)),
                 what="the alert")
        # the sensor says nothing more: within a few heartbeats the alert says so
        silent = wait_for(lambda: next((a for a in alerts_in(got) if a.silent_since), None),
                          timeout=20, what="the silent alert")
        assert silent.silent_since == format_ts(BASE + 3 * MIN)
        assert silent.state is AlertState.RAISED and silent.value == 45
        # a screen connecting now is handed the silent alert
        assert any(a.silent_since for a in alerts_in(retained(mqtt_settings)))

        def listed() -> list[dict[str, object]]:
            body: list[dict[str, object]] = api.get("/api/v1/alerts").json()
            return body

        wait_for(lambda: listed() and listed()[0].get("silent_since"), timeout=20,
                 what="the api to say so")
        assert listed()[0]["silent_since"] == format_ts(BASE + 3 * MIN)

        # heard again, at the same level: republished without silent_since
        count = len(got)
        send(mqtt_settings, [46], first_minute=4)
        wait_for(lambda: any(not a.silent_since for a in alerts_in(got[count:])),
                 timeout=20, what="the alert heard again")
        wait_for(lambda: not listed()[0].get("silent_since"), timeout=20,
                 what="the api to say it is heard again")
        events = alerts.shape_events(influx.query(alerts.events_query(BASE - MIN)))
        assert events and all(e.alert_id == events[0].alert_id for e in events)


def test_a_story_played_compressed_compresses_the_rules_hold_times() -> None:
    """On the exhibit clock a story at x60 stamps a minute of its readings a second apart:
    the flood rule's two minutes are two minutes of the story, two seconds of stamps."""
    from smartcity.models import Source
    from tests.test_rules_engine import reading

    def judged(speed: float, source: Source) -> list[str]:
        e = engine()
        e.story_speed = speed
        return [ev.level.value for i in range(5)
                for ev in e.evaluate(reading(25, i / 60, source=source))]

    assert judged(60, Source.SIMULATED) == ["warning"]  # after 2 s of stamps = 2 story min
    assert judged(1, Source.SIMULATED) == []  # 4 s is not two minutes
    assert judged(60, Source.LIVE) == []  # an exhibitor's device lives in real time
