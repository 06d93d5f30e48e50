"""Running ingest in tests: in-process for behaviour, as a subprocess to crash it for real."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from ingest.edgeservice import make_service
from ingest.service import IngestService
from smartcity.city import load_city
from smartcity.registry import Registry
from smartcity.settings import InfluxSettings, IngestSettings, MqttSettings
from storage.influx import InfluxClient


@contextmanager
def fresh_database(url: str, db: str) -> Iterator[InfluxClient]:
    """A database of its own on a running InfluxDB, dropped at the end."""
    client = InfluxClient(InfluxSettings(url=url, db=db))
    client.create_database()
    try:
        yield client
    finally:
        client.query(f'DROP DATABASE "{db}"', post=True)
        client.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def flood(seq: int, level: float = 10.0, ts: int | None = None) -> bytes:
    return orjson.dumps({"ts": ts or now_ms(), "seq": seq, "water_level_cm": level})


def ingest_settings(mqtt: MqttSettings, influx: InfluxSettings, data_dir: Path,
                    **overrides: object) -> IngestSettings:
    values: dict[str, object] = dict(mqtt=mqtt, influx=influx, data_dir=data_dir,
                                     client_id=f"ingest-{mqtt.root}", batch_interval_s=0.05,
                                     stats_interval_s=0.5)
    values.update(overrides)
    return IngestSettings(**values)  # type: ignore[arg-type]


@contextmanager
def running_ingest(settings: IngestSettings, registry: Registry | None = None
                   ) -> Iterator[IngestService]:
    service = make_service(settings, registry or load_city().registry())
    service.start()
    try:
        if not service.subscribed.wait(10):
            raise AssertionError("ingest did not subscribe")
        yield service
    finally:
        service.stop()


def ingest_env(base: dict[str, str], mqtt: MqttSettings, influx: InfluxSettings,
               **extra: str) -> dict[str, str]:
    env = dict(base)
    env.update(SMARTCITY_MQTT_URL=mqtt.url, SMARTCITY_MQTT_ROOT=mqtt.root,
               SMARTCITY_INFLUX_URL=influx.url, SMARTCITY_INFLUX_DB=influx.db,
               SMARTCITY_INGEST_CLIENT_ID=f"ingest-{mqtt.root}",
               SMARTCITY_INGEST_STATS_INTERVAL_S="0.2")
    env.update(extra)
    return env


def start_ingest_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "launcher.cli", "ingest"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
