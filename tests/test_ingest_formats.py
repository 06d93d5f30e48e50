"""The formats exhibitors' devices send, through a real Mosquitto, the real ingest and a real
InfluxDB: each format stored with its values and times, each refusal on the device's errors
topic with its MQTT 5 reason code, the refusals stored for the exhibitor and escaped, and
devices registered and removed while ingest (and the rules) run."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rules.service import RulesService
from rules.settings import RulesSettings
from smartcity.alerts import AlertLevel, AlertState, decode_alert
from smartcity.city import load_city
from smartcity.errors import REASON_CODES, Reason
from smartcity.models import Source
from smartcity.registry import DeviceInfo, Registry
from smartcity.settings import MqttSettings
from smartcity.topics import Domain, profile_topic
from storage.influx import InfluxClient
from storage.lineprotocol import printable
from tests.ingest_helpers import ingest_settings, now_ms, running_ingest
from tests.mqtt import close, collecting, connect, publish, wait_for

pytestmark = pytest.mark.servers

EXPO = "expo-water-9"


def expo(metrics: tuple[str, ...] = ("water_level_cm",)) -> DeviceInfo:
    return DeviceInfo(device_id=EXPO, domain=Domain.FLOOD, name="Cảm biến gian B2",
                      name_en="Booth B2 water sensor", ward="sai-gon", site=EXPO, lat=10.77,
                      lon=106.70, source=Source.LIVE, metrics=metrics)


def register(settings: MqttSettings, device: DeviceInfo) -> None:
    """What the api does when an exhibitor registers a device."""
    publish(settings, str(profile_topic(device.device_id, settings.root)),
            device.model_dump_json(), retain=True)


def unregister(settings: MqttSettings, device_id: str) -> None:
    publish(settings, str(profile_topic(device_id, settings.root)), b"", retain=True)




@dataclass(frozen=True)
class Report:
    topic: str
    body: dict[str, Any]
    user: dict[str, str]
    content_type: str | None


@contextmanager
def reports(settings: MqttSettings) -> Iterator[list[Report]]:
    """Every report on the errors topics, with its MQTT 5 properties, as a device gets it."""
    got: list[Report] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        props = m.properties
        got.append(Report(m.topic, orjson.loads(m.payload),
                          dict(getattr(props, "UserProperty", [])),
                          getattr(props, "ContentType", None)))

    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(f"{settings.root}/devices/+/errors", qos=1)
    client.connect(settings.host, settings.port)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise AssertionError("could not subscribe to the errors topics")
        yield got
    finally:
        close(client)


def rows(influx: InfluxClient, query: str) -> list[dict[str, Any]]:
    return [r for s in influx.query(query) for r in s.rows()]


# -- every format, stored ----------------------------------------------------------------------

def test_each_format_is_stored_with_its_values_and_times(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    root = mqtt_settings.root
    ts = now_ms() - 5000
    s = ts // 1000 - 600  # SenML absolute time, seconds
    messages = [
        (f"{root}/flood/flood-thao-dien/telemetry",
         orjson.dumps({"ts": ts, "seq": 7, "water_level_cm": 11.5})),
        (f"{root}/flood/flood-nguyen-huu-canh/telemetry", orjson.dumps([
            {"bn": "urn:dev:mac:0024befffe804ff1:flood-nguyen-huu-canh:", "bt": s,
             "n": "water_level", "u": "m", "v": 0.235},
            {"n": "battery", "u": "%EL", "v": 81},
            {"n": "water_level", "u": "m", "v": 0.25, "t": 60}])),
        (f"{root}/home/home-thao-dien/telemetry", orjson.dumps([
            {"n": "temperature", "u": "Cel", "v": 29.5, "t": -60},
            {"n": "power", "u": "kW", "v": 1.2}])),
        (f"{root}/weather/rain-sai-gon/telemetry/rain_mm_h", b"42.5"),
    ]
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest:
        client = connect(mqtt_settings)
        before = now_ms()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: ingest.stats.stored == 6, what="six points from four messages")
        after = now_ms()
        close(client)
        assert (ingest.stats.accepted, ingest.stats.rejected) == (4, 0)
        assert (ingest.stats.seq_gaps, ingest.stats.seq_repeats) == (0, 0)

    flood = {(r["device_id"], r["time"]): r for r in rows(influx, 'SELECT * FROM "flood"')}
    assert flood[("flood-thao-dien", ts)]["water_level_cm"] == 11.5
    assert flood[("flood-thao-dien", ts)]["seq"] == 7
    first = flood[("flood-nguyen-huu-canh", s * 1000)]
    assert (first["water_level_cm"], first["battery_pct"], first["seq"]) == (23.5, 81.0, None)
    assert first["source"] == "live" and first["ward"] == "thanh-my-tay"
    assert flood[("flood-nguyen-huu-canh", s * 1000 + 60_000)]["water_level_cm"] == 25.0
    assert len(flood) == 3

    # Relative SenML times and single values count from when ingest received the message.
    home = rows(influx, 'SELECT * FROM "home"')
    assert [(r["temperature_c"], r["power_w"]) for r in home] == [(29.5, None), (None, 1200.0)]
    assert home[1]["time"] - home[0]["time"] == 60_000
    assert before <= home[1]["time"] <= after
    (rain,) = rows(influx, 'SELECT * FROM "weather"')
    assert rain["rain_mm_h"] == 42.5 and "seq" not in rain  # no point of it has one
    assert before <= rain["time"] <= after


# -- every refusal, on the device's errors topic ------------------------------------------------

def _senml(**record: Any) -> bytes:
    return orjson.dumps([record])


REFUSALS: list[tuple[str, bytes, Reason, str]] = [
    # (topic under the root, payload, reason, field named)
    ("volcano/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "lava_m": 3}',
     Reason.UNKNOWN_DOMAIN, "domain"),
    ("flood/flood-thao-dien/telemetry/water_level", b"3", Reason.UNKNOWN_TOPIC_METRIC,
     "metric"),
    ("flood/flood-thao-dien/telemetry", b'{"seq": 1, "pad": "' + b"x" * 20_000 + b'"}',
     Reason.TOO_LARGE, "payload"),
    ("flood/flood-thao-dien/telemetry", b"[{oops", Reason.NOT_JSON, "payload"),
    ("flood/flood-thao-dien/telemetry", b"42", Reason.UNKNOWN_FORMAT, "payload"),
    ("flood/flood-thao-dien/telemetry/water_level_cm", b'"42"', Reason.NOT_A_NUMBER, "payload"),
    ("flood/flood-thao-dien/telemetry", _senml(n="water_level_cm", vs="42"), Reason.CONTRACT,
     "[0].vs"),
    ("flood/flood-thao-dien/telemetry", b"[]", Reason.INVALID_SENML, "payload"),
    ("flood/flood-an-khanh/telemetry", _senml(n="temperature", u="Cel", v=30),
     Reason.UNKNOWN_METRIC, "[0].n"),
    ("flood/flood-an-khanh/telemetry", _senml(n="water_level", u="ft", v=1), Reason.WRONG_UNIT,
     "[0].u"),
    (f"flood/{EXPO}/telemetry", _senml(n="battery", u="%EL", v=90), Reason.UNDECLARED_METRIC,
     "battery_pct"),
    ("flood/nobody-knows-me/telemetry/water_level_cm", b"3", Reason.UNKNOWN_DEVICE,
     "device_id"),
    ("traffic/flood-thao-dien/telemetry", b'{"ts": 1795316645123, "seq": 1, "speed_kmh": 3}',
     Reason.WRONG_DOMAIN, "domain"),
    (f"dev/{EXPO}/tele/booth/SENSOR", b'{"AM2301": {"Temperature": 29.4}}',
     Reason.NATIVE_TOPIC, "topic"),
    ("flood/broken-entry/telemetry", b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 1}',
     Reason.UNSTORABLE, "payload"),
]
# No report can reach a device for these: ingest only subscribes to topics under its root
# with the telemetry levels, and an invalid id has no errors topic.
# A publish the broker refused never reaches ingest: its report comes from the broker's log
# (tests/test_broker_refusals.py).
UNREPORTABLE = {Reason.OUTSIDE_ROOT, Reason.TOPIC_LEVELS, Reason.TOPIC_KIND,
                Reason.NOT_TELEMETRY, Reason.INVALID_ID, Reason.BROKER_REFUSED}


def test_every_refusal_reaches_the_device_with_its_reason_code_and_is_stored(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    assert {r for _, _, r, _ in REFUSALS} == set(Reason) - UNREPORTABLE
    root = mqtt_settings.root
    # A registry entry that cannot be stored: only a registry built by hand can hold one.
    broken = DeviceInfo.model_construct(device_id="broken-entry", domain=Domain.FLOOD,
                                        name="B", ward="w\n1", site="b", lat=0.0, lon=0.0,
                                        source=Source.LIVE, metrics=())
    registry = Registry([*load_city().registry(), broken])
    register(mqtt_settings, expo())
    settings = ingest_settings(mqtt_settings, influx.settings, tmp_path)
    with running_ingest(settings, registry) as ingest, reports(mqtt_settings) as got:
        wait_for(lambda: EXPO in ingest.registry, what="the exhibitor's device registered")
        client = connect(mqtt_settings)
        client.publish(f"{root}/flood/Not An Id/telemetry", b"{}", qos=1).wait_for_publish(5)
        for topic, payload, _, _ in REFUSALS:
            client.publish(f"{root}/{topic}", payload, qos=1).wait_for_publish(5)
        wait_for(lambda: len(got) == len(REFUSALS), what="one report per refusal")
        close(client)
        assert ingest.stats.rejected == len(REFUSALS) + 1
        assert ingest.stats.rejected_by_reason[Reason.INVALID_ID] == 1  # counted, not reported

    for (topic, _, reason, field), report in zip(REFUSALS, got, strict=True):
        device = topic.split("/")[1]
        code = REASON_CODES[reason]
        assert report.topic == f"{root}/devices/{device}/errors"
        assert report.body["reason"] == reason
        assert (report.body["reason_code"], report.body["reason_code_name"]) == (
            code, code.spec_name)
        assert field in [e["field"] for e in report.body["errors"]], report.body
        assert report.user == {"reason-code": str(int(code)),
                               "reason-code-name": code.spec_name, "reason-string": reason}
        assert report.content_type == "application/json"

    # ... and stored for the exhibitor's device page, one point per report.
    stored = rows(influx, 'SELECT * FROM "device_rejections"')
    assert sorted((r["device_id"], r["reason"], r["reason_code"], r["topic"], r["payload"],
                   r["suppressed"]) for r in stored) == sorted(
        (t.split("/")[1], str(reason), int(REASON_CODES[reason]), f"{root}/{t}",
         printable(p, 256), 0) for t, p, reason, _ in REFUSALS)
    by_reason = {r["reason"]: r for r in stored}
    assert by_reason[Reason.UNDECLARED_METRIC]["problems"].startswith(
        "battery_pct: battery_pct was not declared when 'expo-water-9' was registered")
    assert all(r["problems"] for r in stored)


HOSTILE = [
    b'{"ts": 1795316645123, "seq": 1, "water_level_cm": "say \\"hi\\""}',
    b'back\\slash\\',
    b"two\nlines\r\nflood,device_id=evil water_level_cm=999 1",
    b"nul\x00inside\x7f\x1b[31m",
    b"invalid \xff\xfe\xc3 utf-8",
    '{"ts": 1795316645123, "seq": 1, "mực_nước\u2028": 1}'.encode(),
    b'{"ts": 1795316645123, "seq": 1, "a\\nb\\"c": 1}',  # the field name goes into problems
    b'"' * 300,
]


def test_rejection_records_are_escaped_whatever_a_device_sends(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    root = mqtt_settings.root
    odd_domain = 'vol"c\\a,n o=x'  # a topic level with line-protocol syntax in it
    sent = [(f"{root}/flood/flood-thao-dien/telemetry", p) for p in HOSTILE]
    sent.append((f"{root}/{odd_domain}/flood-thao-dien/telemetry", b"\\\n\""))
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest:
        client = connect(mqtt_settings)
        for topic, payload in sent:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: ingest.stats.rejected == len(sent), what="every hostile message refused")
        wait_for(lambda: len(rows(influx, 'SELECT * FROM "device_rejections"')) == len(sent),
                 what="one stored rejection each")
        close(client)
        assert ingest.stats.dead_lettered == 0

    measurements = {v[0] for s in influx.query("SHOW MEASUREMENTS") for v in s.values}
    assert measurements == {"device_rejections", "ingest_stats"}
    series = {v[0] for s in influx.query('SHOW SERIES FROM "device_rejections"') for v in s.values}
    assert {s.split(",")[1] for s in series} == {"device_id=flood-thao-dien"}
    stored = rows(influx, 'SELECT * FROM "device_rejections"')
    assert sorted(r["payload"] for r in stored) == sorted(printable(p, 256) for _, p in sent)
    assert sorted(r["topic"] for r in stored) == sorted(printable(t, 512) for t, _ in sent)
    assert f'{root}/vol"c\\\\a,n o=x/flood-thao-dien/telemetry' in {r["topic"] for r in stored}
    for r in stored:
        for name in ("payload", "problems", "topic"):
            assert r[name].isprintable(), r
        shown = json.loads('"' + r["payload"].replace('"', '\\"') + '"')
        assert any(shown == p[:256].decode("utf-8", "replace").rstrip("\ufffd") or
                   shown == p[:256].decode("utf-8", "replace") for _, p in sent)
    problems = " ".join(r["problems"] for r in stored)
    assert 'a\\nb"c: is not a known field' in problems


# -- devices registered while ingest runs ------------------------------------------------------

def test_a_device_registered_while_ingest_runs_is_accepted_at_once_and_refused_after_removal(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    root = mqtt_settings.root
    topic = f"{root}/flood/{EXPO}/telemetry"
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest, \
            reports(mqtt_settings) as got:
        publish(mqtt_settings, topic + "/water_level_cm", b"12")
        wait_for(lambda: len(got) == 1, what="the first refusal")
        assert got[0].body["reason"] == "unknown device"

        register(mqtt_settings, expo(("water_level_cm", "battery_pct")))
        publish(mqtt_settings, topic, orjson.dumps([{"n": "water_level", "u": "cm", "v": 14},
                                                    {"n": "battery", "u": "%EL", "v": 77}]))
        publish(mqtt_settings, topic + "/water_level_cm", b"15")
        wait_for(lambda: ingest.stats.stored == 2, what="the registered device's readings")
        assert ingest.profile_changes == 1

        register(mqtt_settings, expo(("water_level_cm",)))  # it now declares less
        publish(mqtt_settings, topic + "/battery_pct", b"76")
        unregister(mqtt_settings, EXPO)
        publish(mqtt_settings, topic + "/water_level_cm", b"16")
        wait_for(lambda: len(got) == 3, what="two more refusals")
        assert [r.body["reason"] for r in got[1:]] == ["undeclared metric", "unknown device"]
        assert EXPO not in ingest.registry and ingest.profile_changes == 3

    stored = rows(influx, 'SELECT * FROM "flood"')
    assert [(r["water_level_cm"], r["battery_pct"]) for r in stored] == [(14.0, 77.0),
                                                                        (15.0, None)]
    assert {r["device_id"] for r in stored} == {EXPO} and stored[0]["site"] == EXPO


def test_a_device_registered_while_ingest_was_down_is_known_when_it_starts(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    register(mqtt_settings, expo())
    # A profile naming one of the city's own devices changes nothing.
    city_device = load_city().registry().get("flood-thao-dien")
    assert city_device is not None
    publish(mqtt_settings, str(profile_topic("flood-thao-dien", mqtt_settings.root)), b"",
            retain=True)
    with running_ingest(ingest_settings(mqtt_settings, influx.settings, tmp_path)) as ingest:
        publish(mqtt_settings, f"{mqtt_settings.root}/flood/{EXPO}/telemetry/water_level_cm",
                b"3.5")
        publish(mqtt_settings, f"{mqtt_settings.root}/flood/flood-thao-dien/telemetry/"
                               "water_level_cm", b"4.5")
        wait_for(lambda: ingest.stats.stored == 2, what="both readings")
        assert ingest.registry.get("flood-thao-dien") == city_device
    unregister(mqtt_settings, EXPO)


# -- the rules take exhibitor devices the same way ---------------------------------------------

def test_the_rules_judge_a_device_registered_at_run_time_from_its_senml(
        mqtt_settings: MqttSettings, influx: InfluxClient, tmp_path: Path) -> None:
    minute = 60
    start_s = now_ms() // 1000 - 3 * 3600
    settings = RulesSettings(mqtt=mqtt_settings, influx=influx.settings, data_dir=tmp_path,
                             client_id=f"rules-{mqtt_settings.root}", save_interval_s=0.05,
                             heartbeat_interval_s=0.2)
    rules = RulesService(settings)
    rules.start()
    try:
        assert rules.subscribed.wait(10)
        with collecting(mqtt_settings, f"{mqtt_settings.root}/alerts/#") as alerts:
            register(mqtt_settings, expo())
            wait_for(lambda: EXPO in rules.registry, what="the device in the rules' registry")
            pack = [{"bn": f"{EXPO}:", "bt": start_s, "bu": "cm", "n": "water_level", "v": 0}]
            pack += [{"n": "water_level", "v": 25, "t": m * minute} for m in (1, 2, 3)]
            publish(mqtt_settings, f"{mqtt_settings.root}/flood/{EXPO}/telemetry",
                    orjson.dumps(pack))
            wait_for(lambda: alerts, what="the booth's alert")
            alert = decode_alert(alerts[0].payload)
            assert alert is not None
            assert (alert.device_id, alert.state, alert.level) == (EXPO, AlertState.RAISED,
                                                                   AlertLevel.WARNING)
            assert alert.raised_at.startswith(time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(start_s + 3 * minute)))
            assert alert.title_en == "Flooding at Booth B2 water sensor: 25 cm"

            # A restart keeps the booth's alert: the device is restored with the state, before
            # its retained profile comes back.
            rules.stop()
            rules = RulesService(settings)
            assert EXPO in rules.registry
            rules.start()
            assert rules.subscribed.wait(10)
            assert [a.alert_id for a in rules.active()] == [alert.alert_id]

            unregister(mqtt_settings, EXPO)
            wait_for(lambda: EXPO not in rules.registry, what="the device gone from the rules")
            # ... and removing the device withdraws its alert from the screens.
            cleared = wait_for(lambda: [a for m in alerts if (a := decode_alert(m.payload))
                                        and a.state is AlertState.CLEARED],
                               what="the booth's alert withdrawn")
            assert [a.alert_id for a in cleared] == [alert.alert_id]
            assert cleared[0].message_en == "The sensor was removed from the exhibit."
            assert alerts[-1].payload == b""  # the retained alert is gone too
            assert rules.active() == []
    finally:
        rules.stop()
