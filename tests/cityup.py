"""A whole city under `smartcity up` for fault tests and the soak: the secured broker,
InfluxDB, ingest, rules, api and simulators as real processes, an exhibitor device
registered through the api, and load generators that count what the broker acknowledged, so
that what InfluxDB holds can be compared with it reading by reading.

Every load run uses its own time range (``ts = base + seq`` ms, far in the past) so the
simulators' own readings never mix with the counted ones.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.localaccounts import parse_accounts
from launcher.servers import free_port, kill_on_parent_death
from smartcity.settings import InfluxSettings
from storage.influx import InfluxClient, InfluxError

REPO = Path(__file__).resolve().parent.parent
CITY_DEVICE = ("flood", "flood-nguyen-huu-canh")  # one of the city's own devices
EXHIBITOR = {"name": "Cảm biến ngập gian hàng A3", "domain": "flood",
             "location": {"lat": 10.7769, "lon": 106.7009}, "metrics": ["water_level_cm"]}
_next_base = [int(time.time() * 1000) // 3_600_000 * 3_600_000 - 30 * 86_400_000]


MAX_PENDING = 20_000


def new_base() -> int:
    """A fresh time range of an hour for one load run."""
    _next_base[0] += 3_600_000
    return _next_base[0]


@dataclass
class Load:
    """Publishes readings of one device at QoS 1 with ``seq`` 1, 2, ... at ``rate`` a second
    and remembers which ones the broker acknowledged (PUBACK)."""

    port: int
    username: str
    password: str
    topic: str
    rate: float
    base_ms: int
    client_id: str | None = None
    acked: set[int] = field(default_factory=set)
    sent: int = 0
    _mids: dict[int, int] = field(default_factory=dict)
    _early: dict[int, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        # MQTT v5: a publish the broker refuses gets a failure code in its PUBACK, so it is
        # never counted as acknowledged.
        c = self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                      client_id=self.client_id or f"load-{secrets.token_hex(5)}")
        c.username_pw_set(self.username, self.password)
        c.max_inflight_messages_set(200)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 1)
        c.on_publish = self._on_publish
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 300
        c.connect_async("127.0.0.1", self.port, keepalive=10, clean_start=False,
                        properties=props)
        c.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        ok = not getattr(reason, "is_failure", False)
        with self._lock:
            seq = self._mids.pop(mid, None)
            if seq is None:
                self._early[mid] = ok  # acknowledged before publish() returned its mid
            elif ok:
                self.acked.add(seq)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            # A device holds a bounded number of unacknowledged readings: past that it falls
            # behind its rate (as a real one would block), and paho's message ids (65,535)
            # are never reused while a message still waits for its PUBACK.
            while self.sent < due and not self._stop.is_set() and self.pending() < MAX_PENDING:
                seq = self.sent + 1
                body = orjson.dumps({"ts": self.base_ms + seq, "seq": seq,
                                     "water_level_cm": float(seq % 100)})
                # Not under the lock: paho calls on_publish holding its own.
                info = self.client.publish(self.topic, body, qos=1)
                with self._lock:
                    if info.mid in self._early:
                        if self._early.pop(info.mid):
                            self.acked.add(seq)
                    else:
                        self._mids[info.mid] = seq
                self.sent = seq
            time.sleep(0.01)

    def pending(self) -> int:
        with self._lock:
            return len(self._mids)

    def stop(self, settle_s: float = 30.0) -> None:
        """Stop publishing; wait (up to ``settle_s``) for the broker to acknowledge the rest."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._mids:
                    break
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class City:
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    ports: dict[str, int]
    token: str
    exhibitor: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """The newest pid of each child by name (mosquitto, influxd, ingest, rules, api,
        simulate)."""
        return {name: int(pid) for name, pid in
                re.findall(r"started (\w+) \(pid (\d+)\)", self.output())}

    def restarts(self) -> int:
        return len(re.findall(r"restarted \w+ \(restart", self.output()))

    def passwords(self) -> dict[str, str]:
        path = self.data_dir / "broker" / "accounts.env"
        return parse_accounts(path.read_text(), str(path))

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=15,
                            headers={"Authorization": f"Bearer {self.token}"})

    def influx(self) -> InfluxClient:
        return InfluxClient(InfluxSettings(url=f"http://127.0.0.1:{self.ports['influx']}",
                                           timeout_s=5))

    def readyz(self) -> int:
        """/readyz's status code; 0 while the api does not answer (restarting)."""
        try:
            with httpx.Client(base_url=self.api, timeout=5) as http:
                return http.get("/readyz").status_code
        except httpx.HTTPError:
            return 0

    def status(self) -> dict[str, Any]:
        return dict(orjson.loads((self.data_dir / "up" / "status.json").read_bytes()))

    def register(self) -> dict[str, Any]:
        wait_until(lambda: self.readyz() == 200, 60, "the api ready")
        with self.http() as http:
            response = http.post("/api/v1/devices", json=EXHIBITOR)
        assert response.status_code == 201, response.text
        self.exhibitor = response.json()
        return self.exhibitor

    def exhibitor_load(self, rate: float, base_ms: int) -> Load:
        creds = self.exhibitor["credentials"]
        return Load(self.ports["mqtt"], creds["username"], creds["password"],
                    self.exhibitor["topics"]["telemetry"], rate, base_ms,
                    client_id=creds.get("client_id")).start()

    def city_load(self, rate: float, base_ms: int) -> Load:
        domain, device = CITY_DEVICE
        return Load(self.ports["mqtt"], "simulators", self.passwords()["simulators"],
                    f"city/{domain}/{device}/telemetry", rate, base_ms,
                    client_id=f"load-city-{secrets.token_hex(4)}").start()

    def stored(self, device_id: str, base_ms: int) -> set[int]:
        """The seqs of ``device_id`` InfluxDB holds in the run's time range."""
        client = self.influx()
        try:
            series = client.query(
                f"SELECT \"seq\" FROM \"flood\" WHERE \"device_id\"='{device_id}' AND "
                f"time >= {base_ms}ms AND time < {base_ms + 3_600_000}ms")
        except InfluxError:
            return set()
        finally:
            client.close()
        return {int(row["seq"]) for s in series for row in s.rows() if row["seq"] is not None}

    def lost(self, load: Load, device_id: str, timeout: float = 60.0) -> set[int]:
        """What the broker acknowledged that InfluxDB does not hold, once it stops shrinking
        (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        missing = set(load.acked)
        while time.monotonic() < deadline:
            missing = load.acked - self.stored(device_id, load.base_ms)
            if not missing:
                break
            time.sleep(1.0)
        return missing

    def signal(self, child: str, sig: signal.Signals) -> int:
        pid = self.pids()[child]
        os.kill(pid, sig)
        return pid

    def wait_restarted(self, child: str, old_pid: int, timeout: float = 60.0) -> int:
        return int(wait_until(lambda: (p := self.pids().get(child)) != old_pid and p, timeout,
                              f"{child} restarted by smartcity up"))

    def running(self) -> bool:
        return self.proc.poll() is None


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@contextmanager
def city_up(workdir: Path, *args: str, ports: dict[str, int] | None = None,
            token: str | None = None, log_name: str = "up.log",
            **env_extra: str) -> Iterator[City]:
    """`smartcity up` under ``workdir`` (on free ports unless given); SIGTERM at the end, and
    a check that it stopped cleanly is the caller's (``city.proc.returncode``)."""
    ports = ports or {"mqtt": free_port(), "influx": free_port(), "api": free_port()}
    token = token or secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env.update(SMARTCITY_DATA_DIR=str(workdir / "var"), SMARTCITY_ADMIN_TOKEN=token,
               PYTHONUNBUFFERED="1", SMARTCITY_INGEST_BATCH_INTERVAL_S="0.1", **env_extra)
    log = workdir / log_name
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.cli", "up", "--mqtt-port", str(ports["mqtt"]),
             "--influx-port", str(ports["influx"]), "--api-port", str(ports["api"]), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            preexec_fn=kill_on_parent_death)  # no city left running if we die
    city = City(proc, log, workdir / "var", ports, token)
    try:
        wait_until(lambda: "smartcity is up" in city.output() or proc.poll() is not None, 90,
                   "smartcity up to print its URLs")
        assert proc.poll() is None, city.output()[-3000:]
        yield city
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
