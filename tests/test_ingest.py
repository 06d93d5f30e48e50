"""Ingest against a real Mosquitto and a real InfluxDB: what it stores, what it refuses and
how it tells the device, and that nothing is lost when ingest or InfluxDB dies."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from launcher.servers import Influxd, start_with_retry
from smartcity.settings import InfluxSettings, MqttSettings
from storage.influx import InfluxClient
from tests.ingest_helpers import (
    flood,
    ingest_env,
    ingest_settings,
    now_ms,
    running_ingest,
    start_ingest_process,
)
from tests.mqtt import close, collecting, connect, publish, wait_for

pytestmark = pytest.mark.servers


def count(influx: InfluxClient, measurement: str = "flood") -> int:
    series = influx.query(f'SELECT count("seq") FROM "{measurement}"')
    return int(series[0].values[0][1]) if series else 0


def test_readings_of_every_domain_are_stored_with_their_tags(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    root, ts = mqtt_settings.root, now_ms()
    messages = {
        f"{root}/home/home-thao-dien/telemetry": {"power_w": 1830.5, "temperature_c": 28.4},
        f"{root}/traffic/nguyen-huu-canh/telemetry": {"speed_kmh": 17.0, "flow_veh_h": 5400},
        f"{root}/flood/flood-nguyen-huu-canh/telemetry": {"water_level_cm": 23.5},
        f"{root}/weather/rain-sai-gon/telemetry": {"rain_mm_h": 42.0, "source": "simulated"},
    }
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest:
        client = connect(mqtt_settings)
        for topic, metrics in messages.items():
            client.publish(topic, orjson.dumps({"ts": ts, "seq": 7, **metrics}), qos=1)
        wait_for(lambda: ingest.stats.stored == 4, what="4 stored readings")
        close(client)
        # The heartbeat the container healthcheck reads: fresh, connected, with the counters.
        beat = wait_for(lambda: ingest.heartbeat_path.exists() and
                        orjson.loads(ingest.heartbeat_path.read_bytes())["stored"] == 4 and
                        orjson.loads(ingest.heartbeat_path.read_bytes()), what="a heartbeat")
        assert beat["connected"] is True and beat["rejected"] == 0

    by_name = {m: influx.query(f'SELECT * FROM "{m}"')[0].rows()[0]
               for m in ("home", "traffic", "flood", "weather")}
    assert by_name["home"] == {"time": ts, "device_id": "home-thao-dien", "site": "home-thao-dien",
                               "ward": "an-khanh", "source": "live", "seq": 7,
                               "power_w": 1830.5, "temperature_c": 28.4}
    assert by_name["traffic"]["speed_kmh"] == 17.0 and by_name["traffic"]["flow_veh_h"] == 5400
    assert by_name["flood"]["ward"] == "thanh-my-tay"
    assert by_name["weather"]["source"] == "simulated"


BAD_MESSAGES = [
    # (topic under the root, payload, reason, field named in the report)
    ("flood/flood-thao-dien/telemetry", b"{not json", "payload is not valid JSON", "payload"),
    ("flood/flood-thao-dien/telemetry", b"[1, 2]", "invalid SenML", "[0]"),
    ("flood/flood-thao-dien/telemetry", b'{"ts": "2026-11-22T10:04:05", "water_level_cm": 3}',
     "payload does not match the contract", "ts"),
    ("flood/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "water_level_cm": "3"}',
     "payload does not match the contract", "water_level_cm"),
    ("flood/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "water_level": 3}',
     "payload does not match the contract", "water_level"),
    ("flood/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1}',
     "payload does not match the contract", "payload"),
    ("flood/flood-thao-dien/telemetry", b'{"ts": 1795316645, "seq": 1, "water_level_cm": 3}',
     "payload does not match the contract", "ts"),
    ("volcano/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "lava_m": 3}',
     "unknown domain", "domain"),
    ("flood/nobody-knows-me/telemetry", b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 3}',
     "unknown device", "device_id"),
    ("traffic/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "speed_kmh": 3}',
     "wrong domain", "domain"),
    ("flood/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 3,'
     b' "pad": "' + b"x" * 20_000 + b'"}', "payload too large", "payload"),
]


def test_bad_messages_are_rejected_explained_to_the_device_and_ingest_goes_on(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    root = mqtt_settings.root
    settings = ingest_settings(mqtt_settings, influx.settings, tmp_path)
    with running_ingest(settings) as ingest, \
            collecting(mqtt_settings, f"{root}/devices/+/errors") as reports:
        client = connect(mqtt_settings)
        for topic, payload, _, _ in BAD_MESSAGES:
            client.publish(f"{root}/{topic}", payload, qos=1).wait_for_publish(5)
        client.publish(f"{root}/flood/flood-thao-dien/telemetry", flood(1, 12.5), qos=1)
        wait_for(lambda: ingest.stats.stored == 1, what="the good reading after the bad ones")
        wait_for(lambda: len(reports) == len(BAD_MESSAGES), what="one report per bad message")
        close(client)

    assert ingest.stats.rejected == len(BAD_MESSAGES)
    assert count(influx) == 1
    for (topic, payload, reason, field), report in zip(BAD_MESSAGES, reports, strict=True):
        body = orjson.loads(report.payload)
        device = topic.split("/")[1]
        assert report.topic == f"{root}/devices/{device}/errors"
        assert body["topic"] == f"{root}/{topic}"
        assert body["reason"] == reason
        assert field in [e["field"] for e in body["errors"]], body
        assert body["payload"].startswith(payload[:20].decode())
        assert len(body["payload"]) < 400  # truncated, not echoed whole


def test_a_device_flooding_bad_messages_gets_rate_limited_reports(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    root = mqtt_settings.root
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest, \
            collecting(mqtt_settings, f"{root}/devices/+/errors") as reports:
        client = connect(mqtt_settings)
        for _ in range(200):
            client.publish(f"{root}/flood/flood-thao-dien/telemetry", b"{oops", qos=1)
        wait_for(lambda: ingest.stats.rejected == 200, what="200 rejections")
        wait_for(lambda: len(reports) >= 20, what="the first burst of reports")
        close(client)
    # 20 at once, then 2 a second: a device stuck in a loop cannot flood its errors topic.
    assert 20 <= len(reports) <= 30
    assert ingest.stats.rejected_by_reason["payload is not valid JSON"] == 200


@pytest.mark.parametrize("device_level", [
    "flood-thao-dien,ward=evil",
    "flood-thao-dien water_level_cm=999",
    "x=1",
    "flood-thao-dien\nflood,device_id=evil water_level_cm=999 1",
    "flood-thao-dien\\",
    "Flood-Thao-Dien",
])
def test_a_device_id_carrying_line_protocol_cannot_inject_a_point_or_a_tag(
        device_level: str, mqtt_settings: MqttSettings, influx: InfluxClient,
        tmp_path: Path) -> None:
    root = mqtt_settings.root
    evil_payload = orjson.dumps({"ts": now_ms(), "seq": 1, "water_level_cm": 999.0,
                                 "water_level_cm=1,ward=evil": 1})
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest:
        # Its own connection: Mosquitto drops a client whose topic holds a control character,
        # so a newline never even reaches ingest (ingest's own guard is tested in test_judge).
        hostile = connect(mqtt_settings)
        hostile.publish(f"{root}/flood/{device_level}/telemetry", flood(1, 999.0), qos=1)
        close(hostile)
        client = connect(mqtt_settings)
        client.publish(f"{root}/flood/flood-thao-dien/telemetry", evil_payload, qos=1)
        client.publish(f"{root}/flood/flood-thao-dien/telemetry", flood(2, 12.5), qos=1)
        wait_for(lambda: ingest.stats.stored == 1 and ingest.stats.rejected >= 1,
                 what="the good reading stored and the hostile payload rejected")
        close(client)

    measurements = {v[0] for s in influx.query("SHOW MEASUREMENTS") for v in s.values}
    # ingest's own counters and the refusal of the hostile payload, and nothing else
    assert measurements == {"flood", "ingest_stats", "device_rejections"}
    rejections = [v[0] for s in influx.query('SHOW SERIES FROM "device_rejections"')
                  for v in s.values]
    assert rejections == ["device_rejections,device_id=flood-thao-dien,"
                          "reason=payload\\ does\\ not\\ match\\ the\\ contract,"
                          "source=simulated"]
    series = [v[0] for s in influx.query('SHOW SERIES FROM "flood"') for v in s.values]
    assert series == ["flood,device_id=flood-thao-dien,site=flood-thao-dien,source=live,"
                      "ward=an-khanh"]
    fields = [v[0] for s in influx.query('SHOW FIELD KEYS FROM "flood"') for v in s.values]
    assert sorted(fields) == ["seq", "water_level_cm"]
    assert [r["water_level_cm"] for r in influx.query('SELECT * FROM "flood"')[0].rows()] == [12.5]


def test_messages_whose_batch_was_not_written_are_redelivered_after_ingest_is_killed(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path,
        subprocess_env: dict[str, str]) -> None:
    root, log = mqtt_settings.root, tmp_path / "ingest.log"
    # A batch that waits a minute: the readings are received but not yet written when we kill.
    env = ingest_env(subprocess_env, mqtt_settings, influx.settings,
                     SMARTCITY_INGEST_BATCH_INTERVAL_S="60")
    first = start_ingest_process(env, log)
    try:
        wait_for(lambda: "subscribing to" in log.read_text(), what="ingest to subscribe")
        client = connect(mqtt_settings)
        for seq in range(40):
            client.publish(f"{root}/flood/flood-thao-dien/telemetry", flood(seq, seq / 2,
                                                                            ts=now_ms() + seq),
                           qos=1).wait_for_publish(5)
        close(client)
        wait_for(lambda: "received 40," in log.read_text(), what="ingest to receive all 40")
        assert count(influx) == 0
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)

    second = start_ingest_process(ingest_env(subprocess_env, mqtt_settings, influx.settings), log)
    try:
        wait_for(lambda: count(influx) == 40, what="all 40 readings after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    levels = [r["water_level_cm"] for r in influx.query('SELECT * FROM "flood"')[0].rows()]
    assert levels == [seq / 2 for seq in range(40)]
    assert "session resumed" in log.read_text()


def test_readings_survive_influxdb_going_down_through_the_spool(
        mqtt_settings: MqttSettings, tmp_path: Path) -> None:
    # Its own InfluxDB, because this test stops it.
    server = start_with_retry(Influxd, tmp_path / "influxd")
    assert isinstance(server, Influxd)
    settings = InfluxSettings(url=server.url, db="outage")
    influx = InfluxClient(settings)
    try:
        influx.create_database()
        root = mqtt_settings.root
        with running_ingest(ingest_settings(mqtt_settings, settings, tmp_path / "var")) as ingest:
            server.kill()
            client = connect(mqtt_settings)
            for seq in range(30):
                client.publish(f"{root}/flood/flood-thao-dien/telemetry",
                               flood(seq, 40.0, ts=now_ms() + seq), qos=1)
            wait_for(lambda: ingest.stats.spooled == 30, timeout=20,
                     what="30 readings spooled while InfluxDB is down")
            assert len(ingest.spool) >= 1
            server.start()
            wait_for(lambda: count(influx) == 30, timeout=30, what="the spool to drain")
            close(client)
            assert len(ingest.spool) == 0
            assert ingest.stats.unspooled == 30
    finally:
        influx.close()
        server.stop()


def test_lines_influxdb_refuses_go_to_dead_letters_and_are_not_retried(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    # A real 4xx: InfluxDB refuses a float where the field already holds strings (field types
    # are fixed per shard, so the string point must fall in the same week as the reading).
    influx.write(f'flood,device_id=flood-thao-dien water_level_cm="dry" {now_ms() - 1000}\n'
                 .encode())
    root = mqtt_settings.root
    settings = ingest_settings(mqtt_settings, influx.settings, tmp_path)
    with running_ingest(settings) as ingest:
        publish(mqtt_settings, f"{root}/flood/flood-thao-dien/telemetry", flood(1, 5.0))
        wait_for(lambda: ingest.stats.dead_lettered == 1, what="the refused line dead-lettered")
        assert ingest.stats.write_errors == 0  # refused, not retried
    letters = list((tmp_path / "ingest" / settings.client_id / "dead-letter").glob("*.lp"))
    text = letters[0].read_text()
    assert "field type conflict" in text
    assert "flood,device_id=flood-thao-dien" in text and "water_level_cm=5.0" in text
