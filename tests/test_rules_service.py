"""The rules service on a real Mosquitto and a real InfluxDB: alerts published retained and
stored, cleared from the topic, kept across restarts and crashes, raised for readings that
arrived while it was down, and raised by an exhibitor's own device too.

Readings carry event times a minute apart, so a 10-minute episode takes milliseconds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from launcher.servers import free_port
from rules.service import RulesService
from rules.settings import RulesSettings
from smartcity.alerts import Alert, AlertLevel, AlertState, decode_alert
from smartcity.city import load_city
from smartcity.formats.profile import CustomMapping
from smartcity.models import Source, format_ts
from smartcity.registry import DeviceInfo, Registry
from smartcity.settings import InfluxSettings, MqttSettings
from smartcity.topics import Domain
from storage import alerts
from storage.influx import InfluxClient
from tests.mqtt import Received, collecting, connect, wait_for

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]
MIN = 60_000
BASE = (int(time.time() * 1000) // MIN - 180) * MIN  # three hours ago, on the minute
FLOOD = "flood-nguyen-huu-canh"
R, U, C = AlertState.RAISED, AlertState.UPDATED, AlertState.CLEARED
W, D = AlertLevel.WARNING, AlertLevel.DANGER

# raised (warning) at 3, danger at 5, back to warning at 16, cleared at 27
STORM = [0, 25, 25, 25, 45, 45] + [30] * 11 + [5] * 11


def rules_settings(mqtt: MqttSettings, influx: InfluxSettings, data_dir: Path,
                   **overrides: object) -> RulesSettings:
    values: dict[str, object] = dict(mqtt=mqtt, influx=influx, data_dir=data_dir,
                                     client_id=f"rules-{mqtt.root}", save_interval_s=0.05,
                                     heartbeat_interval_s=0.2)
    values.update(overrides)
    return RulesSettings(**values)  # type: ignore[arg-type]


@contextmanager
def running_rules(settings: RulesSettings, **kw: object) -> Iterator[RulesService]:
    service = RulesService(settings, **kw)  # type: ignore[arg-type]
    service.start()
    try:
        if not service.subscribed.wait(10):
            raise AssertionError("rules did not subscribe")
        yield service
    finally:
        service.stop()


def send(mqtt: MqttSettings, values: Sequence[float], first_minute: int = 0,
         device: str = FLOOD, source: str | None = "simulated") -> None:
    """One reading a minute of event time, published QoS 1 and confirmed by the broker."""
    client = connect(mqtt)
    try:
        for i, v in enumerate(values):
            minute = first_minute + i
            body: dict[str, object] = {"ts": BASE + minute * MIN, "seq": minute,
                                       "water_level_cm": v}
            if source:
                body["source"] = source
            client.publish(f"{mqtt.root}/flood/{device}/telemetry", orjson.dumps(body),
                           qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def alerts_in(got: list[Received]) -> list[Alert]:
    return [a for m in list(got) if (a := decode_alert(m.payload)) is not None]


def states(got: list[Received]) -> list[tuple[AlertState, AlertLevel]]:
    return [(a.state, a.level) for a in alerts_in(got)]


def retained(mqtt: MqttSettings, settle: float = 0.5) -> list[Received]:
    """What a screen connecting now would be handed: the retained alert messages."""
    with collecting(mqtt, f"{mqtt.root}/alerts/#") as got:
        time.sleep(settle)
    return list(got)


def stored(influx: InfluxClient) -> list[Alert]:
    return alerts.shape_events(influx.query(alerts.events_query(BASE - MIN)))


def test_a_storm_raises_escalates_and_clears_one_alert_end_to_end(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    settings = rules_settings(mqtt_settings, influx.settings, tmp_path)
    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got, \
            running_rules(settings) as rules:
        send(mqtt_settings, STORM[:6])
        wait_for(lambda: states(got) == [(R, W), (U, D)], what="raised, then danger")

        # A screen connecting now gets the alert as it stands, retained.
        (now,) = retained(mqtt_settings)
        alert = decode_alert(now.payload)
        assert alert is not None and now.retain
        assert now.topic == f"{mqtt_settings.root}/alerts/flood/{alert.alert_id}"
        assert (alert.state, alert.level, alert.value) == (U, D, 45)
        assert alert.raised_at == format_ts(BASE + 3 * MIN)
        assert alert.updated_at == format_ts(BASE + 5 * MIN)
        assert alert.title_vi == "Ngập nặng tại Điểm ngập Nguyễn Hữu Cảnh: 45 cm"
        assert rules.active() == [alert]

        # ... and the api, from InfluxDB, lists it as active.
        wait_for(lambda: len(stored(influx)) == 2, what="two alert points")
        latest = alerts.shape_events(influx.query(alerts.latest_events_query(BASE + 6 * MIN)))
        assert alerts.for_screen(latest) == [alert]

        send(mqtt_settings, STORM[6:], first_minute=6)
        wait_for(lambda: len(got) == 5, what="the cleared event and the emptied topic")

    assert states(got) == [(R, W), (U, D), (U, W), (C, W)]
    events = alerts_in(got)
    assert {a.alert_id for a in events} == {alert.alert_id}
    assert [a.updated_at for a in events] == [format_ts(BASE + m * MIN) for m in (3, 5, 16, 27)]
    assert events[-1].cleared_at == format_ts(BASE + 27 * MIN)
    assert events[-1].title_en == "Flooding over at Nguyen Huu Canh flood point"
    assert got[-1].topic == got[-2].topic and got[-1].payload == b""  # retained copy removed
    assert retained(mqtt_settings) == []

    wait_for(lambda: len(stored(influx)) == 4, what="four alert points")
    assert sorted(stored(influx), key=lambda a: a.updated_at) == events
    one = alerts.events_query(BASE, domain=Domain.FLOOD, alert_id=alert.alert_id, limit=2)
    assert [a.state for a in alerts.shape_events(influx.query(one))] == [C, U]
    rows = influx.query('SELECT * FROM "alerts" WHERE "state" = \'cleared\'')[0].rows()
    assert rows[0]["time"] == BASE + 27 * MIN and rows[0]["level"] == "warning"
    assert rows[0]["source"] == "simulated" and rows[0]["ward"] == "thanh-my-tay"
    latest = alerts.shape_events(influx.query(alerts.latest_events_query(BASE + 30 * MIN)))
    assert alerts.for_screen(latest) == [] and alerts.for_screen(latest, None) == [events[-1]]


def test_a_restart_keeps_the_active_alert_without_raising_it_again(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    settings = rules_settings(mqtt_settings, influx.settings, tmp_path)
    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got:
        with running_rules(settings):
            send(mqtt_settings, STORM[:4])
            wait_for(lambda: states(got) == [(R, W)], what="the alert")
        (raised,) = alerts_in(got)

        with running_rules(settings) as again:
            assert again.active() == [raised]  # restored, before any new reading
            send(mqtt_settings, [25] * 3, first_minute=4)
            wait_for(lambda: again.engine.counters.readings == 3, what="three readings judged")
            time.sleep(0.3)
            assert states(got) == [(R, W)]
            send(mqtt_settings, [5] * 11, first_minute=7)
            wait_for(lambda: len(got) == 3, what="the cleared event")

    cleared = alerts_in(got)[-1]
    assert (cleared.state, cleared.alert_id, cleared.raised_at) == (C, raised.alert_id,
                                                                    raised.raised_at)
    assert cleared.cleared_at == format_ts(BASE + 17 * MIN)


def test_readings_sent_while_rules_is_down_are_judged_when_it_returns(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    settings = rules_settings(mqtt_settings, influx.settings, tmp_path)
    with running_rules(settings):
        pass  # the broker now holds a session for rules, with its subscription
    send(mqtt_settings, STORM[:4])
    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got, \
            running_rules(settings):
        wait_for(lambda: states(got) == [(R, W)], what="an alert for the backlog")
    assert alerts_in(got)[0].raised_at == format_ts(BASE + 3 * MIN)


def test_an_exhibitors_device_raises_a_flood_alert(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    booth = DeviceInfo(device_id="expo-water-7", domain="flood", name="Cảm biến gian 7",
                       name_en="Booth 7 water sensor", ward="sai-gon", site="booth-7",
                       lat=10.77, lon=106.70, source=Source.LIVE)
    registry = Registry([*load_city().registry(), booth])
    settings = rules_settings(mqtt_settings, influx.settings, tmp_path)
    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got, \
            running_rules(settings, registry=registry):
        send(mqtt_settings, [0, 25, 25, 25], device="expo-water-7", source=None)  # live
        wait_for(lambda: states(got) == [(R, W)], what="the booth's alert")
    (alert,) = alerts_in(got)
    assert (alert.device_id, alert.site, alert.source) == ("expo-water-7", "booth-7", Source.LIVE)
    assert alert.title_en == "Flooding at Booth 7 water sensor: 25 cm"
    wait_for(lambda: stored(influx), what="the booth's alert point")


def test_a_custom_format_device_raises_a_flood_alert_from_its_own_topic(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    mapping = CustomMapping.model_validate({
        "topic": "gauge", "metrics": [{"metric": "water_level_cm", "pointer": "/depth_m",
                                       "unit": "m"}],
        "time": {"pointer": "/at", "format": "epoch_ms"}})
    booth = DeviceInfo(device_id="expo-gauge-8", domain="flood", name="Thước đo gian 8",
                       name_en="Booth 8 gauge", ward="sai-gon", site="booth-8", lat=10.77,
                       lon=106.70, source=Source.LIVE, metrics=("water_level_cm",),
                       format="custom", mapping=mapping)
    registry = Registry([*load_city().registry(), booth])
    settings = rules_settings(mqtt_settings, influx.settings, tmp_path)
    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got, \
            running_rules(settings, registry=registry):
        client = connect(mqtt_settings)
        for minute, metres in enumerate([0, 0.25, 0.25, 0.25]):
            client.publish(f"{mqtt_settings.root}/dev/expo-gauge-8/gauge",
                           orjson.dumps({"depth_m": metres, "at": BASE + minute * MIN}),
                           qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        wait_for(lambda: states(got) == [(R, W)], what="the gauge's alert")
    (alert,) = alerts_in(got)
    assert (alert.device_id, alert.source) == ("expo-gauge-8", Source.LIVE)
    assert alert.title_en == "Flooding at Booth 8 gauge: 25 cm"


def test_alerts_wait_on_disk_while_influxdb_is_down(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    nowhere = InfluxSettings(url=f"http://127.0.0.1:{free_port()}", db=influx.settings.db,
                             timeout_s=0.5)
    down = rules_settings(mqtt_settings, nowhere, tmp_path)
    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got:
        with running_rules(down) as rules:
            send(mqtt_settings, STORM[:6])
            wait_for(lambda: states(got) == [(R, W), (U, D)], what="alerts published anyway")
            assert rules.points.pending() >= 1
        assert stored(influx) == []
        with running_rules(rules_settings(mqtt_settings, influx.settings, tmp_path)) as rules:
            wait_for(lambda: len(stored(influx)) == 2, what="the spooled points, stored")
            wait_for(lambda: rules.points.pending() == 0, what="an empty spool")
    assert len(got) == 2


def rules_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "launcher.cli", "rules"], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)


def test_a_crashed_rules_process_comes_back_with_its_alert_and_its_backlog(
        mqtt_settings: MqttSettings, influx: InfluxClient, subprocess_env: dict[str, str],
        tmp_path: Path) -> None:
    env = dict(subprocess_env, SMARTCITY_MQTT_URL=mqtt_settings.url,
               SMARTCITY_MQTT_ROOT=mqtt_settings.root, SMARTCITY_INFLUX_URL=influx.settings.url,
               SMARTCITY_INFLUX_DB=influx.settings.db, SMARTCITY_RULES_CLIENT_ID="rules-crash",
               SMARTCITY_RULES_HEARTBEAT_INTERVAL_S="0.2")
    state_dir = Path(env["SMARTCITY_DATA_DIR"]) / "rules" / "rules-crash"
    log = tmp_path / "rules.log"

    def connected() -> bool:
        beat = state_dir / "heartbeat.json"
        return beat.exists() and orjson.loads(beat.read_bytes())["connected"]

    with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as got:
        proc = rules_process(env, log)
        try:
            wait_for(connected, what="rules connected", timeout=30)
            send(mqtt_settings, STORM[:4])
            wait_for(lambda: states(got) == [(R, W)], what="the alert")
            saved = state_dir / "state.json"
            wait_for(lambda: saved.exists() and b'"raised"' in saved.read_bytes(),
                     what="the alert in the saved state")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

            send(mqtt_settings, [45, 45], first_minute=4)  # while it is dead
            (state_dir / "heartbeat.json").unlink()
            proc = rules_process(env, log)
            wait_for(lambda: states(got) == [(R, W), (U, D)], what="danger, from the backlog",
                     timeout=30)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    raised, danger = alerts_in(got)
    assert danger.alert_id == raised.alert_id and danger.raised_at == raised.raised_at
    assert "restored 1 active alerts" in log.read_text()


def test_a_bad_rule_file_stops_the_service_with_the_field_named(
        subprocess_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text((REPO / "rules" / "defaults.toml").read_text(encoding="utf-8")
                   .replace('metric = "speed_kmh"', 'metric = "speed_mph"'), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "launcher.cli", "rules"], cwd=REPO, timeout=60,
                          env=dict(subprocess_env, SMARTCITY_RULES_FILE=str(bad)),
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert f"rule file {bad} is invalid" in done.stderr
    assert "rules[2]: metric: 'speed_mph' is not a traffic metric" in done.stderr
