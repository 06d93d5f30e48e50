"""/docs and /redoc in a real Chromium with every request outside the api refused: the
pages render the operations from assets the api serves itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route, expect, sync_playwright

from api.main import create_app
from smartcity.settings import ApiSettings, InfluxSettings, MqttSettings
from tests.served_api import serve

pytestmark = pytest.mark.servers

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000  # the bundles are large and two shared cores parse them


@pytest.fixture
def base(influx_settings: InfluxSettings, mqtt_settings: MqttSettings) -> Iterator[str]:
    with serve(create_app(ApiSettings(influx=influx_settings, mqtt=mqtt_settings))) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _offline(base: str, refused: list[str]) -> object:
    def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith((base, "data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    return handle


@pytest.mark.timeout(240)
def test_swagger_ui_renders_the_operations_offline(base: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    refused: list[str] = []
    page.route("**/*", _offline(base, refused))  # type: ignore[arg-type]
    page.goto(f"{base}/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=WAIT_MS)
    paths = operations.all_inner_texts()
    assert any("/api/v1/sensors" in p for p in paths), paths
    assert any("/api/v1/alerts" in p for p in paths), paths
    assert refused == []
    page.close()


@pytest.mark.timeout(240)
def test_redoc_renders_the_operations_offline(base: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    refused: list[str] = []
    page.route("**/*", _offline(base, refused))  # type: ignore[arg-type]
    page.goto(f"{base}/redoc")
    expect(page.get_by_text("/api/v1/alerts").first).to_be_attached(timeout=WAIT_MS)
    expect(page.locator("h1").first).to_contain_text("smartcity api")
    assert refused == []
    page.close()


def test_the_assets_are_ours_and_unknown_ones_are_refused(base: str) -> None:
    import httpx

    docs = httpx.get(f"{base}/docs", timeout=10).text
    assert "cdn" not in docs.lower() and "/docs-assets/swagger-ui-bundle.js" in docs
    redoc = httpx.get(f"{base}/redoc", timeout=10).text
    assert "fonts.googleapis" not in redoc and "/docs-assets/redoc.standalone.js" in redoc
    bundle = httpx.get(f"{base}/docs-assets/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert httpx.get(f"{base}/docs-assets/../main.py", timeout=10).status_code == 404
    assert httpx.get(f"{base}/docs-assets/nothing.js", timeout=10).status_code == 404
