"""The Grafana boards: provisioning Grafana accepts, thresholds and units that are the city's,
and every panel's query run against a real InfluxDB that the real simulators, ingest and rules
filled.

Grafana itself does not run here. Each query is rendered the way Grafana renders an InfluxQL
query before sending it to InfluxDB's /query: template variables as the frontend interpolates
them (a multi-value variable as ``(a|b)``, regex-escaped), then ``$timeFilter``,
``$interval``, ``$__interval_ms`` and ``$__interval`` as the InfluxDB backend does
(pkg/tsdb/influxdb/models/query.go: ``time >= <from>ms and time <= <to>ms``).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from ingest.stats import Stats, reason_field
from launcher.servers import Influxd, Mosquitto
from smartcity.city import load_city
from smartcity.errors import Reason
from smartcity.models import TELEMETRY_MODELS, Source
from smartcity.registry import DeviceInfo
from smartcity.rulefile import load_rules
from smartcity.settings import InfluxSettings, MqttSettings
from smartcity.topics import Domain, profile_topic
from storage.influx import InfluxClient, Series
from tests.ingest_helpers import ingest_env
from tests.mqtt import close, connect, publish, wait_for

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "grafana"
BOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "influxdb.yaml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "smartcity.yaml"
INI = GRAFANA / "grafana.ini"

EXPECTED_BOARDS = {"city-overview.json", "traffic.json", "flood.json", "smart-home.json",
                   "exhibitor-devices.json", "operations.json"}
PANEL_KINDS = {"timeseries", "stat", "gauge", "table", "state-timeline", "bargauge"}
# The unit each metric is shown in: Grafana's own ids, "suffix:" where Grafana has none.
UNITS = {"power_w": "watt", "temperature_c": "celsius", "humidity_pct": "humidity",
         "pm25_ugm3": "con\u03bcgm3", "co2_ppm": "ppm", "battery_pct": "percent",
         "speed_kmh": "velocitykmh", "occupancy_pct": "percent", "flow_veh_h": "suffix:xe/h",
         "water_level_cm": "suffix:cm", "river_level_cm": "suffix:cm",
         "rain_mm_h": "suffix:mm/h", "wind_kmh": "velocitykmh"}
METRICS = sorted({m for model in TELEMETRY_MODELS.values() for m in model.metric_names()})
DS_MIN_INTERVAL_MS = 2000  # the datasource's timeInterval
DOMAINS = "/^(" + "|".join(d.value for d in Domain) + ")$/"


# -- reading the boards ---------------------------------------------------------------------

def load_boards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(BOARDS.glob("*.json"))}


def panels_of(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


@dataclass(frozen=True)
class BoardQuery:
    board: str
    where: str
    query: str
    fmt: str

    @property
    def id(self) -> str:
        return f"{self.board.removesuffix('.json')}:{self.where}"


def variable_query(var: dict[str, Any]) -> str:
    q = var.get("query")
    return str(q.get("query", "") if isinstance(q, dict) else q or "")


def board_queries() -> list[BoardQuery]:
    out = []
    for name, board in load_boards().items():
        for p in panels_of(board):
            for t in p.get("targets", []):
                out.append(BoardQuery(name, f"{p['id']}-{t.get('refId')}", t.get("query", ""),
                                      t.get("resultFormat", "time_series")))
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                out.append(BoardQuery(name, f"${var['name']}", variable_query(var), "table"))
    return out


QUERIES = board_queries()


# -- rendering a query as Grafana does ------------------------------------------------------

_RELATIVE = re.compile(r"^now(?:-(\d+)([smhdw]))?$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# Grafana's interval rounding (pkg/tsdb/intervalv2 roundInterval), up to an hour.
_ROUNDED_MS = [(1500, 1000), (3500, 2000), (7500, 5000), (12_500, 10_000), (17_500, 15_000),
               (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000),
               (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000),
               (1_500_000, 1_200_000), (2_700_000, 1_800_000)]


def relative_ms(expr: str, now_ms: int) -> int:
    m = _RELATIVE.match(expr)
    assert m, f"time {expr!r} is not of the form now or now-<n><unit>"
    return now_ms - (int(m[1]) * _UNIT_MS[m[2]] if m[1] else 0)


def interval_ms(range_ms: int, max_data_points: int = 1000) -> int:
    raw = max(range_ms / max_data_points, DS_MIN_INTERVAL_MS)
    return next((to for upper, to in _ROUNDED_MS if raw <= upper), 3_600_000)


def format_interval(ms: int) -> str:
    """As Grafana's gtime.FormatInterval: the largest whole unit."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def regex_escape(value: str) -> str:
    return re.sub(r"[\\/^$.*+?()\[\]{}|']", lambda m: "\\" + m[0], value)


def multi_value(values: list[str]) -> str:
    """A multi-value (or All) variable inside an InfluxQL regex, as Grafana renders it."""
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def render(query: str, board: dict[str, Any], variables: dict[str, str], now_ms: int) -> str:
    start = relative_ms(board["time"]["from"], now_ms)
    end = relative_ms(board["time"]["to"], now_ms)
    step = interval_ms(end - start)
    values = {**variables, "__from": str(start), "__to": str(end)}

    def var(m: re.Match[str]) -> str:
        name = m[1] or m[2] or m[3]
        return values[name] if name in values else m[0]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", var, query)
    out = out.replace("$timeFilter", f"time >= {start}ms and time <= {end}ms")
    out = out.replace("$interval", format_interval(step))
    out = out.replace("$__interval_ms", str(step))
    out = out.replace("$__interval", format_interval(step))
    return out


def has_a_value(series: list[Series]) -> bool:
    return any(v is not None for s in series for row in s.values
               for c, v in zip(s.columns, row, strict=True) if c != "time")


# -- structure ------------------------------------------------------------------------------

def provisioned_datasource_uids() -> set[str]:
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    return {ds["uid"] for ds in doc["datasources"]}


def test_every_board_parses_and_has_its_own_uid_and_title() -> None:
    boards = load_boards()
    assert set(boards) == EXPECTED_BOARDS
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    assert len({b["title"] for b in boards.values()}) == len(boards)
    for name, b in boards.items():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", b["uid"]), name
        assert b["schemaVersion"] >= 39 and b["refresh"] == "5s" and b["editable"] is False
        assert "id" not in b or b["id"] is None, f"{name}: provisioned boards carry no id"
        # Vietnamese first, then English, on the board and on every panel.
        titles = [b["title"]] + [p["title"] for p in panels_of(b)]
        assert all(" · " in t for t in titles), [t for t in titles if " · " not in t]
        assert all(link.get("type") == "dashboards" for link in b.get("links", [])), name
        ids = [p["id"] for p in panels_of(b)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"


def test_every_panel_queries_the_provisioned_datasource_in_raw_influxql() -> None:
    uids = provisioned_datasource_uids()
    assert uids == {"smartcity-influx"}
    for name, b in load_boards().items():
        for p in panels_of(b):
            where = f"{name} panel {p['id']} {p['title']!r}"
            assert p["type"] in PANEL_KINDS, where
            assert p["datasource"] == {"type": "influxdb", "uid": "smartcity-influx"}, where
            assert p["targets"], where
            for t in p["targets"]:
                assert t["datasource"]["uid"] in uids, where
                assert t["rawQuery"] is True and t["query"].strip(), where
                assert t["resultFormat"] in {"time_series", "table"}, where
        for var in b["templating"]["list"]:
            assert var["datasource"]["uid"] in uids and variable_query(var).strip(), name
    assert all(q.query.strip() for q in QUERIES)


def test_the_provider_loads_the_boards_from_where_the_home_board_is() -> None:
    doc = yaml.safe_load(PROVIDER.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["folder"] == "smartcity"
    assert provider["editable"] is False and provider["allowUiUpdates"] is False
    path = provider["options"]["path"]
    assert path in {"/var/lib/grafana/dashboards", "/etc/grafana/dashboards"}
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(INI, encoding="utf-8")
    home = ini["dashboards"]["default_home_dashboard_path"]
    assert home == f"{path}/city-overview.json"
    assert load_boards()["city-overview.json"]["uid"] == "smartcity-overview"


def test_grafana_ini_is_set_up_for_public_screens() -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(INI, encoding="utf-8")
    anonymous = ini["auth.anonymous"]
    assert anonymous.getboolean("enabled") and anonymous["org_role"] == "Viewer"
    assert anonymous["org_name"] and anonymous.getboolean("hide_version")
    assert ini["auth"].getboolean("disable_login_form")
    assert ini["security"].getboolean("allow_embedding")
    assert ini["security"].getboolean("disable_gravatar")
    assert "admin_password" not in ini["security"]
    for key in ("reporting_enabled", "check_for_updates", "check_for_plugin_updates"):
        assert not ini["analytics"].getboolean(key), key
    assert not ini["snapshots"].getboolean("external_enabled")
    assert not ini["news"].getboolean("news_feed_enabled")


def test_the_stored_boards_are_what_the_builder_makes_of_the_city() -> None:
    result = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def metrics_in(panel: dict[str, Any]) -> set[str]:
    text = " ".join(t["query"] for t in panel["targets"])
    return {m for m in METRICS if f'"{m}"' in text}


def values_of(thresholds: dict[str, Any]) -> list[float]:
    steps = thresholds["steps"]
    assert steps[0]["value"] is None, "the first step is the base colour"
    return [s["value"] for s in steps[1:]]


def test_thresholds_are_the_warning_rules_levels_site_by_site() -> None:
    city = load_city()
    registry = city.registry()
    rules = {r.metric: r for r in load_rules().with_city(city).enabled()}
    checked = set()
    for name, b in load_boards().items():
        for p in panels_of(b):
            metrics = metrics_in(p)
            if len(metrics) != 1 or (metric := metrics.pop()) not in rules:
                continue
            rule = rules[metric]
            levels = sorted(t.enter for t in rule.thresholds(None))
            assert values_of(p["fieldConfig"]["defaults"]["thresholds"]) == levels, p["title"]
            for o in p["fieldConfig"]["overrides"]:
                props = {x["id"]: x["value"] for x in o["properties"]}
                if "thresholds" in props:
                    device = registry.get(o["matcher"]["options"])
                    assert device is not None, o["matcher"]
                    site = device.site
                    levels = sorted(t.enter for t in rule.thresholds(site))
                    assert values_of(props["thresholds"]) == levels, (p["title"], site)
                    checked.add((metric, site))
            checked.add((metric, name))
    assert {m for m, _ in checked} == set(rules)
    # Thảo Điền floods at 15 cm, not the city's 20: its series carry their own levels.
    assert ("water_level_cm", "flood-thao-dien") in checked


def test_each_metric_is_shown_in_its_unit() -> None:
    for b in load_boards().values():
        for p in panels_of(b):
            metrics = metrics_in(p)
            if len(metrics) == 1:
                assert p["fieldConfig"]["defaults"].get("unit") == UNITS[metrics.pop()], \
                    p["title"]


def test_ingest_counts_rejections_by_reason_for_the_operations_board() -> None:
    stats = Stats()
    first = stats.snapshot()
    # Every reason is reported from the start, so its first refusal is a difference of one.
    assert first["rejected_payload_is_not_valid_json"] == first["rejected_internal_error"] == 0
    assert {reason_field(r) for r in Reason} <= set(first)
    stats.rejected_by_reason[Reason.NOT_JSON] += 2
    stats.rejected_by_reason[Reason.UNKNOWN_DEVICE] += 1
    stats.rejected_by_reason["a reason from a later version"] += 1
    snap = stats.snapshot()
    assert snap["rejected_payload_is_not_valid_json"] == 2
    assert snap["rejected_unknown_device"] == 1
    assert snap["rejected_a_reason_from_a_later_version"] == 1
    assert snap["rejected_undeclared_metric"] == 0
    # Field names go into line protocol unescaped, and no two reasons share one.
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in snap)
    assert len({reason_field(r) for r in Reason}) == len(Reason)


# -- every query against a city that ran --------------------------------------------------

EXPO_WATER = DeviceInfo(device_id="expo-water-b2", domain=Domain.FLOOD,
                        name="Cảm biến nước gian B2", name_en="Booth B2 water sensor",
                        ward="sai-gon", site="expo-water-b2", lat=10.77, lon=106.70,
                        source=Source.LIVE, metrics=("water_level_cm", "battery_pct"))
EXPO_AIR = DeviceInfo(device_id="expo-air-c1", domain=Domain.HOME,
                      name="Máy đo không khí gian C1", name_en="Booth C1 air monitor",
                      ward="sai-gon", site="expo-air-c1", lat=10.77, lon=106.70,
                      source=Source.LIVE, metrics=("pm25_ugm3", "temperature_c"))

# Rain on a high river and a crash at Hàng Xanh: within half an hour of simulated time the
# streets flood, the rain gauge and the roads raise their alerts.
STORM = """version = 1
description = "A storm on a high river and a crash at Hang Xanh"
random_rain = false
[[events]]
kind = "rain"
intensity_mm_h = 120
duration = "40m"
[[events]]
kind = "tide"
peak_cm = 175
at = "20m"
[[events]]
kind = "accident"
road = "dien-bien-phu-hang-xanh"
capacity_pct = 10
duration = "40m"
"""


@dataclass
class FilledCity:
    influx: InfluxClient
    simulated: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def fill(influx: InfluxClient, mqtt: MqttSettings, env: dict[str, str], tmp: Path) -> int:
    """Two exhibitor devices registered and reporting live, the city's last forty minutes
    simulated (thirty of them, at full speed), two messages ingest refuses; returns once all of
    it is stored and rules has raised its alerts. Returns how many readings were simulated."""
    root = mqtt.root
    client = connect(mqtt)

    def send(device: DeviceInfo, body: bytes) -> None:
        topic = f"{root}/{device.domain.value}/{device.device_id}/telemetry"
        client.publish(topic, body, qos=1).wait_for_publish(10)

    try:
        for device in (EXPO_WATER, EXPO_AIR):  # what the api does when an exhibitor registers
            client.publish(str(profile_topic(device.device_id, root)),
                           device.model_dump_json(), qos=1, retain=True).wait_for_publish(10)
        start_ms = _now_ms()
        probe = orjson.dumps({"ts": start_ms - 21 * 60_000, "seq": 0, "water_level_cm": 4.0})
        rules_beat = tmp / "var" / "rules" / f"rules-{root}" / "heartbeat.json"

        def both_listening() -> bool:
            # Until ingest has stored the water sensor's first reading and rules has seen it.
            send(EXPO_WATER, probe)
            stored = influx.query('SELECT count("water_level_cm") FROM "flood"')
            seen = rules_beat.exists() and orjson.loads(rules_beat.read_bytes())["received"]
            return bool(stored and seen)

        wait_for(both_listening, timeout=60, interval=0.5, what="ingest and rules listening")

        scenario = tmp / "storm.toml"
        scenario.write_text(STORM, encoding="utf-8")
        sim_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ms / 1000 - 40 * 60))
        sim = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "simulate", "--start", sim_start,
             "--speed", "max", "--duration", "30m", "--interval", "30", "--seed", "7",
             "--scenario", str(scenario)], env=env, capture_output=True, text=True,
            timeout=120)
        assert sim.returncode == 0, sim.stderr
        found = re.search(r"stopped after (\d+) readings", sim.stderr + sim.stdout)
        assert found, sim.stderr
        simulated = int(found[1])

        for i in range(1, 21):
            ts = start_ms - (21 - i) * 60_000
            send(EXPO_WATER, orjson.dumps({"ts": ts, "seq": i, "water_level_cm": 4.0 + i,
                                           "battery_pct": 90.0 - i / 10}))
            send(EXPO_AIR, orjson.dumps({"ts": ts, "seq": i, "pm25_ugm3": 30.0 + i,
                                         "temperature_c": 29.5}))
        send(EXPO_AIR, orjson.dumps({"ts": start_ms, "seq": 21, "co2_ppm": 612.0}))
        send(EXPO_WATER, b'{"ts": 1, "seq": 22, "water_level_cm": 4.')
    finally:
        close(client)

    def ingest_caught_up() -> bool:
        # Every reading stored (the probe once, however often it was sent), both refusals
        # stored, and nothing left in ingest's queue.
        found = influx.query(f'SELECT count("seq") FROM {DOMAINS} GROUP BY "source"')
        counts: Counter[str] = Counter()
        for s in found:
            counts[s.tags["source"]] += s.values[0][1]
        refused = influx.query('SELECT count("reason_code") FROM "device_rejections"')
        queue = influx.query('SELECT last("queue") FROM "ingest_stats"')
        return (counts == {"simulated": simulated, "live": 41} and bool(refused) and
                refused[0].values[0][1] >= 2 and bool(queue) and queue[0].values[0][1] == 0)

    wait_for(ingest_caught_up, timeout=60, what="ingest to store everything sent")

    def rules_raised() -> bool:
        found = influx.query('SHOW TAG VALUES FROM "alerts" WITH KEY = "rule"')
        return {"flood-depth", "heavy-rain", "traffic-jam"} <= {
            row["value"] for s in found for row in s.rows()}

    wait_for(rules_raised, timeout=60, what="flood, rain and jam alerts stored")
    # Two more reports once everything is stored, so every counter has a difference over it.
    caught_up = _now_ms()
    wait_for(lambda: (found := influx.query(
        f'SELECT count("received") FROM "ingest_stats" WHERE time > {caught_up}ms')) and
        found[0].values[0][1] >= 2, what="two later ingest reports")
    return simulated


@pytest.fixture(scope="module")
def city(mosquitto: Mosquitto, influxd: Influxd,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilledCity]:
    """Ingest and rules running as subprocesses, as in the exhibit, and the city they stored
    (:func:`fill`), in a database and under a topic root of their own."""
    root = f"grafana-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("grafana-city")
    mqtt = MqttSettings(url=mosquitto.url, root=root)
    settings = InfluxSettings(url=influxd.url, db=f"db-{root}")
    influx = InfluxClient(settings)
    influx.create_database()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    base.update(SMARTCITY_DATA_DIR=str(tmp / "var"), PYTHONUNBUFFERED="1")
    env = ingest_env(base, mqtt, settings, SMARTCITY_INGEST_BATCH_INTERVAL_S="0.1",
                     SMARTCITY_INGEST_SESSION_EXPIRY_S="60",
                     SMARTCITY_RULES_CLIENT_ID=f"rules-{root}",
                     SMARTCITY_RULES_SESSION_EXPIRY_S="60",
                     SMARTCITY_RULES_HEARTBEAT_INTERVAL_S="0.2")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for service in ("ingest", "rules"):
            with (tmp / f"{service}.log").open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "launcher.cli", service],
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
        try:
            simulated = fill(influx, mqtt, env, tmp)
        except BaseException:
            for service in ("ingest", "rules"):  # shown with the failure
                print(f"--- {service} ---\n" + (tmp / f"{service}.log").read_text("utf-8",
                                                                                   "replace"))
            raise
        yield FilledCity(influx, simulated)
    finally:
        for proc in procs:
            _stop(proc)
        for device in (EXPO_WATER, EXPO_AIR):
            publish(mqtt, str(profile_topic(device.device_id, root)), b"", retain=True)
        influx.query(f'DROP DATABASE "{settings.db}"', post=True)
        influx.close()


def device_values(city: FilledCity, board: dict[str, Any]) -> dict[str, str]:
    """Each query variable as Grafana fills it on load: every value it offers (All)."""
    out = {}
    for var in board.get("templating", {}).get("list", []):
        found = city.influx.query(render(variable_query(var), board, {}, _now_ms()))
        values = sorted({row["value"] for s in found for row in s.rows()})
        assert values, f"variable ${var['name']} offers nothing"
        out[var["name"]] = multi_value(values) if var.get("multi") else values[0]
    return out


@pytest.mark.servers
def test_the_device_variable_offers_exhibitor_devices_only(city: FilledCity) -> None:
    board = load_boards()["exhibitor-devices.json"]
    assert [v["multi"] for v in board["templating"]["list"]] == [True]
    assert device_values(city, board) == {"device": "(expo-air-c1|expo-water-b2)"}
    # The city's own devices and the exhibitors' refused messages are in the same database.
    assert city.simulated >= 16 * 60
    refused = city.influx.query('SELECT "reason", "problems" FROM "device_rejections"')
    assert {r["reason"] for r in refused[0].rows()} >= {"undeclared metric",
                                                        "payload is not valid JSON"}


@pytest.mark.servers
@pytest.mark.parametrize("q", QUERIES, ids=[q.id for q in QUERIES])
def test_the_query_returns_data(city: FilledCity, q: BoardQuery) -> None:
    board = load_boards()[q.board]
    variables = device_values(city, board) if not q.where.startswith("$") else {}
    rendered = render(q.query, board, variables, _now_ms())
    assert not re.search(r"\$(\{|\[\[|[A-Za-z_])", rendered), f"left unrendered: {rendered}"
    found = city.influx.query(rendered)
    assert found, f"no series for {rendered}"
    assert has_a_value(found), f"only nulls for {rendered}"


@pytest.mark.servers
def test_the_operations_board_counts_each_refusal_under_its_reason(city: FilledCity) -> None:
    board = load_boards()["operations.json"]
    (panel,) = [p for p in panels_of(board) if p["title"].endswith("Rejections by reason")]
    found = city.influx.query(render(panel["targets"][0]["query"], board, {}, _now_ms()))
    totals: Counter[str] = Counter()
    for s in found:
        for row in s.rows():
            totals.update({c.removeprefix("non_negative_difference_"): v for c, v in row.items()
                           if c != "time" and v is not None})
    assert totals["rejected_undeclared_metric"] == 1
    assert totals["rejected_payload_is_not_valid_json"] == 1
    assert totals["rejected_payload_too_large"] == 0
