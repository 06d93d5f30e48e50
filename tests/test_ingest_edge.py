"""Ingest's own MQTT edge against a real Mosquitto and InfluxDB: the registry is whole before
the persistent session delivers, a broker restart loses nothing, workers share the stream.
The rest of ingest's behaviour (refusals, reports, spool, crashes) is tested in
tests/test_ingest*.py, which run on this edge by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mqtt import connect as broker_connect
from broker.mqtt import new_client
from ingest.edgeservice import EdgeIngestService
from launcher.servers import Mosquitto, start_with_retry
from launcher.stack import ingest_worker_envs
from smartcity.settings import MqttSettings
from storage.influx import InfluxClient
from tests.ingest_helpers import flood, ingest_settings, now_ms, running_ingest
from tests.mqtt import close, connect, wait_for
from tests.test_broker_clients import tls_broker  # noqa: F401  (a fixture)
from tests.test_ingest_formats import EXPO, expo, register, unregister

pytestmark = pytest.mark.servers


def count(influx: InfluxClient, measurement: str = "flood") -> int:
    series = influx.query(f'SELECT count("seq") FROM "{measurement}"')
    return int(series[0].values[0][1]) if series else 0


def publish_many(settings: MqttSettings, topic: str, first: int, n: int) -> None:
    client = connect(settings)
    try:
        for seq in range(first, first + n):
            client.publish(topic, flood(seq, seq / 4, ts=now_ms() - 60_000 + seq),
                           qos=1).wait_for_publish(5)
    finally:
        close(client)


def test_readings_queued_while_ingest_was_down_are_judged_against_the_whole_registry(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    settings = ingest_settings(mqtt_settings, influx.settings, tmp_path)
    register(mqtt_settings, expo())
    with running_ingest(settings) as first:
        assert isinstance(first, EdgeIngestService)  # the default edge
        wait_for(lambda: EXPO in first.registry, what="the registered device")
    # While ingest is away the device sends: its readings wait in ingest's session, and
    # arrive the moment it reconnects, before any retained profile of a new subscription
    # could. A fresh ingest must not judge them before it knows the device again.
    topic = f"{mqtt_settings.root}/flood/{EXPO}/telemetry"
    publish_many(mqtt_settings, topic, 0, 30)
    try:
        with running_ingest(settings) as ingest:
            wait_for(lambda: ingest.stats.stored == 30, what="all 30 queued readings stored")
            assert ingest.stats.rejected == 0
            assert EXPO in ingest.registry
    finally:
        unregister(mqtt_settings, EXPO)
    assert count(influx) == 30


def test_a_broker_restart_loses_nothing(influx: InfluxClient, tmp_path: Path) -> None:
    broker = start_with_retry(Mosquitto, tmp_path / "broker")
    assert isinstance(broker, Mosquitto)
    mqtt_settings = MqttSettings(url=broker.url, root="restart", keepalive_s=5)
    topic = f"{mqtt_settings.root}/flood/flood-thao-dien/telemetry"
    try:
        settings = ingest_settings(mqtt_settings, influx.settings, tmp_path / "var")
        with running_ingest(settings) as ingest:
            publish_many(mqtt_settings, topic, 0, 50)
            wait_for(lambda: ingest.stats.stored == 50, what="the first 50 readings")
            generation = ingest.edge.generation  # type: ignore[attr-defined]
            broker.stop()
            broker = Mosquitto(workdir=broker.workdir, port=broker.port).start()
            wait_for(lambda: ingest.edge.generation > generation, timeout=60,  # type: ignore[attr-defined]
                     what="ingest to reconnect")
            publish_many(mqtt_settings, topic, 50, 50)
            wait_for(lambda: ingest.stats.stored == 100, what="the 50 readings after the restart")
    finally:
        broker.stop()
    assert count(influx) == 100


def test_workers_in_one_share_group_store_each_reading_once(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    ids = [e["SMARTCITY_INGEST_CLIENT_ID"]
           for e in ingest_worker_envs({"SMARTCITY_INGEST_CLIENT_ID": "smartcity-ingest"}, 3)]
    assert ids == ["smartcity-ingest", "smartcity-ingest-2", "smartcity-ingest-3"]
    one = ingest_settings(mqtt_settings, influx.settings, tmp_path, client_id="w-1")
    two = ingest_settings(mqtt_settings, influx.settings, tmp_path, client_id="w-2")
    topic = f"{mqtt_settings.root}/flood/flood-thao-dien/telemetry"
    with running_ingest(one) as a, running_ingest(two) as b:
        publish_many(mqtt_settings, topic, 0, 200)
        wait_for(lambda: a.stats.stored + b.stats.stored == 200, what="200 readings stored")
        assert a.stats.stored > 0 and b.stats.stored > 0
    assert count(influx) == 200


def test_ingest_reads_over_tls(request: pytest.FixtureRequest, influx: InfluxClient,
                               tmp_path: Path) -> None:
    port, ca = request.getfixturevalue("tls_broker")  # a Mosquitto with a TLS listener
    mqtt_settings = MqttSettings(url=f"mqtts://127.0.0.1:{port}", root="tls-ingest", ca_file=ca)
    settings = ingest_settings(mqtt_settings, influx.settings, tmp_path)
    with running_ingest(settings) as ingest:
        assert isinstance(ingest, EdgeIngestService)
        pub = new_client(mqtt_settings, role="test-pub")  # the factory speaks TLS too
        broker_connect(pub, mqtt_settings)
        pub.loop_start()
        try:
            for seq in range(5):
                pub.publish(f"{mqtt_settings.root}/flood/flood-thao-dien/telemetry",
                            flood(seq, ts=now_ms() - 1000 + seq), qos=1).wait_for_publish(10)
        finally:
            pub.disconnect()
            pub.loop_stop()
        wait_for(lambda: ingest.stats.stored == 5, what="five readings over TLS")
    assert count(influx) == 5
