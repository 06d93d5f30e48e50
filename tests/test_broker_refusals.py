"""Publishes the broker refuses (a wrong topic, no permission) reach the device's errors topic
and its page within seconds, read from the real Mosquitto's log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.dynsec import DynSecAdmin
from ingest.brokerlog import BrokerLog, BrokerLogWatcher, Refused
from ingest.service import IngestService
from launcher.servers import Influxd
from smartcity.city import load_city
from smartcity.errors import Reason
from smartcity.models import Source
from smartcity.registry import DeviceInfo
from smartcity.topics import Domain, profile_topic
from storage.influx import InfluxClient
from tests.ingest_helpers import fresh_database, ingest_settings
from tests.mqtt import wait_for
from tests.secured_broker import NOT_AUTHORIZED, SecuredBroker, start_secured

LOG = [
    "2026-12-07T21:18:51: New client connected from 127.0.0.1:52099 as booth-plug "
    "(p5, c1, k10, u'dev-tasmota-a1').",
    "2026-12-07T21:18:51: New client connected from 127.0.0.1:52100 as svc (p5, c1, k10, "
    "u'simulators').",
    "2026-12-07T21:18:51: Received PUBLISH from booth-plug (d0, q1, r0, m1, "
    "'city/dev/tasmota-a1/tele/x/SENSOR', ... (7 bytes))",
    "2026-12-07T21:18:51: Denied PUBLISH from booth-plug (d0, q1, r0, m1, "
    "'tele/tasmota_1/SENSOR', ... (97 bytes))",
    "2026-12-07T21:18:51: Denied PUBLISH from svc (d0, q1, r0, m2, 'city/x', ... (2 bytes))",
    "2026-12-07T21:18:51: Denied PUBLISH from stranger (d0, q0, r0, m0, 'a', ... (1 bytes))",
    "2026-12-07T21:18:52: Denied PUBLISH from booth-plug (d0, q0, r1, m0, "
    "'city/flood/tasmota-a1/it's/data', ... (0 bytes))",
]


def test_the_log_names_refused_publishes_of_device_accounts_only() -> None:
    parser = BrokerLog()
    got = [r for r in map(parser.feed, LOG) if r is not None]
    assert got == [Refused("tasmota-a1", "tele/tasmota_1/SENSOR", 97),
                   Refused("tasmota-a1", "city/flood/tasmota-a1/it's/data", 0)]


def test_the_watcher_reads_what_is_added_and_starts_again_when_the_file_is_emptied(
        tmp_path: Path) -> None:
    path = tmp_path / "broker.log"
    path.write_text(LOG[0] + "\n" + LOG[3] + "\n")  # before the start: not reported again
    got: list[Refused] = []
    watcher = BrokerLogWatcher(path, got.append, max_bytes=400, interval_s=0.02)
    watcher.start()
    try:
        with path.open("a") as f:
            f.write(LOG[3] + "\n" + LOG[6][:40])
        wait_for(lambda: len(got) == 1, what="the refused publish")
        with path.open("a") as f:
            f.write(LOG[6][40:] + "\n")
        wait_for(lambda: len(got) == 2, what="a line written in two parts")
        wait_for(lambda: path.stat().st_size == 0, what="the file emptied past max_bytes")
        with path.open("a") as f:
            f.write(LOG[3] + "\n")
        wait_for(lambda: len(got) == 3, what="a refusal after the file was emptied")
    finally:
        watcher.stop()
    assert [r.topic for r in got] == ["tele/tasmota_1/SENSOR", "city/flood/tasmota-a1/it's/data",
                                      "tele/tasmota_1/SENSOR"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecuredBroker, Path]]:
    workdir = tmp_path_factory.mktemp("refusals")
    log = workdir / "broker-events.log"
    broker = start_secured(workdir, f"rf-{uuid.uuid4().hex[:8]}",
                           extra_config=f"log_dest file {log}\nlog_type all")
    yield broker, log
    broker.server.stop()


@pytest.mark.servers
def test_a_publish_the_broker_refused_reaches_the_device_and_its_page(
        broker: tuple[SecuredBroker, Path], influxd: Influxd, tmp_path: Path) -> None:
    secured, log = broker
    root = secured.root
    info = DeviceInfo(device_id="tasmota-a1", domain=Domain.HOME, name="Ổ cắm gian A1",
                      ward="sai-gon", site="tasmota-a1", lat=10.77, lon=106.70,
                      source=Source.LIVE, metrics=("power_w",), format="tasmota")
    with fresh_database(influxd.url, f"db-{root}") as influx:
        bodies, stored = refused_thrice(secured, log, info, influx, tmp_path)
    use = f"{root}/dev/{info.device_id}/tele/{info.device_id}/SENSOR"
    assert [(b["reason"], b["reason_code"], b["topic"]) for b in bodies] == [
        (Reason.BROKER_REFUSED, 0x87, "tele/booth/SENSOR"),
        (Reason.BROKER_REFUSED, 0x87, f"{root}/home/{info.device_id}/data"),
        (Reason.BROKER_REFUSED, 0x87, "tasmota_A1B2C3/SENSOR")]
    assert all(use in b["errors"][0]["message"] for b in bodies)
    # ... and stored, for the device page
    assert sorted(r["topic"] for r in stored) == sorted(b["topic"] for b in bodies)
    assert all(use in r["problems"] for r in stored)


def refused_thrice(secured: SecuredBroker, log: Path, info: DeviceInfo, influx: InfluxClient,
                   tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The device publishes where its account may not, twice under MQTT 5 and once under
    3.1.1 (which answers nothing); the reports it got and what was stored."""
    root = secured.root
    settings = ingest_settings(secured.settings("ingest"), influx.settings, tmp_path,
                               broker_log=log)
    service = IngestService(settings, load_city().registry())
    service.start()
    try:
        assert service.subscribed.wait(10)
        with DynSecAdmin(secured.settings("api")) as admin:
            credentials = admin.add_device(info.device_id, info.domain)
        with secured.session("api") as api:
            api.publish(str(profile_topic(info.device_id, root)),
                        info.model_dump_json().encode(), retain=True)
        wait_for(lambda: service.registry.get(info.device_id) == info, what="the profile")
        errors = f"{root}/devices/{info.device_id}/errors"
        # The api's account follows the reports too: the 3.1.1 connection below takes the
        # device's session (the account is bound to one client id), the watcher stays.
        with secured.session(credentials.username, credentials.password,
                             client_id=credentials.client_id) as device, \
                secured.session("api") as watcher:
            assert device.subscribe(errors) == [1]
            assert watcher.subscribe(errors) == [1]
            # Tasmota's default FullTopic, and a topic under another kind
            assert device.publish("tele/booth/SENSOR", b'{"ENERGY": {"Power": 5}}') == \
                NOT_AUTHORIZED
            assert device.publish(f"{root}/home/{info.device_id}/data", b"{}") == NOT_AUTHORIZED
            wait_for(lambda: len(device.on(errors)) == 2, timeout=10,
                     what="two reports within seconds")
            old = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                              client_id=credentials.client_id)
            old.username_pw_set(credentials.username, credentials.password)
            old.connect("127.0.0.1", secured.port)
            old.loop_start()
            old.publish("tasmota_A1B2C3/SENSOR", b"{}", qos=1).wait_for_publish(10)
            old.disconnect()
            old.loop_stop()
            reports = wait_for(lambda: len(watcher.on(errors)) == 3 and watcher.on(errors),
                               timeout=10, what="the 3.1.1 device's report")
    finally:
        service.stop()
    stored = [r for s in influx.query('SELECT "topic", "problems" FROM "device_rejections"')
              for r in s.rows()]
    return [orjson.loads(r.payload) for r in reports], stored
