"""`smartcity up` end to end: simulators publish, ingest stores, the api answers, for every
domain; Ctrl-C/SIGTERM leaves nothing behind; a taken port is refused clearly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from smartcity.city import load_city
from smartcity.influx import InfluxClient
from smartcity.servers import Influxd, Mosquitto, free_port, port_in_use
from smartcity.settings import InfluxSettings
from tests.mqtt import wait_for

pytestmark = pytest.mark.servers

ONE_DEVICE_PER_DOMAIN = {
    "home-thao-dien": "power_w",
    "nguyen-huu-canh": "speed_kmh",
    "flood-nguyen-huu-canh": "water_level_cm",
    "rain-sai-gon": "temperature_c",
}


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    api: str
    ports: dict[str, int]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", self.output())]


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (our servers' configs live there,
    and every child gets it in its environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if str(path) in cmdline or str(path).encode() in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


@contextmanager
def smartcity_up(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[Stack]:
    ports = {"mqtt": free_port(), "influx": free_port(), "api": free_port()}
    data_dir = tmp_path / "var"
    env = dict(env, SMARTCITY_DATA_DIR=str(data_dir), SMARTCITY_SIM_INTERVAL_S="0.3",
               SMARTCITY_INGEST_BATCH_INTERVAL_S="0.1")
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartcity.cli", "up", "--mqtt-port", str(ports["mqtt"]),
             "--influx-port", str(ports["influx"]), "--api-port", str(ports["api"]), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    stack = Stack(proc, log, data_dir, f"http://127.0.0.1:{ports['api']}", ports)
    try:
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


def test_smartcity_up_runs_the_city_end_to_end_and_leaves_nothing_behind(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    with smartcity_up(tmp_path, subprocess_env) as stack:
        wait_for(lambda: "smartcity is up" in stack.output() or stack.proc.poll() is not None,
                 timeout=60, what="smartcity up to print its URLs")
        assert stack.proc.poll() is None, stack.output()
        out = stack.output()
        assert f"api        {stack.api}" in out
        assert f"mqtt://127.0.0.1:{stack.ports['mqtt']}" in out
        assert len(stack.child_pids()) == 4  # ingest, rules, api, simulate

        with httpx.Client(base_url=stack.api, timeout=10) as api:
            wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30,
                     what="the api to be ready")
            for device, metric in ONE_DEVICE_PER_DOMAIN.items():
                latest = wait_for(lambda d=device: (r := api.get(
                    f"/api/v1/sensors/{d}/latest").json())["values"] and r,
                    timeout=30, what=f"a stored reading of {device}")
                assert latest["source"] == "simulated"
                assert isinstance(latest["values"][metric]["value"], float)

            def history(device: str, metric: str) -> list[dict[str, object]]:
                body = api.get(f"/api/v1/sensors/{device}/history",
                               params={"metric": metric, "start": "-5m", "every": "1s",
                                       "agg": "max"}).json()
                return body["points"]  # type: ignore[no-any-return]

            for device, metric in ONE_DEVICE_PER_DOMAIN.items():
                points = wait_for(lambda d=device, m=metric: len(history(d, m)) >= 3 and
                                  history(d, m), timeout=30, what=f"history of {device}")
                assert all(isinstance(p["value"], float) for p in points)

            sensors = api.get("/api/v1/sensors").json()
            assert len(sensors) == len(load_city().registry())
            wait_for(lambda: all(s["status"] == "online" and s["last_seen"]
                                 for s in api.get("/api/v1/sensors").json()),
                     what="every device online and seen")
            summary = api.get("/api/v1/city/summary").json()
            assert summary["home"]["devices_reporting"] == 4
            assert summary["traffic"]["devices_reporting"] == 7

        children = stack.child_pids()
        stack.proc.send_signal(signal.SIGTERM)
        assert stack.proc.wait(30) == 0, stack.output()

    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert processes_using(stack.data_dir) == []
    assert not any(port_in_use(p) for p in stack.ports.values())
    assert "ingest INFO ingest.service: stopped" in stack.output()


def test_smartcity_up_refuses_a_taken_port_clearly(tmp_path: Path,
                                                   subprocess_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "smartcity.cli", "up", "--mqtt-port", str(port),
             "--influx-port", str(free_port()), "--api-port", str(free_port())],
            env=dict(subprocess_env, SMARTCITY_DATA_DIR=str(tmp_path / "var")),
            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"Mosquitto port {port} on 127.0.0.1 is already taken" in result.stderr
    assert "--mqtt-port" in result.stderr
    assert processes_using(tmp_path / "var") == []


def test_smartcity_up_uses_the_servers_it_is_given(
        tmp_path: Path, subprocess_env: dict[str, str], mosquitto: Mosquitto, influxd: Influxd,
        root: str) -> None:
    db = f"given-{root}"
    env = dict(subprocess_env, SMARTCITY_MQTT_URL=mosquitto.url, SMARTCITY_MQTT_ROOT=root,
               SMARTCITY_INFLUX_URL=influxd.url, SMARTCITY_INFLUX_DB=db,
               SMARTCITY_INGEST_CLIENT_ID=f"ingest-{root}")
    with smartcity_up(tmp_path, env) as stack:
        wait_for(lambda: "smartcity is up" in stack.output() or stack.proc.poll() is not None,
                 timeout=60, what="smartcity up")
        assert f"broker     {mosquitto.url}" in stack.output()
        assert not (stack.data_dir / "mosquitto").exists()
        assert not (stack.data_dir / "influxdb").exists()
        influx = InfluxClient(InfluxSettings(url=influxd.url, db=db))
        try:
            wait_for(lambda: influx.query('SELECT count("seq") FROM "flood"'), timeout=30,
                     what="readings in the given InfluxDB")
            influx.query(f'DROP DATABASE "{db}"', post=True)
        finally:
            influx.close()
        stack.proc.send_signal(signal.SIGINT)
        assert stack.proc.wait(30) == 0
    assert mosquitto.running() and influxd.running()  # not ours to stop


def test_up_help_lists_the_settings() -> None:
    out = subprocess.run([sys.executable, "-m", "smartcity.cli", "up", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in ("SMARTCITY_MQTT_URL", "SMARTCITY_INFLUX_URL", "SMARTCITY_INFLUX_DB",
                 "SMARTCITY_API_PORT", "SMARTCITY_DATA_DIR", "SMARTCITY_ADMIN_TOKEN"):
        assert name in out
