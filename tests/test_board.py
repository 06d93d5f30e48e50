"""The kiosk board at /board: its static files, and the page itself in a real Chromium
against a real stack (Mosquitto, InfluxDB, the api, the rules service and the simulator),
with the test publishing the readings it needs to be sure of.

Screenshots go to test-artifacts/ for people to look at."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect, sync_playwright

from api.main import create_app
from launcher.servers import free_port
from smartcity.city import default_city_path
from smartcity.models import METRIC_BOUNDS, DeviceState, DeviceStatus, Source
from smartcity.registry import DeviceInfo
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings
from smartcity.topics import Domain, profile_topic, status_topic, telemetry_topic
from tests.mqtt import publish, wait_for

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]
BOARD = REPO / "api" / "board"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WAIT_MS = 30_000  # generous: two shared cores run the whole stack and the browser
expect.set_options(timeout=15_000)  # for what follows at once from what was just awaited
MIN = 60_000

FLOOD = "flood-nguyen-huu-canh"  # the test's own: the simulator runs a city without it
GOES_OFFLINE = "home-thao-dien"
OFFLINE_WHILE_DOWN = "home-huynh-tan-phat"
EXHIBITOR = DeviceInfo(device_id="expo-aqua-1", domain=Domain.FLOOD, name="Cảm biến AquaSense",
                       name_en="AquaSense sensor", ward="an-khanh", site="expo-booth-3",
                       lat=10.781, lon=106.735, source=Source.LIVE,
                       metrics=("water_level_cm",))


# --- the static files ----------------------------------------------------------------------

@pytest.fixture
def client(influx_settings: InfluxSettings, mqtt_settings: MqttSettings) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(influx=influx_settings, mqtt=mqtt_settings))) as c:
        yield c


def test_the_board_takes_metric_labels_and_units_from_the_apis_catalogue(
        client: TestClient) -> None:
    metrics = {m["name"]: m for m in client.get("/api/v1/metrics").json()}
    assert set(metrics) == {name for bounds in METRIC_BOUNDS.values() for name in bounds}
    for bounds in METRIC_BOUNDS.values():
        for name, (low, high) in bounds.items():
            assert (metrics[name]["min"], metrics[name]["max"]) == (low, high), name
    flow = metrics["flow_veh_h"]
    assert (flow["label_vi"], flow["label_en"], flow["unit_vi"], flow["unit"]) == (
        "Lưu lượng", "Flow", "xe/h", "veh/h")
    # The board restates none of it.
    i18n = (BOARD / "i18n.js").read_text()
    assert "Lưu lượng" not in i18n and "xe/h" not in i18n


def test_the_board_is_served_as_plain_files_that_need_nothing_from_outside(
        client: TestClient) -> None:
    page = client.get("/board")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/board/main.js">' in page.text

    served = {f.name for f in BOARD.iterdir()}
    assert {"index.html", "board.css", "main.js"} <= served
    for name in sorted(served):
        response = client.get(f"/board/{name}")
        assert response.status_code == 200, name
        if name.endswith(".js"):
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            # every module it imports is one of ours, next to it
            for imported in re.findall(r'from "\./([\w.]+)"', response.text):
                assert imported in served, (name, imported)
        # no CDN, map tiles or web fonts: the only absolute URL is SVG's namespace name
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", response.text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)

    assert client.get("/board/nothing.js").status_code == 404
    assert client.get("/board/../main.py").status_code == 404
    assert client.get("/board/%2e%2e/main.py").status_code == 404
    home = client.get("/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (307, "/board")
    assert client.get("/docs").status_code == 200
    assert "/board" not in client.get("/openapi.json").json()["paths"]


# --- the board's own logic, in the browser's JavaScript engine ----------------------------

STORE_CHECKS = """async () => {
  const { Store } = await import("/board/store.js");
  const { congestion, depth } = await import("/board/levels.js");
  const s = new Store();
  const device = (id, source = "simulated") => ({ device_id: id, domain: "flood", name: id,
    ward: "w", site: id, lat: 10, lon: 106, source });
  const alert = (id, level, updated, state = "raised") => ({ alert_id: id, device_id: "a",
    level, state, updated_at: updated });
  const now = 1_000_000;
  s.apply({ type: "snapshot", time: 500_000, devices: [device("a"), device("b"), device("c")],
    readings: [
      { type: "reading", device_id: "a", ts: 1, seq: 1, metrics: { water_level_cm: 3 },
        received: 499_000 },
      { type: "reading", device_id: "b", ts: 1, seq: 1, metrics: { water_level_cm: 4 },
        received: 400_000 }],
    statuses: [{ type: "status", device_id: "c", domain: "flood", state: "offline" }],
    alerts: [alert("w1", "warning", "2026-01-01T00:00:00.000Z"),
             alert("d1", "danger", "2026-01-01T00:00:00.000Z"),
             alert("w2", "warning", "2026-01-01T00:05:00.000Z")],
    simulation: { running: true, speed: 60, sim_time: "2026-01-01T00:00:00.000Z",
                  updated: new Date(now - 1000).toISOString() } }, now);
  const out = {};
  // ages count on the api's clock in the snapshot, then on the browser's
  out.fresh = s.state("a", now, 30_000);
  out.old = s.state("b", now, 30_000);
  out.offline = s.state("c", now, 30_000);
  s.apply({ type: "reading", device_id: "a", ts: 2, seq: 2, metrics: { battery_pct: 80 } },
          now + 50_000);
  out.merged = s.metrics("a");
  out.staleLater = s.state("a", now + 50_000 + 30_001, 30_000);
  out.order = s.activeAlerts().map((a) => a.alert_id);
  s.apply({ type: "alert", ...alert("d1", "danger", "2026-01-01T00:06:00.000Z", "cleared") }, now);
  out.afterClear = s.activeAlerts().map((a) => a.alert_id);
  out.simTime = new Date(s.simTime(now)).toISOString();
  s.apply({ type: "device", action: "added", device: device("x", "live") }, now);
  out.added = s.devices.get("x").source;
  s.apply({ type: "device", action: "removed", device: device("x", "live") }, now);
  out.removed = s.devices.has("x");
  // a fresh snapshot without a device's reading keeps the old one, with its old arrival
  s.apply({ type: "snapshot", time: 2_000_000, devices: [device("a"), device("b")],
            readings: [], statuses: [], alerts: [], simulation: null }, now + 90_000);
  out.kept = [s.metrics("a").water_level_cm, s.state("a", now + 90_000, 30_000),
              s.statuses.size, s.alerts.size, s.simulation];
  out.levels = [congestion({ speed_kmh: 10 }, 50), congestion({ speed_kmh: 45 }, 50),
                congestion({ speed_kmh: 30, occupancy_pct: 45 }, 50), congestion({}, 50),
                depth(9.9, 20), depth(10, 20), depth(20, 20), depth(40, 20), depth(7.5, 15),
                depth(30, 15, { watch: 10, warning: 15, danger: 40 }),
                depth(40, 15, { watch: 10, warning: 15, danger: 40 })];
  return out;
}"""


def test_the_board_keeps_its_state_by_the_live_protocol(browser: Browser) -> None:
    page = browser.new_page()
    # The modules, served to the browser straight from the files: no api needed for these.
    page.route("http://board.test/**", lambda route: route.fulfill(
        path=BOARD / route.request.url.rsplit("/", 1)[1], content_type="text/javascript")
        if route.request.url.endswith(".js") else route.fulfill(body="<!doctype html>",
                                                                content_type="text/html"))
    page.goto("http://board.test/")
    out = page.evaluate(STORE_CHECKS)
    assert (out["fresh"], out["old"], out["offline"]) == ("ok", "stale", "offline")
    assert out["merged"] == {"water_level_cm": 3, "battery_pct": 80}
    assert out["staleLater"] == "stale"
    assert out["order"] == ["d1", "w2", "w1"]  # most severe, then most recent
    assert out["afterClear"] == ["w2", "w1"]
    assert out["simTime"] == "2026-01-01T00:01:00.000Z"  # one second later at 60x
    assert (out["added"], out["removed"]) == ("live", False)
    assert out["kept"] == [3, "stale", 0, 0, None]
    assert out["levels"] == ["jam", "free", "heavy", "none",
                             "low", "watch", "warning", "danger", "watch",
                             "warning", "danger"]  # the rule's levels, when the map has them
    page.close()


# --- the page in a real browser against a real stack -------------------------------------

class Service:
    """One ``smartcity`` command as a child process, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", *self.args],
                                         env=self.env, cwd=REPO, stdout=out,
                                         stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, \
            f"{self.name} exited:\n{self.output()[-3000:]}"
        return True


def city_without(*place_ids: str) -> str:
    """The built-in city file without some places (whose devices the test drives itself)."""
    text = default_city_path().read_text(encoding="utf-8")
    blocks = re.split(r"(?m)^(?=\[\[)", text)
    kept = [b for b in blocks if not any(f'id = "{p}"' in b for p in place_ids)]
    assert len(kept) == len(blocks) - len(place_ids)
    return "".join(kept)


@pytest.fixture
def env(mqtt_settings: MqttSettings, influx_settings: InfluxSettings,
        subprocess_env: dict[str, str]) -> dict[str, str]:
    return dict(subprocess_env, SMARTCITY_MQTT_URL=mqtt_settings.url,
                SMARTCITY_MQTT_ROOT=mqtt_settings.root, SMARTCITY_INFLUX_URL=influx_settings.url,
                SMARTCITY_INFLUX_DB=influx_settings.db,
                SMARTCITY_RULES_CLIENT_ID=f"rules-{mqtt_settings.root}",
                SMARTCITY_RULES_HEARTBEAT_INTERVAL_S="0.2",
                SMARTCITY_ATTRACT_IDLE_S="0")  # the tests drive the scenarios


@contextmanager
def running(*services: Service) -> Iterator[dict[str, Service]]:
    """Start the services, wait until the api is ready, stop them all at the end."""
    try:
        for service in services:
            service.start()
        by_name = {s.name: s for s in services}
        wait_for(lambda: api_ready(by_name["api"]), timeout=60, what="the api")
        yield by_name
    finally:
        for service in services:
            service.stop()


def api_port(api: Service) -> int:
    return int(api.args[api.args.index("--port") + 1])


def api_ready(api: Service) -> bool:
    api.alive()
    try:
        return httpx.get(f"http://127.0.0.1:{api_port(api)}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Service]]:
    sim_city = tmp_path / "city-for-the-simulator.toml"
    sim_city.write_text(city_without(FLOOD), encoding="utf-8")
    with running(Service("api", ["api", "--port", str(free_port())], env, tmp_path),
                 Service("rules", ["rules"], env, tmp_path),
                 Service("simulator", ["simulate", "--city", str(sim_city), "--interval", "1",
                                       "--scenario", "normal-day", "--seed", "7"],
                         env, tmp_path)) as services:
        heartbeat = (Path(env["SMARTCITY_DATA_DIR"]) / "rules" /
                     env["SMARTCITY_RULES_CLIENT_ID"] / "heartbeat.json")
        wait_for(lambda: services["rules"].alive() and heartbeat.exists() and
                 orjson.loads(heartbeat.read_bytes())["connected"], timeout=60,
                 what="the rules service")
        yield services


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Readings:
    """The test's own flood device: one reading a minute of event time, from an hour ago, so
    the rules judge a ten-minute storm in no time."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self.mqtt = mqtt
        self.seq = 0
        self.first = int(time.time() * 1000) // MIN * MIN - 60 * MIN

    def send(self, *levels: float) -> None:
        topic = str(telemetry_topic(Domain.FLOOD, FLOOD, self.mqtt.root))
        for level in levels:
            body = {"ts": self.first + self.seq * MIN, "seq": self.seq, "water_level_cm": level,
                    "source": "simulated"}
            publish(self.mqtt, topic, orjson.dumps(body))
            self.seq += 1


def status(mqtt: MqttSettings, device_id: str, state: DeviceState) -> None:
    body = DeviceStatus(state=state, ts=int(time.time() * 1000)).model_dump_json()
    publish(mqtt, str(status_topic(Domain.HOME, device_id, mqtt.root)), body, retain=True)


def marker(page: Page, device_id: str) -> Any:
    return page.locator(f'#map [data-device="{device_id}"]')


def label(page: Page, device_id: str) -> Any:
    return page.locator(f'#map [data-label-for="{device_id}"]')


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"board-{name}.png"))


@pytest.mark.timeout(420)
def test_the_board_shows_the_living_city_in_a_real_browser(
        stack: dict[str, Service], browser: Browser, mqtt_settings: MqttSettings) -> None:
    api = stack["api"]
    base = f"http://127.0.0.1:{api_port(api)}"
    elsewhere: list[str] = []
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.on("request", lambda r: None if r.url.startswith((base, "data:"))
            else elsewhere.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    flood = Readings(mqtt_settings)
    flood.send(3)

    # Vietnamese by default, the city drawn, the simulation's scenario and time shown.
    page.goto(f"{base}/board?stale=10")
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=WAIT_MS)
    expect(page.locator("h1")).to_have_text("Bản đồ thành phố trực tuyến")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#map .ward")).to_have_count(4)
    expect(page.locator("#map [data-ward='thanh-my-tay'] text")).to_have_text("Phường Thạnh Mỹ Tây")
    expect(page.locator("#map .dev.road")).to_have_count(7)
    expect(page.locator("#scenario")).to_have_text("Kịch bản: Một ngày bình thường",
                                                   timeout=WAIT_MS)
    expect(page.locator("#simtime")).not_to_have_attribute("data-ms", "", timeout=WAIT_MS)
    expect(label(page, FLOOD).locator(".title")).to_have_text("Điểm ngập Nguyễn Hữu Cảnh")

    # Simulated devices report and are shown as they do.
    expect(marker(page, "nguyen-huu-canh")).to_have_attribute(
        "data-level", re.compile("free|slow|heavy|jam"), timeout=WAIT_MS)
    expect(label(page, "nguyen-huu-canh").locator(".value")).to_have_text(
        re.compile(r"^\d+ km/h"), timeout=WAIT_MS)
    expect(marker(page, GOES_OFFLINE)).to_have_attribute("data-state", "ok", timeout=WAIT_MS)
    expect(label(page, GOES_OFFLINE).locator(".value")).to_contain_text("kW")

    # A new reading changes the value on the page.
    flood.send(12.5)
    expect(label(page, FLOOD).locator(".value")).to_have_text("12,5 cm / 20", timeout=WAIT_MS)
    expect(marker(page, FLOOD)).to_have_attribute("data-level", "watch")
    expect(marker(page, FLOOD)).to_have_attribute("data-state", "ok")
    scroll = page.evaluate("[document.documentElement.scrollWidth, "
                           "document.documentElement.scrollHeight]")
    assert scroll == [1920, 1080]  # full screen, no scrollbars
    shot(page, "vi")

    # The water rises above the danger level: the rules service raises the alert.
    flood.send(45, 45, 46, 46, 47)
    alert = page.locator(f"#ticker-track .alert[data-alert^='flood-depth_{FLOOD}_']").first
    expect(alert).to_have_attribute("data-level", "danger", timeout=WAIT_MS)
    # the most severe first
    expect(page.locator("#ticker-track .alert").first).to_have_attribute("data-level", "danger")
    expect(alert.locator(".alert-title")).to_have_text(
        re.compile(r"^Ngập nặng tại Điểm ngập Nguyễn Hữu Cảnh: 4[567] cm$"), timeout=WAIT_MS)
    expect(page.locator("#alert-count")).not_to_have_text("0")
    expect(marker(page, FLOOD)).to_have_attribute("data-level", "danger")
    expect(marker(page, FLOOD)).to_have_attribute("data-alert", "danger")
    expect(label(page, FLOOD).locator(".value")).to_have_text("47 cm / 20")
    shot(page, "alert")

    # English and back: labels, names, the alert's own English text; remembered.
    page.locator("#lang-toggle").click()
    expect(page.locator("h1")).to_have_text("Live city board")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(label(page, FLOOD).locator(".title")).to_have_text("Nguyen Huu Canh flood point")
    expect(alert.locator(".alert-title")).to_have_text(
        re.compile(r"^Severe flooding at Nguyen Huu Canh flood point: 4[567] cm$"))
    expect(page.locator("#scenario")).to_have_text("Scenario: An ordinary day")
    shot(page, "en")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=WAIT_MS)
    expect(page.locator("h1")).to_have_text("Live city board")
    page.locator("#lang-toggle").click()
    expect(page.locator("h1")).to_have_text("Bản đồ thành phố trực tuyến")
    expect(label(page, FLOOD).locator(".title")).to_have_text("Điểm ngập Nguyễn Hữu Cảnh")

    # Greyed out: a device whose status goes offline; one that stops reporting goes stale.
    status(mqtt_settings, GOES_OFFLINE, DeviceState.OFFLINE)
    expect(marker(page, GOES_OFFLINE)).to_have_attribute("data-state", "offline",
                                                         timeout=WAIT_MS)
    expect(label(page, GOES_OFFLINE).locator(".note")).to_have_text("· ngoại tuyến")
    grey = marker(page, GOES_OFFLINE).evaluate("e => getComputedStyle(e).filter")
    assert "grayscale(1)" in grey
    expect(marker(page, FLOOD)).to_have_attribute("data-state", "stale", timeout=WAIT_MS)
    expect(label(page, FLOOD).locator(".note")).to_have_text("· mất tín hiệu")
    expect(marker(page, "nguyen-huu-canh")).to_have_attribute("data-state", "ok")

    # An exhibitor's device appears on the board when it is registered.
    publish(mqtt_settings, str(profile_topic(EXHIBITOR.device_id, mqtt_settings.root)),
            EXHIBITOR.model_dump_json(), retain=True)
    expect(marker(page, EXHIBITOR.device_id)).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator(f"#exhibitors [data-device='{EXHIBITOR.device_id}']")).to_contain_text(
        "Cảm biến AquaSense")
    publish(mqtt_settings, str(telemetry_topic(Domain.FLOOD, EXHIBITOR.device_id,
                                               mqtt_settings.root)),
            orjson.dumps({"ts": int(time.time() * 1000), "seq": 1, "water_level_cm": 7.5}))
    expect(label(page, EXHIBITOR.device_id).locator(".value")).to_have_text(
        "Mực nước 7,5 cm", timeout=WAIT_MS)
    expect(marker(page, EXHIBITOR.device_id)).to_have_attribute("data-state", "ok")

    # The api restarts: the board says it lost the connection, reconnects by itself and
    # takes the fresh snapshot (which holds what changed while the api was away).
    api.stop()
    expect(page.locator("#conn-banner")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#conn-banner")).to_have_text("Mất kết nối, đang kết nối lại…")
    expect(page.locator("#conn")).to_have_attribute("data-state", "lost")
    shot(page, "reconnecting")
    status(mqtt_settings, OFFLINE_WHILE_DOWN, DeviceState.OFFLINE)
    api.start()
    wait_for(lambda: api_ready(api), timeout=60, what="the api, again")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    expect(page.locator("#conn-banner")).to_be_hidden()
    expect(marker(page, OFFLINE_WHILE_DOWN)).to_have_attribute("data-state", "offline",
                                                               timeout=WAIT_MS)
    expect(alert.locator(".alert-title")).to_contain_text("Ngập nặng")
    expect(marker(page, EXHIBITOR.device_id)).to_have_count(1)
    flood.send(30)
    expect(label(page, FLOOD).locator(".value")).to_have_text("30 cm / 20", timeout=WAIT_MS)
    expect(marker(page, FLOOD)).to_have_attribute("data-state", "ok")
    shot(page, "reconnected")

    assert errors == []
    assert elsewhere == []  # nothing from the internet: no tiles, scripts or fonts


@pytest.mark.timeout(300)
def test_a_scaled_city_renders_every_copy(env: dict[str, str], tmp_path: Path,
                                          browser: Browser) -> None:
    scale = 5
    env = dict(env, SMARTCITY_SCALE=str(scale))
    with running(Service("api", ["api", "--port", str(free_port())], env, tmp_path),
                 Service("simulator", ["simulate", "--scale", str(scale), "--interval", "1",
                                       "--seed", "3"], env, tmp_path)) as services:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"http://127.0.0.1:{api_port(services['api'])}/board?lang=en")
        expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=WAIT_MS)
        expect(page.locator("h1")).to_have_text("Live city board")  # ?lang=en
        devices = 16 * scale
        expect(page.locator("#map .dev")).to_have_count(devices)
        expect(page.locator("#map .label")).to_have_count(16)  # the copies go unlabelled
        expect(marker(page, "nguyen-huu-canh-x4")).to_have_attribute(
            "data-level", re.compile("free|slow|heavy|jam"), timeout=WAIT_MS)
        expect(marker(page, "flood-thao-dien-x3")).to_have_attribute("data-state", "ok",
                                                                     timeout=WAIT_MS)
        expect(page.locator("#city [data-figure='reporting'] .figure-value")).to_have_text(
            f"{devices}/{devices}", timeout=WAIT_MS)
        assert page.evaluate("[document.documentElement.scrollWidth, "
                             "document.documentElement.scrollHeight]") == [1920, 1080]
        shot(page, "scaled")
        page.close()
