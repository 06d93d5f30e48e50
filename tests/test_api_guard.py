"""The api refuses before it works, on the real exhibit (secured broker, InfluxDB, ingest,
the api served by uvicorn): the token before any body or lookup, bodies capped, errors that
echo an excerpt only, registrations capped in number and rate, device accounts bound to their
client id."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from api.admission import Admission
from launcher.servers import Influxd
from tests.exhibit import Exhibit, running_exhibit
from tests.secured_broker import NOT_AUTHORIZED, Session

pytestmark = pytest.mark.servers

DEVICE = {"name": "Cảm biến ngập gian hàng A3", "domain": "flood",
          "location": {"lat": 10.7769, "lon": 106.7009}, "metrics": ["water_level_cm"]}
ADMIN_REQUESTS = [
    ("POST", "/api/v1/devices"),
    ("DELETE", "/api/v1/devices/no-such-device"),
    ("DELETE", "/api/v1/devices/flood-nguyen-huu-canh"),
    ("POST", "/api/v1/devices/no-such-device/rotate"),
    ("POST", "/api/v1/devices/NOT%20AN%20ID/rotate"),
    ("POST", "/api/v1/scenarios/no-such-scenario/start"),
    ("POST", "/api/v1/simulation/speed"),
    ("POST", "/api/v1/replays/no-such-recording/start"),
]


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Exhibit]:
    with running_exhibit(tmp_path_factory.mktemp("guard"), influxd, root="guard") as e:
        yield e


@pytest.mark.parametrize(("method", "path"), ADMIN_REQUESTS)
@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_every_admin_endpoint_answers_401_before_parsing_or_looking_up(
        exhibit: Exhibit, method: str, path: str, token: str) -> None:
    with exhibit.http(token) as http:
        for body in (b"{not json", orjson.dumps(DEVICE), b"x" * 200_000):
            response = http.request(method, path, content=body,
                                    headers={"Content-Type": "application/json"})
            assert response.status_code == 401, (body[:20], response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_bodies_over_the_cap_are_refused_with_413_unread(exhibit: Exhibit) -> None:
    big = orjson.dumps({**DEVICE, "name": "x" * 10_000_000})
    with exhibit.http() as http:
        response = http.post("/api/v1/devices", content=big,
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert len(response.content) < 200

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts the bytes
            for _ in range(100):
                yield b"x" * 10_000

        response = http.post("/api/v1/devices", content=chunks(),
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 413


def test_validation_errors_echo_only_an_excerpt(exhibit: Exhibit) -> None:
    with exhibit.http() as http:
        response = http.post("/api/v1/devices", json={**DEVICE, "name": "x" * 60_000})
    assert response.status_code == 422
    assert len(response.content) < 2_000, response.text[:300]
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "name"] and error["input"].endswith("…")


def test_known_and_unknown_ids_answer_the_same_without_the_token(exhibit: Exhibit) -> None:
    registered = exhibit.register()["device"]["device_id"]
    with exhibit.http("") as http:
        known = http.delete(f"/api/v1/devices/{registered}")
        unknown = http.delete("/api/v1/devices/no-such-device")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    with exhibit.http() as http:
        assert http.delete("/api/v1/devices/no-such-device").status_code == 404


def test_a_device_account_works_only_under_its_own_client_id(exhibit: Exhibit) -> None:
    answer = exhibit.register()
    creds = answer["credentials"]
    assert creds["client_id"] == creds["username"]
    assert f"-i {creds['client_id']}" in answer["example"]["mosquitto_pub"]
    port = exhibit.broker.port
    for stolen in ("smartcity-ingest", "smartcity-rules", f"other-{secrets.token_hex(3)}"):
        with Session(port, creds["username"], creds["password"], client_id=stolen) as s:
            assert s.refused == NOT_AUTHORIZED, stolen
    with Session(port, creds["username"], creds["password"],
                 client_id=creds["client_id"]) as own:
        assert own.connected
    assert exhibit.ingest.client.is_connected()


def test_registrations_are_capped_in_rate_with_retry_after() -> None:
    admission = Admission(max_devices=100, per_minute=3)
    for _ in range(3):
        admission.admit(0, now=10.0)
    with pytest.raises(Exception) as refused:
        admission.admit(0, now=10.0)
    assert getattr(refused.value, "status_code", None) == 429
    assert getattr(refused.value, "headers", {})["Retry-After"] == "20"
    admission.admit(0, now=30.0)  # a token back after 20 s


def test_registrations_are_capped_in_number() -> None:
    admission = Admission(max_devices=2, per_minute=100)
    admission.admit(1, now=0.0)
    with pytest.raises(Exception) as refused:
        admission.admit(2, now=0.0)
    assert getattr(refused.value, "status_code", None) == 409


def test_the_exhibit_refuses_a_registration_burst_with_429_and_retry_after(
        tmp_path: Path, influxd: Influxd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTCITY_API_REGISTRATIONS_PER_MINUTE", "4")
    monkeypatch.setenv("SMARTCITY_API_MAX_DEVICES", "6")
    with running_exhibit(tmp_path, influxd, root="caps") as e, e.http() as http:
        dynsec = e.broker.server.dynsec_config
        assert dynsec is not None
        codes = [http.post("/api/v1/devices", json=DEVICE).status_code for _ in range(6)]
        assert codes == [201] * 4 + [429] * 2, codes
        refused = http.post("/api/v1/devices", json=DEVICE)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        # A refused registration leaves the broker's accounts file alone.
        before = dynsec.stat().st_mtime_ns
        assert http.post("/api/v1/devices", json=DEVICE).status_code == 429
        assert dynsec.stat().st_mtime_ns == before
