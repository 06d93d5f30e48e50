"""The exhibitor desk at /exhibitors in a real Chromium, against the real exhibit: the secured
broker (logging its events for ingest), InfluxDB, ingest and the api. Staff log in with the
admin token, preview a Tasmota sample, register the device, read its settings and QR code,
and watch what the device sends, what is stored, and what the broker refuses.

Screenshots go to test-artifacts/ for people to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from launcher.servers import Influxd
from tests.exhibit import Exhibit, running_exhibit
from tests.test_board import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]
DESK = REPO / "api" / "desk"
ARTIFACTS = REPO / "test-artifacts"
expect.set_options(timeout=20_000)

TASMOTA = orjson.dumps({"Time": "2026-12-07T21:00:00", "AM2301": {
    "Temperature": 29.4, "Humidity": 71.2, "DewPoint": 23.7}, "TempUnit": "C"}).decode()


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Exhibit]:
    with running_exhibit(tmp_path_factory.mktemp("desk"), influxd, "desk",
                         broker_log=True) as running:
        yield running


@pytest.fixture
def page(exhibit: Exhibit) -> Iterator[Page]:
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        outside: list[str] = []
        context.on("request", lambda r: None if r.url.startswith(exhibit.api_url)
                   or r.url.startswith("data:") else outside.append(r.url))
        page = context.new_page()
        yield page
        assert outside == [], "the desk asked something outside the exhibit"
        browser.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"desk-{name}.png"), full_page=True)


def test_the_desk_is_plain_files_and_its_endpoints_need_the_admin_token(
        exhibit: Exhibit) -> None:
    with exhibit.http(token="") as http:
        page = http.get("/exhibitors")
        assert page.status_code == 200 and '<script type="module" src="/exhibitors/desk.js">' \
            in page.text
        for f in DESK.iterdir():
            served = http.get(f"/exhibitors/{f.name}")
            assert served.status_code == 200
            urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')`]*", served.text))
            assert urls == set(), (f.name, urls)
        assert http.get("/exhibitors/../main.py").status_code == 404
        sample = {"device": {"name": "x", "domain": "home", "format": "tasmota",
                             "location": {"lat": 10.77, "lon": 106.7},
                             "metrics": ["temperature_c"]},
                  "topic": "tele/booth/SENSOR", "payload": TASMOTA}
        assert http.get("/api/v1/exhibitors/session").status_code == 401
        assert http.post("/api/v1/formats/preview", json=sample).status_code == 401
        assert http.get("/api/v1/devices/flood-thao-dien/watch").status_code == 401
    with exhibit.http(token="wrong" * 8) as http:
        assert http.get("/api/v1/exhibitors/session").status_code == 401
    with exhibit.http() as http:
        preview = http.post("/api/v1/formats/preview", json=sample).json()
    assert preview["refused"] is None
    assert preview["readings"][0]["metrics"] == {"temperature_c": 29.4}
    assert any("humidity_pct was not declared" in n for n in preview["notes"])


def test_staff_register_preview_watch_rotate_and_remove_in_a_real_browser(
        exhibit: Exhibit, page: Page) -> None:
    page.goto(f"{exhibit.api_url}/exhibitors")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#register-card")).to_be_hidden()
    page.fill("#token", "not-the-token-at-all")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_have_text("The admin token was refused.")

    page.fill("#token", exhibit.admin_token)
    page.click("#login-form button")
    expect(page.locator("#register-card")).to_be_visible()
    shot(page, "logged-in")

    # the form: a Tasmota plug-in sensor at a booth, previewed before it is saved
    page.fill("input[name=name]", "Cảm biến gian A3")
    page.select_option("#domain", "home")
    page.select_option("#format", "tasmota")
    page.check("#metrics input[value=temperature_c]")
    page.check("#metrics input[value=humidity_pct]")
    page.fill("#sample-topic", "tele/booth/SENSOR")
    page.fill("#sample-payload", TASMOTA)
    page.click("#preview-button")
    expect(page.locator("#preview .reading")).to_contain_text(
        "temperature_c = 29.4, humidity_pct = 71.2")
    page.fill("#sample-payload", '{"AM2301": {"Temperature": "hot"}, "TempUnit": "C"}')
    page.click("#preview-button")
    expect(page.locator("#preview .refused").first).to_contain_text("unknown metric")
    expect(page.locator("#preview")).to_contain_text("stores temperature_c, humidity_pct")

    page.click("#register-button")
    expect(page.locator("#issued")).to_be_visible()
    expect(page.locator("#issued-text")).to_contain_text("Backlog MqttHost 127.0.0.1")
    expect(page.locator("#issued-qr svg")).to_be_visible()
    facts = dict(zip(page.locator("#issued-facts dt").all_inner_texts(),
                     page.locator("#issued-facts dd").all_inner_texts(), strict=True))
    device_id = facts["device"]
    assert f"Password {facts['password']};" in page.locator("#issued-text").inner_text() \
        .replace("MqttPassword ", "Password ")
    prefix = f"{exhibit.root}/dev/{device_id}"
    expect(page.locator("#issued-topics")).to_contain_text(f"{prefix}/tele/{device_id}/SENSOR")
    expect(page.locator(f"#device-{device_id}")).to_contain_text("tasmota")
    expect(page.locator("#watch-card")).to_be_visible()
    shot(page, "registered")

    # the device publishes, as Tasmota does with the settings above, and once with its
    # default FullTopic, which the broker refuses
    registration = {"credentials": {"username": facts["username"],
                                    "password": facts["password"]}}
    with exhibit.connect(registration) as device:
        assert device.publish(f"{prefix}/tele/{device_id}/SENSOR", TASMOTA.encode()) == 0
        assert device.publish(f"{prefix}/tele/{device_id}/STATE", b'{"Uptime": "0T00:01:00"}') \
            == 0
        assert device.publish("tele/booth/SENSOR", TASMOTA.encode()) == 0x87
    watch = page.locator("#watch")
    expect(watch.locator(".watch-message .reading")).to_contain_text(
        "temperature_c = 29.4, humidity_pct = 71.2")
    expect(watch.locator(".watch-message").filter(has_text="STATE")).to_contain_text(
        "holds no readings")
    refused = watch.locator(".watch-refused")
    expect(refused).to_contain_text("publish refused by the broker")
    expect(refused).to_contain_text("tele/booth/SENSOR")
    expect(refused).to_contain_text(f"{prefix}/tele/{device_id}/SENSOR")
    # the device page's facts, with hints naming its topic and metrics
    expect(page.locator("#report-hints")).to_contain_text(
        "This device stores temperature_c, humidity_pct")
    expect(page.locator("#report-facts")).to_contain_text("refused")
    # registration state is not something the device sent
    expect(watch).not_to_contain_text(f"{exhibit.root}/devices/{device_id}/profile")
    shot(page, "watching")
    # ... and the device page says the same
    report = exhibit.device(device_id)
    assert report["last_rejected"][0]["topic"] == "tele/booth/SENSOR"
    assert f"{prefix}/tele/{device_id}/SENSOR" in report["last_rejected"][0]["problems"]
    assert any(h.startswith("It published on tele/booth/SENSOR, a topic it may not use") and
               f"{prefix}/tele/{device_id}/SENSOR" in h for h in report["hints"]), report["hints"]

    # rotate: new settings with a new password; the old one no longer logs in
    page.locator(f"#device-{device_id} button", has_text="Rotate").click()
    expect(page.locator("#issued-facts")).not_to_contain_text(facts["password"])
    new_password = page.locator("#issued-facts dd").nth(3).inner_text()
    assert new_password and new_password != facts["password"]
    expect(page.locator("#issued-text")).to_contain_text(new_password)

    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f"#device-{device_id} button", has_text="Remove").click()
    expect(page.locator(f"#device-{device_id}")).to_have_count(0)
    with httpx.Client(base_url=exhibit.api_url) as http:
        assert http.get(f"/api/v1/devices/{device_id}").status_code == 404

    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#register-card")).to_be_hidden()
