"""GET /api/v1/alerts: what the rules service stored, as a public screen wants it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from rules.engine import Engine
from rules.wording import ward_names
from smartcity.city import load_city
from smartcity.codec import Reading
from smartcity.models import Source
from smartcity.rulefile import load_rules
from smartcity.settings import ApiSettings, MqttSettings
from smartcity.topics import Domain
from storage.alerts import alert_line
from storage.influx import InfluxClient

pytestmark = pytest.mark.servers

CITY = load_city()
MIN = 60_000


def judge(values: list[float], device: str, start_ms: int) -> list[str]:
    """Run the real rules engine over one reading a minute; its events as stored points."""
    engine = Engine(load_rules().with_city(CITY), CITY.registry(), ward_names(CITY))
    lines = []
    for i, value in enumerate(values):
        reading = Reading(Domain.FLOOD, device, start_ms + i * MIN, i, Source.SIMULATED,
                          {"water_level_cm": value})
        lines += [alert_line(event) for event in engine.evaluate(reading)]
    return lines


@pytest.fixture
def api(influx: InfluxClient, mqtt_settings: MqttSettings) -> Iterator[TestClient]:
    app = create_app(ApiSettings(influx=influx.settings, mqtt=mqtt_settings))
    with TestClient(app) as client:
        yield client


def test_active_cleared_and_history_of_alerts(api: TestClient, influx: InfluxClient) -> None:
    start = int(time.time() * 1000) - 120 * MIN
    storm = [0, 5, 12, 18, 25, 34, 45, 50, 41, 30, 22, 14, 6, 2, 0, 0, 0, 0, 0, 0]
    still_rising = [0, 8, 16, 24, 30, 30, 30, 30]
    lines = judge(storm, "flood-nguyen-huu-canh", start) + \
        judge(still_rising, "flood-thao-dien", start + 60 * MIN)
    influx.write(("\n".join(lines) + "\n").encode())

    active = api.get("/api/v1/alerts", params={"active": "true"}).json()
    assert [a["device_id"] for a in active] == ["flood-thao-dien"]
    alert = active[0]
    assert alert["state"] in ("raised", "updated") and alert["level"] == "warning"
    assert "Thảo Điền" in alert["title_vi"] and alert["title_en"]

    cleared = api.get("/api/v1/alerts", params={"active": "false"}).json()
    assert [(a["device_id"], a["state"]) for a in cleared] == [("flood-nguyen-huu-canh",
                                                               "cleared")]
    events = api.get(f"/api/v1/alerts/{cleared[0]['alert_id']}/events").json()
    states = [e["state"] for e in reversed(events)]
    assert states[0] == "raised" and states[-1] == "cleared"
    assert "danger" in [e["level"] for e in events]  # escalated on the way
    assert len({e["alert_id"] for e in events}) == 1

    both = api.get("/api/v1/alerts", params={"domain": "flood"}).json()
    assert sorted(a["device_id"] for a in both) == ["flood-nguyen-huu-canh", "flood-thao-dien"]
    assert api.get("/api/v1/alerts", params={"domain": "traffic"}).json() == []


@pytest.mark.parametrize(("url", "status", "says"), [
    ("/api/v1/alerts?domain=volcano", 422, "home"),
    ("/api/v1/alerts/BAD%20ID/events", 422, "must match"),
    ("/api/v1/alerts/x/events?days=0", 422, "greater than or equal"),
])
def test_bad_alert_requests(api: TestClient, url: str, status: int, says: str) -> None:
    response = api.get(url)
    assert response.status_code == status
    assert says in response.text
