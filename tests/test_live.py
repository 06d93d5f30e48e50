"""The live stream end to end: a real Mosquitto, the real api served by uvicorn on a free
port, real WebSocket clients (``websockets``) and Server-Sent Events over httpx."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from api.live import LiveHub, shutdown_streams
from api.main import create_app
from launcher.servers import Mosquitto, free_port
from smartcity.alerts import Alert, AlertLevel, AlertState, encode_alert
from smartcity.city import load_city
from smartcity.control import SimulatorState, encode_state, state_topic
from smartcity.models import Source
from smartcity.registry import DeviceInfo, Registry
from smartcity.settings import ApiSettings, InfluxSettings, LiveSettings, MqttSettings
from smartcity.topics import Domain, alert_topic, profile_topic, status_topic, telemetry_topic
from tests.mqtt import close, publish, wait_for
from tests.mqtt import connect as mqtt_connect

pytestmark = pytest.mark.servers

TS = 1_790_000_000_000  # a reading's own (simulated) time
METRIC = {Domain.HOME: "power_w", Domain.TRAFFIC: "speed_kmh", Domain.FLOOD: "water_level_cm",
          Domain.WEATHER: "rain_mm_h"}
FAST = LiveSettings(tick_s=0.02)


# --- the api, served for real ------------------------------------------------------------

class _Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        shutdown_streams(self.config.app)  # as `smartcity api` does
        await super().shutdown(sockets)


@dataclass
class Api:
    port: int
    app: FastAPI
    mqtt: MqttSettings
    registry: Registry

    @property
    def root(self) -> str:
        return self.mqtt.root

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/live" + (f"?{query}" if query else "")

    @property
    def hub(self) -> LiveHub:
        hub: LiveHub = self.app.state.live
        return hub

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f"{self.url}/api/v1/live/stats", timeout=10).json()
        return stats

    def reading(self, device_id: str, seq: int, value: float = 1.0, **extra: Any) -> None:
        publish(self.mqtt, *self.reading_message(device_id, seq, value, **extra))

    def reading_message(self, device_id: str, seq: int, value: float = 1.0,
                        **extra: Any) -> tuple[str, bytes]:
        device = self.registry.get(device_id)
        domain = device.domain if device else Domain.HOME
        body = {"ts": TS + seq, "seq": seq, "source": "simulated",
                **(extra or {METRIC[domain]: value})}
        return str(telemetry_topic(domain, device_id, self.root)), orjson.dumps(body)


@contextmanager
def serve(mqtt_settings: MqttSettings, registry: Registry,
          live: LiveSettings = FAST) -> Iterator[Api]:
    # The live stream needs no database: InfluxDB is left unreachable.
    settings = ApiSettings(mqtt=mqtt_settings,
                           influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
                           live=live)
    app = create_app(settings, registry)
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                    lifespan="on"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the api to start")
        api = Api(port, app, mqtt_settings, registry)
        # Subscribed once a message sent now comes back through the hub.
        probe = f"{mqtt_settings.root}/flood/probe/telemetry"

        def subscribed() -> bool:
            publish(mqtt_settings, probe, b"probe", qos=0)
            return api.hub.received > 0

        wait_for(subscribed, what="the hub to subscribe")
        yield api
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive(), "the api did not stop"


@pytest.fixture
def api(mqtt_settings: MqttSettings) -> Iterator[Api]:
    with serve(mqtt_settings, load_city().registry()) as running:
        yield running


# --- clients -----------------------------------------------------------------------------

def recv(ws: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(ws.recv(timeout=timeout))
    return message


def next_of(ws: ClientConnection, *types: str, timeout: float = 15) -> dict[str, Any]:
    """The next message of one of ``types`` (pings skipped)."""
    while True:
        message = recv(ws, timeout)
        if message["type"] in types:
            return message
        assert message["type"] == "ping", message


def readings_until(ws: ClientConnection, last: Callable[[dict[str, Any]], bool],
                   timeout: float = 15) -> list[dict[str, Any]]:
    """Every non-ping message up to and including the first reading ``last`` accepts."""
    out = []
    while True:
        message = recv(ws, timeout)
        if message["type"] == "ping":
            continue
        out.append(message)
        if message["type"] == "reading" and last(message):
            return out


def snapshot(api: Api, query: str = "") -> dict[str, Any]:
    with connect(api.ws_url(query)) as ws:
        return recv(ws)


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parse ``text/event-stream``: one dict per event, comment or retry line."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


class Reader(threading.Thread):
    """A WebSocket client that keeps reading, as a screen does."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.closed: ConnectionClosed | None = None

    def run(self) -> None:
        try:
            while True:
                self.messages.append(orjson.loads(self.ws.recv()))
        except ConnectionClosed as e:
            self.closed = e

    def stop(self) -> None:
        self.ws.close()
        self.join(10)


def make_alert(root_device: str = "flood-thao-dien", state: AlertState = AlertState.RAISED,
               stamp: str = "20260601t010000000z") -> Alert:
    cleared = "2026-06-01T02:00:00.000Z" if state is AlertState.CLEARED else None
    return Alert(alert_id=f"flood_depth_{root_device}_{stamp}", domain=Domain.FLOOD,
                 rule="flood_depth", device_id=root_device, site=root_device, ward="an-khanh",
                 level=AlertLevel.WARNING, state=state, source=Source.SIMULATED,
                 raised_at="2026-06-01T01:00:00.000Z",
                 updated_at=cleared or "2026-06-01T01:00:00.000Z", cleared_at=cleared,
                 metric="water_level_cm", value=21.5, threshold=15, unit="cm",
                 title_vi="Ngập tại Thảo Điền", title_en="Flooding at Thao Dien",
                 message_vi="Ngập 21,5 cm", message_en="Flooding 21.5 cm")


def alert_json(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="json", exclude_none=True)


# --- snapshot and events -----------------------------------------------------------------

def test_snapshot_on_connect(api: Api, mqtt_settings: MqttSettings) -> None:
    root = api.root
    api.reading("flood-thao-dien", 5, 12.5)
    publish(mqtt_settings, str(status_topic("flood", "flood-thao-dien", root)),
            b'{"state":"online","ts":1790000000000}', retain=True)
    publish(mqtt_settings, str(status_topic("traffic", "saigon-bridge", root)),
            b'{"state":"offline"}', retain=True)
    alert = make_alert()
    publish(mqtt_settings, str(alert_topic("flood", alert.alert_id, root)), encode_alert(alert),
            retain=True)
    state = SimulatorState(running=True, scenario="rush-hour", speed=60.0, sim_time=TS,
                           updated=TS)
    publish(mqtt_settings, str(state_topic(root)), encode_state(state), retain=True)

    def full() -> dict[str, Any] | None:
        s = snapshot(api)
        return s if s["readings"] and len(s["statuses"]) == 2 and s["alerts"] and \
            s["simulation"] else None

    snap = wait_for(full, what="a full snapshot")
    assert snap is not None
    assert snap["type"] == "snapshot" and isinstance(snap["time"], int)
    assert snap["devices"] == [d.model_dump(mode="json") for d in api.registry]
    assert snap["readings"] == [{
        "type": "reading", "device_id": "flood-thao-dien", "domain": "flood", "ts": TS + 5,
        "seq": 5, "source": "simulated", "metrics": {"water_level_cm": 12.5},
        "received": snap["readings"][0]["received"]}]
    assert sorted(snap["statuses"], key=lambda s: s["device_id"]) == [
        {"type": "status", "device_id": "flood-thao-dien", "domain": "flood",
         "state": "online", "ts": 1_790_000_000_000},
        {"type": "status", "device_id": "saigon-bridge", "domain": "traffic",
         "state": "offline", "ts": None}]
    assert snap["alerts"] == [alert_json(alert)]
    assert snap["simulation"] == state.model_dump(mode="json")
    # A reading replaces the device's previous one in the snapshot.
    api.reading("flood-thao-dien", 6, 13.0)
    wait_for(lambda: [r["seq"] for r in snapshot(api)["readings"]] == [6],
             what="the newer reading in the snapshot")


def test_events_after_connect_arrive_as_they_come(api: Api, mqtt_settings: MqttSettings) -> None:
    root = api.root
    with connect(api.ws_url()) as ws:
        assert recv(ws)["type"] == "snapshot"
        api.reading("tide-phu-an", 1, river_level_cm=180.5, battery_pct=90)
        got = next_of(ws, "reading")
        assert got == {"type": "reading", "device_id": "tide-phu-an", "domain": "flood",
                       "ts": TS + 1, "seq": 1, "source": "simulated",
                       "metrics": {"river_level_cm": 180.5, "battery_pct": 90},
                       "received": got["received"]}
        publish(mqtt_settings, str(status_topic("traffic", "saigon-bridge", root)),
                b'{"state":"offline"}', retain=True)
        assert next_of(ws, "status") == {"type": "status", "device_id": "saigon-bridge",
                                         "domain": "traffic", "state": "offline", "ts": None}
        state = SimulatorState(running=True, scenario="king-tide-storm", paused=True)
        publish(mqtt_settings, str(state_topic(root)), encode_state(state), retain=True)
        assert next_of(ws, "simulation") == {"type": "simulation",
                                             **state.model_dump(mode="json")}
        # The simulator's stopped state (an empty retained message) reads as not running.
        publish(mqtt_settings, str(state_topic(root)), b"", retain=True)
        assert next_of(ws, "simulation")["running"] is False
        # A status of a device nobody registered is not forwarded.
        publish(mqtt_settings, str(status_topic("home", "nobody", root)), b'{"state":"online"}',
                retain=True)
        api.reading("rain-sai-gon", 2)
        assert next_of(ws, "status", "reading")["device_id"] == "rain-sai-gon"
    # The status tracker on the same connection still serves the rest of the api.
    edge = api.hub.edge
    assert edge.connected
    assert edge.state("saigon-bridge").state.value == "offline"  # type: ignore[union-attr]
    assert set(edge.states()) == {"saigon-bridge", "nobody"}
    assert edge.simulator() is None
    assert edge.rejected == 0  # telemetry is not the tracker's business


def test_sse_stream(api: Api) -> None:
    url = f"{api.url}/api/v1/live"
    api.reading("home-thao-dien", 1)
    wait_for(lambda: snapshot(api)["readings"], what="a reading in the snapshot")
    with httpx.stream("GET", url, params={"domain": "home"}, timeout=15) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = sse_events(response.iter_lines())
        assert next(events) == {"retry": "3000"}
        first = next(events)
        assert first["event"] == "snapshot"
        snap = orjson.loads(first["data"])
        assert {d["domain"] for d in snap["devices"]} == {"home"}
        assert [r["device_id"] for r in snap["readings"]] == ["home-thao-dien"]
        api.reading("flood-thao-dien", 2)  # filtered out
        api.reading("home-thao-dien", 3, 2500.0)
        event = next(e for e in events if "event" in e)
        assert event["event"] == "reading"
        data = orjson.loads(event["data"])
        assert (data["device_id"], data["seq"], data["metrics"]) == ("home-thao-dien", 3,
                                                                    {"power_w": 2500.0})


def test_heartbeat(mqtt_settings: MqttSettings) -> None:
    with serve(mqtt_settings, load_city().registry(), LiveSettings(heartbeat_s=0.2)) as api:
        with connect(api.ws_url()) as ws:
            assert recv(ws)["type"] == "snapshot"
            ping = recv(ws)
            assert ping["type"] == "ping" and isinstance(ping["time"], int)
        with httpx.stream("GET", f"{api.url}/api/v1/live", timeout=15) as response:
            events = sse_events(response.iter_lines())
            assert next(e for e in events if "comment" in e) == {"comment": "ping"}


# --- filters -----------------------------------------------------------------------------

DEVICES = ["flood-thao-dien", "tide-phu-an", "saigon-bridge", "rain-sai-gon", "home-thao-dien"]


@pytest.mark.parametrize(("query", "wanted"), [
    ("domain=flood", {"flood-thao-dien", "tide-phu-an"}),
    ("domain=flood&domain=weather", {"flood-thao-dien", "tide-phu-an", "rain-sai-gon"}),
    ("device=saigon-bridge&device=home-thao-dien", {"saigon-bridge", "home-thao-dien"}),
    ("topic={root}/traffic/%2B/telemetry", {"saigon-bridge"}),
    ("topic={root}/%2B/tide-phu-an/%23&topic={root}/weather/%23",
     {"tide-phu-an", "rain-sai-gon"}),
    ("domain=flood&device=tide-phu-an&device=saigon-bridge", {"tide-phu-an"}),
])
def test_filters(api: Api, query: str, wanted: set[str]) -> None:
    query = query.format(root=api.root)
    with connect(api.ws_url(query)) as ws:
        snap = recv(ws)
        in_snapshot = {d["device_id"] for d in snap["devices"]}
        assert in_snapshot & set(DEVICES) == wanted
        assert in_snapshot <= {d.device_id for d in api.registry}
        for device_id in DEVICES:
            api.reading(device_id, 1)
        marker = sorted(wanted)[0]
        api.reading(marker, 2)
        got = readings_until(ws, lambda m: m["seq"] == 2)
    assert {m["device_id"] for m in got if m["seq"] == 1} == wanted
    assert {m["type"] for m in got} == {"reading"}


@pytest.mark.parametrize(("params", "field", "says"), [
    ({"domain": "sea"}, "domain", "'sea' is not one of"),
    ({"device": "Not An Id"}, "device", "must match"),
    ({"topic": "city/#/x"}, "topic", "'#' must be the last level"),
])
def test_bad_filters_are_refused(api: Api, params: dict[str, str], field: str,
                                 says: str) -> None:
    query = str(httpx.QueryParams(params))
    with connect(api.ws_url(query)) as ws, pytest.raises(ConnectionClosed) as closed:
        recv(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith(f"invalid {field}: ")
    assert says in closed.value.rcvd.reason

    response = httpx.get(f"{api.url}/api/v1/live", params=params, timeout=10)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", field] and says in problem["msg"]


# --- alerts ------------------------------------------------------------------------------

def test_alert_raised_and_cleared(api: Api, mqtt_settings: MqttSettings) -> None:
    raised = make_alert()
    topic = str(alert_topic("flood", raised.alert_id, api.root))
    with connect(api.ws_url()) as ws:
        assert recv(ws)["alerts"] == []
        publish(mqtt_settings, topic, encode_alert(raised), retain=True)
        assert next_of(ws, "alert") == {"type": "alert", **alert_json(raised)}
        assert snapshot(api)["alerts"] == [alert_json(raised)]
        # As the rules service clears: the final event, then an empty retained message.
        cleared = make_alert(state=AlertState.CLEARED)
        publish(mqtt_settings, topic, encode_alert(cleared))
        publish(mqtt_settings, topic, b"", retain=True)
        assert next_of(ws, "alert") == {"type": "alert", **alert_json(cleared)}
        assert snapshot(api)["alerts"] == []

        # An empty retained message alone takes an alert out of the active set, quietly.
        other = make_alert("flood-nguyen-huu-canh")
        other_topic = str(alert_topic("flood", other.alert_id, api.root))
        publish(mqtt_settings, other_topic, encode_alert(other), retain=True)
        assert next_of(ws, "alert")["alert_id"] == other.alert_id
        publish(mqtt_settings, other_topic, b"", retain=True)
        api.reading("flood-nguyen-huu-canh", 1)
        assert next_of(ws, "alert", "reading")["type"] == "reading"
        assert snapshot(api)["alerts"] == []

        # An alert on another alert's topic is refused.
        before = api.stats()["invalid"]
        publish(mqtt_settings, other_topic, encode_alert(raised), retain=True)
        wait_for(lambda: api.stats()["invalid"] == before + 1, what="the alert refused")
        publish(mqtt_settings, other_topic, b"", retain=True)


def test_retained_alerts_reach_a_hub_that_starts_later(mqtt_settings: MqttSettings) -> None:
    alert = make_alert()
    publish(mqtt_settings, str(alert_topic("flood", alert.alert_id, mqtt_settings.root)),
            encode_alert(alert), retain=True)
    with serve(mqtt_settings, load_city().registry()) as api:
        assert wait_for(lambda: snapshot(api)["alerts"], what="the retained alert") == [
            alert_json(alert)]


# --- exhibitor devices -------------------------------------------------------------------

EXPO = DeviceInfo(device_id="expo-1", domain=Domain.HOME, name="Nhà thông minh của khách",
                  name_en="Visitor's smart home", ward="an-khanh", site="expo-1", lat=10.80,
                  lon=106.73, source=Source.LIVE, metrics=("temperature_c",))


def test_device_profiles_add_update_and_remove(api: Api, mqtt_settings: MqttSettings) -> None:
    topic = str(profile_topic("expo-1", api.root))
    with connect(api.ws_url()) as ws:
        assert "expo-1" not in {d["device_id"] for d in recv(ws)["devices"]}
        before = api.stats()["invalid"]
        api.reading("expo-1", 1, temperature_c=30.0)  # not registered yet
        wait_for(lambda: api.stats()["invalid"] == before + 1, what="the unknown device refused")

        publish(mqtt_settings, topic, EXPO.model_dump_json(), retain=True)
        assert next_of(ws, "device") == {"type": "device", "action": "added",
                                         "device": EXPO.model_dump(mode="json")}
        assert api.registry.get("expo-1") == EXPO
        api.reading("expo-1", 2, temperature_c=30.5)
        reading = next_of(ws, "reading")
        assert (reading["device_id"], reading["domain"], reading["metrics"]) == (
            "expo-1", "home", {"temperature_c": 30.5})
        assert "expo-1" in {d["device_id"] for d in snapshot(api)["devices"]}

        api.reading("expo-1", 3, humidity_pct=70.0)  # a metric it did not declare
        renamed = EXPO.model_copy(update={"name_en": "A visitor's smart home"})
        publish(mqtt_settings, topic, renamed.model_dump_json(), retain=True)
        assert next_of(ws, "device", "reading") == {
            "type": "device", "action": "updated", "device": renamed.model_dump(mode="json")}

        publish(mqtt_settings, topic, b"", retain=True)
        assert next_of(ws, "device") == {"type": "device", "action": "removed",
                                         "device": renamed.model_dump(mode="json")}
        assert api.registry.get("expo-1") is None
        api.reading("expo-1", 4, temperature_c=31.0)  # gone again
        api.reading("rain-sai-gon", 1)
        assert next_of(ws, "reading", "device")["device_id"] == "rain-sai-gon"
        snap = snapshot(api)
        assert "expo-1" not in {d["device_id"] for d in snap["devices"]}
        assert "expo-1" not in {r["device_id"] for r in snap["readings"]}


def test_a_vendor_devices_own_topics_reach_the_stream_as_readings_and_a_format_change_applies(
        api: Api, mqtt_settings: MqttSettings) -> None:
    esp = EXPO.model_copy(update={"device_id": "expo-esp", "site": "expo-esp",
                                  "format": "esphome",
                                  "metrics": ("temperature_c", "humidity_pct")})
    topic = str(profile_topic("expo-esp", api.root))
    prefix = f"{api.root}/dev/expo-esp"
    with connect(api.ws_url()) as ws:
        recv(ws)
        publish(mqtt_settings, topic, esp.model_dump_json(), retain=True)
        assert next_of(ws, "device")["action"] == "added"
        publish(mqtt_settings, f"{prefix}/sensor/booth_temperature/state", b"29.4")
        reading = next_of(ws, "reading")
        assert (reading["device_id"], reading["metrics"]) == ("expo-esp", {"temperature_c": 29.4})
        # reflashed with Tasmota: the new format applies to the next message
        tasmota = esp.model_copy(update={"format": "tasmota"})
        publish(mqtt_settings, topic, tasmota.model_dump_json(), retain=True)
        assert next_of(ws, "device")["action"] == "updated"
        publish(mqtt_settings, f"{prefix}/tele/expo-esp/SENSOR",
                b'{"AM2301": {"Temperature": 84.2, "Humidity": 70}, "TempUnit": "F"}')
        reading = next_of(ws, "reading")
        assert reading["metrics"] == {"temperature_c": 29.0, "humidity_pct": 70.0}
        publish(mqtt_settings, topic, b"", retain=True)
        assert next_of(ws, "device")["action"] == "removed"


def test_a_profile_never_replaces_or_removes_a_city_device(api: Api,
                                                           mqtt_settings: MqttSettings) -> None:
    city_device = api.registry.get("flood-thao-dien")
    topic = str(profile_topic("flood-thao-dien", api.root))
    impostor = EXPO.model_copy(update={"device_id": "flood-thao-dien", "site": "flood-thao-dien"})
    before = api.stats()["invalid"]
    with connect(api.ws_url()) as ws:
        recv(ws)
        publish(mqtt_settings, topic, impostor.model_dump_json(), retain=True)
        publish(mqtt_settings, topic, b"", retain=True)
        # A profile that does not say 'live', or names another device, is refused too.
        simulated = EXPO.model_copy(update={"source": Source.SIMULATED})
        publish(mqtt_settings, str(profile_topic("expo-1", api.root)),
                simulated.model_dump_json(), retain=True)
        publish(mqtt_settings, str(profile_topic("expo-2", api.root)), EXPO.model_dump_json(),
                retain=True)
        wait_for(lambda: api.stats()["invalid"] == before + 4, what="four profiles refused")
        api.reading("flood-thao-dien", 1)
        assert next_of(ws, "reading", "device")["device_id"] == "flood-thao-dien"
    assert api.registry.get("flood-thao-dien") == city_device
    assert api.registry.get("expo-1") is None and api.registry.get("expo-2") is None
    for device_id in ("expo-1", "expo-2"):
        publish(mqtt_settings, str(profile_topic(device_id, api.root)), b"", retain=True)


# --- invalid readings --------------------------------------------------------------------

def test_invalid_readings_are_counted_not_forwarded(api: Api) -> None:
    root = api.root
    flood = str(telemetry_topic("flood", "flood-thao-dien", root))
    bad = [
        (flood, b"not json"),
        (flood, b"[1, 2]"),
        (flood, orjson.dumps({"ts": TS, "seq": 1, "water_level": 3})),  # no unit
        (flood, orjson.dumps({"ts": TS, "seq": 1, "water_level_cm": "3"})),  # a string
        (flood, orjson.dumps({"ts": TS, "seq": 1, "water_level_cm": 5000})),  # implausible
        (flood, orjson.dumps({"ts": TS, "seq": 1})),  # no metric
        api.reading_message("nobody", 1, power_w=1.0),  # unknown device
        (str(telemetry_topic("traffic", "flood-thao-dien", root)),  # wrong domain
         orjson.dumps({"ts": TS, "seq": 1, "speed_kmh": 30})),
        (f"{root}/sea/flood-thao-dien/telemetry", orjson.dumps({"ts": TS, "seq": 1})),
    ]
    before = api.stats()
    with connect(api.ws_url()) as ws:
        recv(ws)
        client = mqtt_connect(api.mqtt)
        try:
            for topic, payload in bad:
                client.publish(topic, payload, qos=1).wait_for_publish(10)
            client.publish(*api.reading_message("flood-thao-dien", 7, 8.5),
                           qos=1).wait_for_publish(10)
        finally:
            close(client)
        got = readings_until(ws, lambda m: m["seq"] == 7)
    assert [(m["type"], m["device_id"], m["metrics"]) for m in got] == [
        ("reading", "flood-thao-dien", {"water_level_cm": 8.5})]
    after = api.stats()
    assert after["invalid"] - before["invalid"] == len(bad)
    assert after["readings"] - before["readings"] == 1
    assert [r["seq"] for r in snapshot(api)["readings"]] == [7]


# --- many screens, slow screens ----------------------------------------------------------

def test_a_hundred_clients_all_receive_a_reading(api: Api) -> None:
    async def scenario() -> list[dict[str, Any]]:
        clients = await asyncio.gather(*(aconnect(api.ws_url()) for _ in range(100)))
        try:
            snaps = [orjson.loads(m) for m in await asyncio.gather(*(c.recv()
                                                                    for c in clients))]
            assert {s["type"] for s in snaps} == {"snapshot"}
            await asyncio.to_thread(api.reading, "flood-thao-dien", 42, 33.3)

            async def first_reading(c: Any) -> dict[str, Any]:
                while True:
                    message: dict[str, Any] = orjson.loads(await c.recv())
                    if message["type"] == "reading":
                        return message

            return list(await asyncio.wait_for(
                asyncio.gather(*(first_reading(c) for c in clients)), 60))
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    got = asyncio.run(scenario())
    assert len(got) == 100
    assert {(m["device_id"], m["seq"], m["metrics"]["water_level_cm"]) for m in got} == {
        ("flood-thao-dien", 42, 33.3)}
    wait_for(lambda: api.stats()["clients"] == 0, what="the clients to be gone")
    assert api.stats()["connections"] >= 100


def stalled_client(api: Api, kind: str) -> socket.socket:
    """A screen that connects and then never reads again, with a small receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", api.port))
    if kind == "ws":
        request = ("GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
    else:
        request = ("GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Accept: text/event-stream\r\n\r\n")
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.split(b"\r\n")[0] in (b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 200 OK")
    return sock


@pytest.mark.parametrize("kind", ["ws", "sse"])
def test_a_stalled_client_is_coalesced_then_dropped_and_holds_nobody_back(
        mqtt_settings: MqttSettings, kind: str) -> None:
    registry = load_city(scale=20).registry()  # 320 devices: many distinct readings
    devices = list(registry)
    live = LiveSettings(tick_s=0.02, buffer=1000, behind_limit_s=1.0, close_grace_s=0.5,
                        delivery_budget=10**9)
    with ExitStack() as stack:
        api = stack.enter_context(serve(mqtt_settings, registry, live))
        stack.enter_context(stalled_client(api, kind))
        fast = Reader(stack.enter_context(connect(api.ws_url())))
        fast.start()
        stack.callback(fast.stop)
        wait_for(lambda: api.stats()["clients"] == 2, what="both clients connected")
        publisher = mqtt_connect(api.mqtt)
        stack.callback(close, publisher)

        def last_of_round(seq: int) -> bool:
            return any(m["type"] == "reading" and m["seq"] == seq and
                       m["device_id"] == devices[-1].device_id for m in fast.messages[-400:])

        rounds = 0
        while api.stats()["dropped_clients"] == 0:
            rounds += 1
            assert rounds < 2000, "the stalled client was never dropped"
            for d in devices:
                publisher.publish(*api.reading_message(d.device_id, rounds, float(rounds)),
                                  qos=0)
            # The fast screen keeps up: it has the whole round before the next one is sent.
            wait_for(lambda n=rounds: last_of_round(n), timeout=30,  # type: ignore[misc]
                     what=f"round {rounds}")
            assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200

        stats = api.stats()
        assert stats["dropped_clients"] == 1 and stats["clients"] == 1
        assert stats["coalesced"] > 0  # the stalled one got newest values before it went
        readings = [m for m in fast.messages if m["type"] == "reading"]
        assert len(readings) == rounds * len(devices)  # the fast one missed nothing
        assert fast.closed is None
        # and it is still served
        api.reading(devices[0].device_id, 10_000, 1.0)
        wait_for(lambda: fast.messages[-1].get("seq") == 10_000, what="a reading after")


# --- stopping ----------------------------------------------------------------------------

def test_the_api_stops_promptly_with_streams_open(mosquitto: Mosquitto, root: str,
                                                  subprocess_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    port = free_port()
    env = subprocess_env | {"SMARTCITY_MQTT_URL": mosquitto.url, "SMARTCITY_MQTT_ROOT": root,
                            "SMARTCITY_INFLUX_URL": f"http://127.0.0.1:{free_port()}"}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "api", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                return False

        wait_for(up, timeout=30, what="the api to serve")
        with connect(f"ws://127.0.0.1:{port}/api/v1/live") as ws, \
                httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/live",
                             timeout=30) as response:
            assert recv(ws)["type"] == "snapshot"
            events = sse_events(response.iter_lines())
            assert next(events) == {"retry": "3000"}
            assert next(events)["event"] == "snapshot"
            proc.send_signal(signal.SIGTERM)
            assert [e for e in events if "event" in e] == []  # the stream ends
            with pytest.raises(ConnectionClosed) as closed:
                recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()
