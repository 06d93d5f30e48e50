"""The exhibit as an exhibitor meets it, for tests: the secured broker with every service
account, InfluxDB, ingest under its own account, and the api (served by uvicorn on a free
port) managing device accounts with the api account and the admin token."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.live import shutdown_streams
from api.main import create_app
from ingest.service import IngestService
from launcher.servers import Influxd, free_port
from smartcity.city import load_city
from smartcity.settings import ApiSettings, InfluxSettings, LiveSettings
from storage.influx import InfluxClient
from tests.ingest_helpers import ingest_settings
from tests.mqtt import wait_for
from tests.secured_broker import SecuredBroker, Session, start_secured


class _Server(uvicorn.Server):
    async def shutdown(self, sockets: Any = None) -> None:
        shutdown_streams(self.config.app)
        await super().shutdown(sockets)


@dataclass
class Exhibit:
    broker: SecuredBroker
    influx: InfluxClient
    ingest: IngestService
    api_url: str
    admin_token: str

    @property
    def root(self) -> str:
        return self.broker.root

    def http(self, token: str | None = None) -> httpx.Client:
        token = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=15)

    def register(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "Cảm biến ngập gian hàng A3", "domain": "flood",
                                "location": {"lat": 10.7769, "lon": 106.7009},
                                "metrics": ["water_level_cm", "battery_pct"]}
        body.update(changes)
        with self.http() as http:
            response = http.post("/api/v1/devices", json=body)
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def connect(self, registration: dict[str, Any], password: str | None = None) -> Session:
        """The device's own MQTT v5 session with the credentials it was issued."""
        creds = registration["credentials"]
        return self.broker.session(creds["username"], password or creds["password"],
                                   # the one id the account takes: its username
                                   client_id=creds.get("client_id", creds["username"]))

    def device(self, device_id: str) -> dict[str, Any]:
        with self.http(token="") as http:
            response = http.get(f"/api/v1/devices/{device_id}")
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    def latest(self, device_id: str) -> dict[str, float]:
        with self.http(token="") as http:
            response = http.get(f"/api/v1/sensors/{device_id}/latest")
        assert response.status_code == 200, response.text
        return {m: v["value"] for m, v in response.json()["values"].items()}

    def wait_latest(self, device_id: str, metric: str, value: float) -> None:
        wait_for(lambda: self.latest(device_id).get(metric) == value,
                 what=f"{metric}={value} of {device_id} on the api", timeout=20)


@contextmanager
def running_exhibit(workdir: Path, influxd: Influxd, root: str = "exhibit", *,
                    broker_log: bool = False) -> Iterator[Exhibit]:
    """``broker_log``: the broker logs its events to a file ingest reads for the publishes it
    refused to devices, as ``smartcity up`` runs it."""
    events = workdir / "broker-events.log"
    broker = start_secured(workdir / "secured", root, extra_config=(
        f"log_dest file {events}\nlog_type all" if broker_log else ""))
    influx = InfluxClient(InfluxSettings(url=influxd.url, db=f"db-{root}-{secrets.token_hex(3)}"))
    influx.create_database()
    ingest = IngestService(ingest_settings(broker.settings("ingest"), influx.settings,
                                           workdir / "ingest",
                                           broker_log=events if broker_log else None),
                           load_city().registry())
    token = secrets.token_hex(16)
    server: _Server | None = None
    thread: threading.Thread | None = None
    try:
        ingest.start()
        if not ingest.subscribed.wait(10):
            raise AssertionError("ingest did not subscribe")
        settings = ApiSettings(mqtt=broker.settings("api"), influx=influx.settings,
                               admin_token=token, data_dir=workdir / "api",
                               live=LiveSettings(tick_s=0.02))
        app = create_app(settings)
        port = free_port()
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                        lifespan="on"))
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()
        wait_for(lambda: server is not None and server.started, what="the api to start")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200,
                 what="the api to be ready", timeout=20)
        yield Exhibit(broker, influx, ingest, url, token)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(30)
        ingest.stop()
        influx.query(f'DROP DATABASE "{influx.settings.db}"', post=True)
        influx.close()
        broker.server.stop()
