"""Fixtures: a real Mosquitto and a real InfluxDB per test session, on free loopback ports.

Each test gets its own topic root and its own database, so tests never see each other's
messages or points while sharing the two servers.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.servers import Influxd, Mosquitto, start_with_retry
from smartcity.settings import InfluxSettings, MqttSettings
from storage.influx import InfluxClient

_counter = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _state_out_of_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Services built in tests without a data dir keep their state (heartbeats, spools) in a
    temp dir, not in ./var of the checkout."""
    before = os.environ.get("SMARTCITY_DATA_DIR")
    os.environ["SMARTCITY_DATA_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield
    if before is None:
        del os.environ["SMARTCITY_DATA_DIR"]
    else:
        os.environ["SMARTCITY_DATA_DIR"] = before


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = start_with_retry(Mosquitto, tmp_path_factory.mktemp("mosquitto"))
    assert isinstance(server, Mosquitto)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = start_with_retry(Influxd, tmp_path_factory.mktemp("influxd"))
    assert isinstance(server, Influxd)
    yield server
    server.stop()


@pytest.fixture
def root() -> str:
    """A topic root no other test uses."""
    return f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mqtt_settings(mosquitto: Mosquitto, root: str) -> MqttSettings:
    return MqttSettings(url=mosquitto.url, root=root)


@pytest.fixture
def influx_settings(influxd: Influxd, root: str) -> Iterator[InfluxSettings]:
    settings = InfluxSettings(url=influxd.url, db=f"db-{root}")
    client = InfluxClient(settings)
    client.create_database()
    yield settings
    client.query(f'DROP DATABASE "{settings.db}"', post=True)
    client.close()


@pytest.fixture
def influx(influx_settings: InfluxSettings) -> Iterator[InfluxClient]:
    client = InfluxClient(influx_settings)
    yield client
    client.close()


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for services run as subprocesses: no SMARTCITY_* leaks from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env["SMARTCITY_DATA_DIR"] = str(tmp_path / "var")
    env["PYTHONUNBUFFERED"] = "1"
    return env
