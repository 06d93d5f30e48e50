"""Rehearsals of the built-in recordings from the api, and the two timelines side by side
in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from api.main import create_app
from launcher.servers import free_port
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings
from tests import timelines
from tests.test_board import ARTIFACTS, Service, browser, env, running  # noqa: F401

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = (REPO / "rules" / "defaults.toml").read_text()
# Flood levels raised only after 10 minutes, not 2: six flood events come later.
SLOWER = DEFAULTS.replace("raise_after_s = 120\nclear_after_s = 600\nmax_gap_s = 900",
                          "raise_after_s = 600\nclear_after_s = 600\nmax_gap_s = 900", 1)


@pytest.fixture
def api(influx_settings: InfluxSettings, mqtt_settings: MqttSettings) -> Iterator[TestClient]:
    settings = ApiSettings(influx=influx_settings, mqtt=mqtt_settings)
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_rules_in_force_over_a_builtin_recording(api: TestClient) -> None:
    got = api.get("/api/v1/recordings/king-tide-storm/rehearsal")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["in_force"]["messages"] == 6400 and body["given"] is None
    assert body["in_force"]["events"] == [
        s.model_dump() for s in timelines.expected("king-tide-storm")]
    assert api.get("/api/v1/rules/file").text == DEFAULTS


def test_an_edited_rule_file_beside_the_rules_in_force(api: TestClient) -> None:
    assert SLOWER != DEFAULTS
    got = api.post("/api/v1/recordings/king-tide-storm/rehearsal", content=SLOWER)
    assert got.status_code == 200, got.text
    body = got.json()
    moved = [d for d in body["differences"] if d["difference"] == "moved"]
    assert len(moved) == len(body["differences"]) == 6
    assert {d["rule"] for d in moved} == {"flood-depth"}
    assert all(d["other_time"] > d["time"] for d in moved)
    assert len(body["given"]["events"]) == len(body["in_force"]["events"])


@pytest.mark.parametrize(("method", "url", "content", "status", "says"), [
    ("get", "/api/v1/recordings/no-such-thing/rehearsal", None, 404, "unknown recording"),
    ("get", "/api/v1/recordings/BAD%20NAME/rehearsal", None, 404, "unknown recording"),
    ("post", "/api/v1/recordings/rush-hour/rehearsal", "version = 1\n[[rules]]\nid = 3\n",
     422, "body:3: rules[0].id"),
    ("post", "/api/v1/recordings/rush-hour/rehearsal", "not toml ][", 422, "rule file"),
    ("post", "/api/v1/recordings/rush-hour/rehearsal", "#" * 70_000, 413, "at most"),
])
def test_bad_rehearsal_requests(api: TestClient, method: str, url: str, content: str | None,
                                status: int, says: str) -> None:
    got = api.request(method, url, content=content)
    assert got.status_code == status and says in got.json()["detail"], got.text


@pytest.mark.timeout(300)
def test_two_timelines_side_by_side_in_a_real_browser(
        env: dict[str, str], tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    port = free_port()
    with running(Service("api", ["api", "--port", str(port)], env, tmp_path)):
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"http://127.0.0.1:{port}/board/rehearsal.html?recording=king-tide-storm")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        expected = timelines.expected("king-tide-storm")
        assert page.locator("#base li").count() == len(expected)
        assert page.locator("#given li").count() == 0
        page.fill("#rules", SLOWER)
        page.click("#run")
        page.wait_for_function("document.querySelectorAll('#given li').length > 0",
                               timeout=60_000)
        assert page.locator("#status").inner_text() == "6 differences"
        assert page.locator("#base li[data-diff='moved']").count() == 6
        assert page.locator("#given li[data-diff='moved']").count() == 6
        first_moved = page.locator("#base li[data-diff='moved']").first.inner_text()
        assert "flood-depth" in first_moved and "raised" in first_moved
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "rehearsal-side-by-side.png"))
        page.close()
