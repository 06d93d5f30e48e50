"""`smartcity up` end to end: simulators publish, ingest stores, the api answers, for every
domain; Ctrl-C/SIGTERM leaves nothing behind; a taken port is refused clearly. The broker it
starts is the secured one: every service logs in with its own account, an exhibitor's device
registered through the api connects with the credentials it was issued, also after a restart,
and anonymous clients are refused; `--anonymous-broker` keeps the development broker."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from broker.dynsec import SERVICES, password_variable
from broker.localaccounts import parse_accounts
from launcher.servers import Influxd, Mosquitto, free_port, port_in_use
from smartcity.city import load_city
from smartcity.settings import InfluxSettings, MqttSettings
from storage.influx import InfluxClient
from tests.mqtt import wait_for
from tests.secured_broker import NOT_AUTHORIZED, Session

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
        return list(self.children().values())

    def children(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in
                re.findall(r"started (\w+) \(pid (\d+)\)", self.output())}

    def wait_up(self) -> None:
        wait_for(lambda: "smartcity is up" in self.output() or self.proc.poll() is not None,
                 timeout=60, what="smartcity up to print its URLs")
        assert self.proc.poll() is None, self.output()

    def summary(self) -> str:
        return self.output().partition("smartcity is up")[2].partition("Ctrl-C")[0]

    @property
    def accounts_file(self) -> Path:
        return self.data_dir / "broker" / "accounts.env"

    def passwords(self) -> dict[str, str]:
        """The service accounts' passwords, as `up` keeps them for engineers."""
        return parse_accounts(self.accounts_file.read_text(), str(self.accounts_file))

    def session(self, username: str | None = None, password: str | None = None,
                client_id: str | None = None) -> Session:
        if username is not None and password is None:
            password = self.passwords()[username]
        return Session(self.ports["mqtt"], username, password, client_id=client_id)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, self.output()


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


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(e.partition("=")[::2] for e in entries if e)


@contextmanager
def smartcity_up(tmp_path: Path, env: dict[str, str], *args: str,
                 log_name: str = "up.log") -> Iterator[Stack]:
    ports = {"mqtt": free_port(), "influx": free_port(), "api": free_port()}
    data_dir = tmp_path / "var"
    env = dict(env, SMARTCITY_DATA_DIR=str(data_dir), SMARTCITY_SIM_INTERVAL_S="0.3",
               SMARTCITY_INGEST_BATCH_INTERVAL_S="0.1")
    log = tmp_path / log_name
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.cli", "up", "--mqtt-port", str(ports["mqtt"]),
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
        stack.wait_up()
        out = stack.output()
        assert f"api        {stack.api}" in out
        assert f"board      {stack.api}/board" in out
        assert f"mqtt://127.0.0.1:{stack.ports['mqtt']}" in out
        # ingest, rules, api, simulate, and the servers: mosquitto, influxd
        assert sorted(stack.children()) == ["api", "influxd", "ingest", "mosquitto", "rules",
                                            "simulate"]
        assert_each_service_has_its_own_account(stack)

        with httpx.Client(base_url=stack.api, timeout=10) as api:
            board = api.get("/board")
            assert board.status_code == 200 and "text/html" in board.headers["content-type"]
            wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30,
                     what="the api to be ready")
            def latest_of(device: str) -> dict[str, Any] | None:
                body: dict[str, Any] = api.get(f"/api/v1/sensors/{device}/latest").json()
                return body if body["values"] else None

            for device, metric in ONE_DEVICE_PER_DOMAIN.items():
                latest = wait_for(partial(latest_of, device), timeout=30,
                                  what=f"a stored reading of {device}")
                assert latest is not None
                assert latest["source"] == "simulated"
                assert isinstance(latest["values"][metric]["value"], float)

            def history(device: str, metric: str) -> list[dict[str, object]]:
                body = api.get(f"/api/v1/sensors/{device}/history",
                               params={"metric": metric, "start": "-5m", "every": "1s",
                                       "agg": "max"}).json()
                return body["points"]  # type: ignore[no-any-return]

            def enough_history(device: str, metric: str) -> list[dict[str, object]] | None:
                points = history(device, metric)
                return points if len(points) >= 3 else None

            for device, metric in ONE_DEVICE_PER_DOMAIN.items():
                points = wait_for(partial(enough_history, device, metric), timeout=30,
                                  what=f"history of {device}")
                assert points is not None
                assert all(isinstance(p["value"], float) for p in points)

            sensors = api.get("/api/v1/sensors").json()
            assert len(sensors) == len(load_city().registry())
            wait_for(lambda: all(s["status"] == "online" and s["last_seen"]
                                 for s in api.get("/api/v1/sensors").json()),
                     what="every device online and seen")
            summary = api.get("/api/v1/city/summary").json()
            assert summary["home"]["devices_reporting"] == 4
            assert summary["traffic"]["devices_reporting"] == 7

        # Engineers watch the city as the recorder account, from the accounts file.
        with stack.session("recorder") as recorder:
            assert recorder.connected
            assert recorder.subscribe("city/+/+/telemetry") == [1]
            wait_for(lambda: recorder.messages, what="simulated readings as the recorder")
        if shutil.which("mosquitto_sub"):
            watch = stack.summary().partition("watch      ")[2].splitlines()[0]
            assert watch.endswith(" -v)")
            first = subprocess.run(["bash", "-c", watch.removesuffix(")") + " -C 1 -W 20)"],
                                   capture_output=True, text=True, timeout=30)
            assert first.returncode == 0, first.stderr
            assert first.stdout.startswith("city/")  # topic, then the payload
        # `smartcity record` as the README says: the recorder account from the accounts file.
        recording = tmp_path / "city.screc"
        url = f"mqtt://recorder:{stack.passwords()['recorder']}@127.0.0.1:{stack.ports['mqtt']}"
        recorded = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "record", "--out", str(recording),
             "--duration", "2s"], env=dict(subprocess_env, SMARTCITY_MQTT_URL=url),
            capture_output=True, text=True, timeout=60)
        assert recorded.returncode == 0, recorded.stderr
        assert re.search(r"wrote [1-9]\d* messages", recorded.stderr + recorded.stdout)

        children = stack.child_pids()
        stack.proc.send_signal(signal.SIGTERM)
        assert stack.proc.wait(30) == 0, stack.output()

    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert processes_using(stack.data_dir) == []
    assert not any(port_in_use(p) for p in stack.ports.values())
    assert "ingest INFO ingest.service: stopped" in stack.output()


def assert_each_service_has_its_own_account(stack: Stack) -> None:
    """Each child logs in with its own account, knows no other password, and the summary
    points at the accounts file without printing a password."""
    accounts_file = stack.accounts_file
    assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(accounts_file.parent.stat().st_mode) == 0o700
    passwords = stack.passwords()
    assert sorted(passwords) == sorted(SERVICES)
    assert len(set(passwords.values())) == len(SERVICES)
    for service, account in {"ingest": "ingest", "rules": "rules", "api": "api",
                             "simulate": "simulators"}.items():
        environ = environ_of(stack.children()[service])
        mqtt = MqttSettings(url=environ["SMARTCITY_MQTT_URL"])
        assert (mqtt.username, mqtt.password, mqtt.port) == \
            (account, passwords[account], stack.ports["mqtt"])
        assert not [k for k in environ if k.startswith("SMARTCITY_BROKER_")]
        for other in set(passwords.values()) - {passwords[account]}:
            assert other not in "\0".join(environ.values())
    assert environ_of(stack.children()["api"])["SMARTCITY_API_DEVICE_ACCOUNTS"] == "dynsec"
    summary = stack.summary()
    assert f"accounts   {accounts_file}" in summary
    assert "mosquitto_sub" in summary and "-u recorder" in summary
    assert not any(p in summary for p in passwords.values())


def test_smartcity_up_refuses_a_taken_port_clearly(tmp_path: Path,
                                                   subprocess_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "up", "--mqtt-port", str(port),
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
    with smartcity_up(tmp_path, env, "--ingest-workers", "2") as stack:
        wait_for(lambda: "smartcity is up" in stack.output() or stack.proc.poll() is not None,
                 timeout=60, what="smartcity up")
        assert f"broker     {mosquitto.url}" in stack.output()
        # Two ingest workers, each with its own persistent session, in one share group.
        workers = [int(pid) for pid in re.findall(r"started ingest \(pid (\d+)\)",
                                                  stack.output())]
        assert sorted(environ_of(pid)["SMARTCITY_INGEST_CLIENT_ID"] for pid in workers) == [
            f"ingest-{root}", f"ingest-{root}-2"]
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
    out = subprocess.run([sys.executable, "-m", "launcher.cli", "up", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in ("SMARTCITY_MQTT_URL", "SMARTCITY_INFLUX_URL", "SMARTCITY_INFLUX_DB",
                 "SMARTCITY_API_PORT", "SMARTCITY_DATA_DIR", "SMARTCITY_ADMIN_TOKEN",
                 "--anonymous-broker", "accounts.env"):
        assert name in out


FLOOD_SENSOR = {"name": "Cảm biến ngập gian hàng A3", "domain": "flood",
                "location": {"lat": 10.7769, "lon": 106.7009}, "metrics": ["water_level_cm"]}


def reading(seq: int, level: float) -> bytes:
    return orjson.dumps({"ts": int(time.time() * 1000), "seq": seq, "water_level_cm": level})


def wait_latest(api: httpx.Client, device_id: str, level: float) -> None:
    def latest() -> Any:
        response = api.get(f"/api/v1/sensors/{device_id}/latest")
        return response.status_code == 200 and response.json()["values"].get("water_level_cm")

    wait_for(lambda: (v := latest()) and v["value"] == level, timeout=30,
             what=f"water_level_cm={level} of {device_id} on the api")


def test_a_device_registered_on_the_secured_stack_connects_with_its_own_account(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    token = secrets.token_hex(16)
    env = dict(subprocess_env, SMARTCITY_ADMIN_TOKEN=token)
    headers = {"Authorization": f"Bearer {token}"}
    with smartcity_up(tmp_path, env, "--no-simulators") as stack:
        stack.wait_up()
        passwords = stack.passwords()
        with stack.session() as anonymous:
            assert anonymous.refused == NOT_AUTHORIZED
        with stack.session("ingest", "not-the-ingest-password") as impostor:
            assert impostor.refused == NOT_AUTHORIZED

        with httpx.Client(base_url=stack.api, headers=headers, timeout=15) as api:
            wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30,
                     what="the api to be ready")
            response = api.post("/api/v1/devices", json=FLOOD_SENSOR)
            assert response.status_code == 201, response.text
            answer = response.json()
            device_id = answer["device"]["device_id"]
            creds = answer["credentials"]
            assert creds["username"] == f"dev-{device_id}"
            assert creds["broker"] == f"mqtt://127.0.0.1:{stack.ports['mqtt']}"
            with stack.session(creds["username"], creds["password"], creds["client_id"]) as device:
                assert device.connected
                assert device.publish(answer["topics"]["telemetry"], reading(1, 12.5)) == 0
                # Its role: its own topics only.
                assert device.publish("city/flood/flood-thao-dien/telemetry",
                                      reading(1, 90.0)) == NOT_AUTHORIZED
            wait_latest(api, device_id, 12.5)
        stack.stop()

    # A restart on the same data dir keeps every account: the services' and the device's.
    with smartcity_up(tmp_path, env, "--no-simulators", log_name="up-again.log") as again:
        again.wait_up()
        assert again.passwords() == passwords
        assert "generated broker passwords" not in again.output()
        with again.session() as anonymous:
            assert anonymous.refused == NOT_AUTHORIZED
        with httpx.Client(base_url=again.api, timeout=15) as api:
            wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30,
                     what="the api to be ready")
            with again.session(creds["username"], creds["password"], creds["client_id"]) as device:
                assert device.connected
                assert device.publish(answer["topics"]["telemetry"], reading(2, 13.5)) == 0
            wait_latest(api, device_id, 13.5)
        again.stop()
    assert processes_using(again.data_dir) == []


def test_smartcity_up_anonymous_broker_keeps_the_development_profile(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    token = secrets.token_hex(16)
    env = dict(subprocess_env, SMARTCITY_ADMIN_TOKEN=token)
    with smartcity_up(tmp_path, env, "--no-simulators", "--anonymous-broker") as stack:
        stack.wait_up()
        assert "anonymous clients, development" in stack.summary()
        assert not (stack.data_dir / "broker").exists()
        environ = environ_of(stack.children()["api"])
        assert environ["SMARTCITY_MQTT_URL"] == f"mqtt://127.0.0.1:{stack.ports['mqtt']}"
        assert environ["SMARTCITY_API_DEVICE_ACCOUNTS"] == "none"
        with httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {token}"},
                          timeout=15) as api:
            wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30,
                     what="the api to be ready")
            response = api.post("/api/v1/devices", json=FLOOD_SENSOR)
            assert response.status_code == 201, response.text
            answer = response.json()
            assert answer["credentials"] is None
            with stack.session() as device:
                assert device.connected
                assert device.publish(answer["topics"]["telemetry"], reading(1, 4.5)) == 0
            wait_latest(api, answer["device"]["device_id"], 4.5)
        stack.stop()


def test_smartcity_up_refuses_broker_accounts_it_has_no_passwords_for(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    broker_dir = tmp_path / "var" / "broker"
    broker_dir.mkdir(parents=True)
    (broker_dir / "dynamic-security.json").write_text('{"clients": [], "roles": []}')
    with smartcity_up(tmp_path, subprocess_env) as stack:
        assert stack.proc.wait(30) == 1
    assert "accounts.env with the services' passwords is missing" in stack.output()
    assert not stack.accounts_file.exists()
    assert processes_using(stack.data_dir) == []
    assert not any(port_in_use(p) for p in stack.ports.values())


@pytest.mark.parametrize(("line", "words"), [
    (f"{password_variable('rules')}=short", "SMARTCITY_BROKER_RULES_PASSWORD is too short"),
    ("not a variable", "accounts.env:1: expected NAME=value"),
])
def test_smartcity_up_names_what_is_wrong_in_the_accounts_file(
        tmp_path: Path, subprocess_env: dict[str, str], line: str, words: str) -> None:
    accounts = tmp_path / "var" / "broker" / "accounts.env"
    accounts.parent.mkdir(parents=True)
    accounts.write_text(line + "\n")
    with smartcity_up(tmp_path, subprocess_env) as stack:
        assert stack.proc.wait(30) == 1
    assert words in stack.output()
    assert processes_using(stack.data_dir) == []


def test_anonymous_broker_is_refused_with_a_given_broker(
        tmp_path: Path, subprocess_env: dict[str, str], mosquitto: Mosquitto) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "up", "--anonymous-broker"],
        env=dict(subprocess_env, SMARTCITY_MQTT_URL=mosquitto.url),
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--anonymous-broker is for the broker `up` starts" in result.stderr
