"""The live stream's pure parts: filters, message encoding, per-client coalescing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.link import MqttLink
from api.live import GOING_AWAY, TRY_AGAIN_LATER, LiveHub
from api.live.buffer import Outbox, Pacer
from api.live.filter import MAX_VALUES, LiveFilter, parse_filter
from api.live.wire import (
    DeviceAction,
    Event,
    EventType,
    alert_event,
    device_event,
    ping_event,
    reading_event,
    simulation_event,
    snapshot_event,
    status_event,
)
from smartcity.alerts import Alert, AlertLevel, AlertState
from smartcity.city import load_city
from smartcity.codec import Reading
from smartcity.control import SimulatorState
from smartcity.errors import ContractError
from smartcity.models import DeviceState, DeviceStatus, Source
from smartcity.registry import DeviceInfo
from smartcity.settings import LiveSettings, MqttSettings
from smartcity.topics import Domain

REGISTRY = load_city().registry()
ROOT = "city"


def reading(device_id: str = "flood-thao-dien", seq: int = 1, **metrics: float) -> Event:
    device = REGISTRY.get(device_id)
    assert device is not None
    r = Reading(device.domain, device_id, 1_790_000_000_000 + seq, seq, Source.SIMULATED,
                metrics or {"water_level_cm": float(seq)})
    return reading_event(r, f"{ROOT}/{device.domain.value}/{device_id}/telemetry", 1234)


def alert(device_id: str = "flood-thao-dien", state: AlertState = AlertState.RAISED,
          alert_id: str = "flood_depth_flood-thao-dien_20260601t010000000z") -> Alert:
    return Alert(alert_id=alert_id, domain=Domain.FLOOD, rule="flood_depth", device_id=device_id,
                 site=device_id, ward="an-khanh", level=AlertLevel.WARNING, state=state,
                 source=Source.SIMULATED, raised_at="2026-06-01T01:00:00.000Z",
                 updated_at="2026-06-01T01:00:00.000Z", metric="water_level_cm", value=21.5,
                 threshold=15, unit="cm", title_vi="Ngập", title_en="Flooding",
                 message_vi="Ngập 21,5 cm", message_en="Flooding 21.5 cm")


def alert_ev(a: Alert | None = None) -> Event:
    a = a or alert()
    return alert_event(a, f"{ROOT}/alerts/{a.domain.value}/{a.alert_id}")


LIVE_DEVICE = DeviceInfo(device_id="expo-1", domain=Domain.HOME, name="Nhà triển lãm",
                         name_en="Expo home", ward="an-khanh", site="expo-1", lat=10.8,
                         lon=106.7, source=Source.LIVE, metrics=("temperature_c",))


# --- messages ----------------------------------------------------------------------------

def test_reading_message() -> None:
    event = reading("flood-thao-dien", 7, water_level_cm=12.5, battery_pct=80)
    assert orjson.loads(event.data) == {
        "type": "reading", "device_id": "flood-thao-dien", "domain": "flood",
        "ts": 1_790_000_000_007, "seq": 7, "source": "simulated",
        "metrics": {"water_level_cm": 12.5, "battery_pct": 80}, "received": 1234}
    assert event.text == event.data.decode()
    assert event.sse == b"event: reading\ndata: " + event.data + b"\n\n"


def test_status_alert_simulation_device_and_ping_messages() -> None:
    status = status_event(Domain.TRAFFIC, "saigon-bridge",
                          DeviceStatus(state=DeviceState.OFFLINE, ts=1_790_000_000_000),
                          f"{ROOT}/traffic/saigon-bridge/status")
    assert orjson.loads(status.data) == {"type": "status", "device_id": "saigon-bridge",
                                         "domain": "traffic", "state": "offline",
                                         "ts": 1_790_000_000_000}
    a = alert()
    event = alert_ev(a)
    assert orjson.loads(event.data) == {"type": "alert",
                                        **a.model_dump(mode="json", exclude_none=True)}
    assert event.action == "raised"
    state = SimulatorState(running=True, scenario="rush-hour", speed=60.0)
    sim = simulation_event(state, f"{ROOT}/control/state")
    assert orjson.loads(sim.data) == {"type": "simulation", **state.model_dump(mode="json")}
    added = device_event(DeviceAction.ADDED, LIVE_DEVICE, ROOT)
    assert orjson.loads(added.data) == {"type": "device", "action": "added",
                                        "device": LIVE_DEVICE.model_dump(mode="json")}
    assert orjson.loads(ping_event(99).data) == {"type": "ping", "time": 99}
    assert ping_event(99).sse == b": ping\n\n"


def test_snapshot_embeds_each_event_once_encoded() -> None:
    r = reading()
    s = status_event(Domain.FLOOD, "flood-thao-dien", DeviceStatus(state=DeviceState.ONLINE),
                     f"{ROOT}/flood/flood-thao-dien/status")
    a = alert()
    sim = SimulatorState(running=False)
    snap = snapshot_event(5, [LIVE_DEVICE], [r], [s], [alert_ev(a)],
                          simulation_event(sim, f"{ROOT}/control/state"))
    assert orjson.loads(snap.data) == {
        "type": "snapshot", "time": 5, "devices": [LIVE_DEVICE.model_dump(mode="json")],
        "readings": [orjson.loads(r.data)], "statuses": [orjson.loads(s.data)],
        "alerts": [a.model_dump(mode="json", exclude_none=True)],
        "simulation": sim.model_dump(mode="json")}
    empty = orjson.loads(snapshot_event(5, [], [], [], [], None).data)
    assert empty["simulation"] is None and empty["readings"] == []


# --- filters -----------------------------------------------------------------------------

def test_parse_filter() -> None:
    flt = parse_filter(["flood", "home"], ["flood-thao-dien"], [f"{ROOT}/+/+/telemetry"])
    assert flt.domains == {"flood", "home"}
    assert flt.devices == {"flood-thao-dien"}
    assert [str(t) for t in flt.topics] == [f"{ROOT}/+/+/telemetry"]
    assert parse_filter().everything


@pytest.mark.parametrize(("domains", "devices", "topics", "field", "says"), [
    (["sea"], [], [], "domain", "'sea' is not one of"),
    ([], ["Bad Id"], [], "device", "must match"),
    ([], [], ["city/#/x"], "topic", "'#' must be the last level"),
    ([], [], ["city/fl+"], "topic", "a wildcard must fill a whole level"),
    ([], [], ["$share/g/city/#"], "topic", "shared subscription"),
    (["home"] * (MAX_VALUES + 1), [], [], "domain", f"at most {MAX_VALUES}"),
])
def test_parse_filter_names_the_parameter_at_fault(domains: list[str], devices: list[str],
                                                   topics: list[str], field: str,
                                                   says: str) -> None:
    with pytest.raises(ContractError) as e:
        parse_filter(domains, devices, topics)
    assert e.value.problems[0].field == field
    assert says in e.value.problems[0].message


SIM = simulation_event(SimulatorState(running=True), f"{ROOT}/control/state")
PING = ping_event(1)


@pytest.mark.parametrize(("flt", "event", "wanted"), [
    (LiveFilter(), reading(), True),
    (LiveFilter(domains=frozenset({"flood"})), reading(), True),
    (LiveFilter(domains=frozenset({"home"})), reading(), False),
    (LiveFilter(devices=frozenset({"flood-thao-dien"})), reading(), True),
    (LiveFilter(devices=frozenset({"tide-phu-an"})), reading(), False),
    (LiveFilter(domains=frozenset({"flood"}), devices=frozenset({"tide-phu-an"})), reading(),
     False),
    (parse_filter(topics=[f"{ROOT}/flood/#"]), reading(), True),
    (parse_filter(topics=[f"{ROOT}/+/+/status"]), reading(), False),
    (parse_filter(topics=[f"{ROOT}/+/+/status", f"{ROOT}/+/+/telemetry"]), reading(), True),
    (LiveFilter(domains=frozenset({"flood"})), alert_ev(), True),
    (LiveFilter(devices=frozenset({"saigon-bridge"})), alert_ev(), False),
    (parse_filter(topics=[f"{ROOT}/alerts/#"]), alert_ev(), True),
    # the simulation belongs to no device: domain and device do not exclude it, topic does
    (LiveFilter(domains=frozenset({"home"})), SIM, True),
    (parse_filter(topics=[f"{ROOT}/flood/#"]), SIM, False),
    (parse_filter(topics=[f"{ROOT}/control/#"]), SIM, True),
    # a device matches by any of its topics
    (parse_filter(topics=[f"{ROOT}/home/#"]), device_event(DeviceAction.ADDED, LIVE_DEVICE,
                                                           ROOT), True),
    (parse_filter(topics=[f"{ROOT}/devices/+/profile"]),
     device_event(DeviceAction.REMOVED, LIVE_DEVICE, ROOT), True),
    (LiveFilter(domains=frozenset({"flood"})), device_event(DeviceAction.ADDED, LIVE_DEVICE,
                                                            ROOT), False),
    (parse_filter(["home"], ["x"], [f"{ROOT}/none"]), PING, True),
])
def test_filter_accepts(flt: LiveFilter, event: Event, wanted: bool) -> None:
    assert flt.accepts(event) is wanted


# --- per-client outbox -------------------------------------------------------------------

def seqs(events: list[Event]) -> list[tuple[str | None, int]]:
    return [(e.device_id, orjson.loads(e.data)["seq"]) for e in events]


def test_outbox_keeps_everything_while_there_is_room() -> None:
    box = Outbox(4)
    for seq in (1, 2, 3):
        assert box.put(reading(seq=seq), now=0)
    assert len(box) == 3 and box.behind_since is None
    assert seqs(box.pop_many(10)) == [("flood-thao-dien", 1), ("flood-thao-dien", 2),
                                      ("flood-thao-dien", 3)]
    assert box.pop() is None


def test_full_outbox_replaces_a_devices_pending_reading_with_the_newest() -> None:
    box = Outbox(3)
    box.put(reading("flood-thao-dien", 1), now=0)
    box.put(reading("tide-phu-an", 1, river_level_cm=100), now=0)
    box.put(alert_ev(), now=0)
    assert box.put(reading("flood-thao-dien", 2), now=1)  # full: replaces seq 1 in place
    assert box.put(reading("tide-phu-an", 2, river_level_cm=101), now=2)
    assert box.coalesced == 2 and box.lost == 0 and box.behind_since == 1
    out = box.pop_many(10)
    assert seqs([e for e in out if e.kind is EventType.READING]) == [
        ("flood-thao-dien", 2), ("tide-phu-an", 2)]
    assert [e.kind for e in out] == [EventType.READING, EventType.READING, EventType.ALERT]


def test_full_outbox_drops_superseded_entries_before_refusing() -> None:
    box = Outbox(3)
    for seq in (1, 2, 3):  # room enough: all three kept, two of them superseded
        box.put(reading("flood-thao-dien", seq), now=0)
    assert box.put(alert_ev(), now=1)  # a new key: the superseded readings make way
    assert box.coalesced == 2
    assert [e.kind for e in box.pop_many(10)] == [EventType.READING, EventType.ALERT]


def test_full_outbox_with_nothing_to_coalesce_loses_the_event() -> None:
    box = Outbox(2)
    box.put(reading("flood-thao-dien"), now=0)
    box.put(reading("tide-phu-an", river_level_cm=3), now=0)
    assert not box.put(reading("rain-sai-gon", rain_mm_h=1), now=0)
    assert box.lost == 1 and len(box) == 2


def test_a_device_with_metrics_on_separate_topics_keeps_one_reading_per_metric() -> None:
    box = Outbox(2)
    box.put(reading("home-thao-dien", 1, temperature_c=30), now=0)
    box.put(reading("home-thao-dien", 1, humidity_pct=70), now=0)
    assert box.put(reading("home-thao-dien", 2, temperature_c=31), now=0)
    assert [orjson.loads(e.data)["metrics"] for e in box.pop_many(5)] == [
        {"temperature_c": 31}, {"humidity_pct": 70}]


def test_behind_since_lasts_until_the_outbox_drains_to_half() -> None:
    box = Outbox(4)
    for i, device in enumerate(("flood-thao-dien", "tide-phu-an", "rain-sai-gon",
                                "saigon-bridge")):
        box.put(reading(device, 1, **{"speed_kmh" if device == "saigon-bridge" else
                                      "rain_mm_h" if device == "rain-sai-gon" else
                                      "water_level_cm": float(i)}), now=0)
    box.put(reading("flood-thao-dien", 2), now=10.0)
    assert box.behind_for(12.5) == 2.5
    box.pop()
    assert box.behind_for(13) == 3.0  # three pending: still more than half
    box.pop()
    assert box.behind_since is None and box.behind_for(14) == 0.0


def tide(seq: int) -> Event:
    return reading("tide-phu-an", seq, river_level_cm=float(seq))


def rain(seq: int) -> Event:
    return reading("rain-sai-gon", seq, rain_mm_h=float(seq))


def test_pacer_lets_everything_through_within_its_allowance() -> None:
    pacer = Pacer()
    batch = [reading("flood-thao-dien", 1), reading("flood-thao-dien", 2)]
    assert pacer.offer(batch, allowance=2) == batch
    assert len(pacer) == 0 and pacer.coalesced == 0


def test_pacer_holds_readings_back_newest_per_device_each_in_turn() -> None:
    pacer = Pacer()
    out = pacer.offer([reading("flood-thao-dien", 1), tide(1), reading("flood-thao-dien", 2),
                       rain(1), reading("flood-thao-dien", 3)], allowance=1)
    # flood-thao-dien came first: it goes first, with its newest reading
    assert seqs(out) == [("flood-thao-dien", 3)]
    assert pacer.coalesced == 2 and len(pacer) == 2
    # a busy device does not jump the line: the others have their turn first
    out = pacer.offer([reading("flood-thao-dien", 4), tide(2)], allowance=2)
    assert seqs(out) == [("tide-phu-an", 2), ("rain-sai-gon", 1)]
    assert seqs(pacer.offer([], allowance=5)) == [("flood-thao-dien", 4)]
    assert len(pacer) == 0
    # with the line empty again, a batch within the allowance goes straight through
    assert seqs(pacer.offer([tide(3), tide(4)], allowance=2)) == [("tide-phu-an", 3),
                                                                  ("tide-phu-an", 4)]


# --- the hub's fan-out, driven by hand (its MQTT connection is never started) -----------

def hub(**settings: Any) -> LiveHub:
    return LiveHub(LiveSettings(**settings), load_city().registry(),
                   MqttLink(MqttSettings(root=ROOT)))


def feed(h: LiveHub, device_id: str, seq: int) -> None:
    device = REGISTRY.get(device_id)
    assert device is not None
    metric = {"flood": "water_level_cm", "weather": "rain_mm_h", "traffic": "speed_kmh",
              "home": "power_w"}[device.domain.value]
    h.receive(f"{ROOT}/{device.domain.value}/{device_id}/telemetry",
              orjson.dumps({"ts": 1_790_000_000_000 + seq, "seq": seq, metric: 1.0}), False)


def test_hub_paces_readings_within_its_budget() -> None:
    h = hub(delivery_budget=4)
    a, b = h.join(parse_filter()), h.join(parse_filter())
    for seq in (1, 2):
        for device_id in ("flood-thao-dien", "tide-phu-an", "rain-sai-gon"):
            feed(h, device_id, seq)
    h.tick(now=0)
    assert seqs(a.outbox.pop_many(10)) == [("flood-thao-dien", 2), ("tide-phu-an", 2)]
    assert len(b.outbox) == 2
    assert (h.stats().held, h.stats().coalesced) == (1, 3)
    h.tick(now=0.05)
    assert seqs(a.outbox.pop_many(10)) == [("rain-sai-gon", 2)]
    # the snapshot has every device's newest reading, paced or not
    snap = orjson.loads(h.snapshot(parse_filter()).data)
    assert sorted((r["device_id"], r["seq"]) for r in snap["readings"]) == [
        ("flood-thao-dien", 2), ("rain-sai-gon", 2), ("tide-phu-an", 2)]


def test_hub_judges_every_reading_in_order_up_to_its_limit_then_each_topics_newest() -> None:
    h = hub(decode_per_tick=3)
    a = h.join(parse_filter())
    for seq in (1, 2):
        feed(h, "flood-thao-dien", seq)
    feed(h, "tide-phu-an", 1)
    for seq in (2, 3, 4):  # past the limit: only the newest of each topic is judged
        feed(h, "tide-phu-an", seq)
    feed(h, "rain-sai-gon", 1)
    h.tick(now=0)
    assert seqs(a.outbox.pop_many(10)) == [("flood-thao-dien", 1), ("flood-thao-dien", 2),
                                           ("tide-phu-an", 1), ("tide-phu-an", 4),
                                           ("rain-sai-gon", 1)]
    assert (h.stats().readings, h.stats().coalesced) == (5, 2)
    feed(h, "tide-phu-an", 5)
    h.tick(now=0.05)  # a new tick judges one by one again
    assert seqs(a.outbox.pop_many(10)) == [("tide-phu-an", 5)]


def test_hub_halves_its_budget_when_most_clients_fall_behind() -> None:
    h = hub(delivery_budget=1000, buffer=1, behind_limit_s=60)
    a, b = h.join(parse_filter()), h.join(parse_filter())
    feed(h, "flood-thao-dien", 1)
    h.tick(now=0)
    feed(h, "flood-thao-dien", 2)
    h.tick(now=1)  # both full: the reading replaced their pending one
    assert a.outbox.behind_since == 1 and b.outbox.behind_since == 1
    assert h.stats().budget == 500
    a.outbox.pop()
    b.outbox.pop()
    h.tick(now=2)
    assert h.stats().budget == 550  # growing back as they catch up


def test_hub_drops_a_client_that_missed_an_event_and_one_that_stays_behind() -> None:
    h = hub(buffer=2, behind_limit_s=5)
    slow, lagging, fine = (h.join(parse_filter()) for _ in range(3))
    feed(h, "flood-thao-dien", 1)
    h.tick(now=0)
    fine.outbox.pop()
    lagging.outbox.pop()
    feed(h, "tide-phu-an", 2)
    feed(h, "rain-sai-gon", 2)  # slow holds three devices' readings in room for two
    h.tick(now=1)
    assert slow.closed and slow.close_code == TRY_AGAIN_LATER
    assert "missed events" in slow.close_reason
    assert not lagging.closed and not fine.closed
    fine.outbox.pop_many(5)
    lagging.outbox.pop_many(5)
    feed(h, "flood-thao-dien", 3)
    h.tick(now=2)
    assert seqs(fine.outbox.pop_many(5)) == [("flood-thao-dien", 3)]
    feed(h, "flood-thao-dien", 4)
    feed(h, "tide-phu-an", 4)
    h.tick(now=3)  # lagging stopped reading: full (coalesced) since now
    assert seqs(fine.outbox.pop_many(5)) == [("flood-thao-dien", 4), ("tide-phu-an", 4)]
    assert lagging.outbox.behind_since == 3 and lagging.outbox.coalesced == 1
    h.tick(now=7.5)
    assert not lagging.closed
    h.tick(now=8.5)
    assert lagging.closed and "more than 5 s behind" in lagging.close_reason
    assert not fine.closed
    assert (h.stats().clients, h.stats().dropped_clients) == (1, 2)


def test_a_client_joining_a_hub_that_shuts_down_is_closed_at_once() -> None:
    h = hub()
    first = h.join(parse_filter())
    h.shutdown()
    assert first.closed and first.close_code == GOING_AWAY
    late = h.join(parse_filter())
    assert late.closed and h.stats().clients == 0
