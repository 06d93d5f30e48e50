"""Faults an unattended exhibit meets, caused for real against `smartcity up` (secured broker,
an exhibitor device registered through the api and one of the city's own devices publishing
QoS 1): SIGKILL and SIGSTOP of its processes. Every test counts the readings the broker
acknowledged against what InfluxDB holds, reading by reading, and asserts that none is lost
and that the city runs on, restarted by `up` itself."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.cityup import CITY_DEVICE, City, Load, city_up, new_base, wait_until
from tests.secured_broker import NOT_AUTHORIZED, Session

pytestmark = pytest.mark.servers

EXHIBITOR_RATE = 300.0  # readings a second from the exhibitor's device
CITY_RATE = 100.0


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    workdir = tmp_path_factory.mktemp("faults")
    with city_up(workdir, SMARTCITY_UP_HANG_AFTER_S="10", SMARTCITY_UP_DEGRADED_AFTER="3",
                 SMARTCITY_UP_STABLE_AFTER_S="20", SMARTCITY_SIM_INTERVAL_S="1") as running:
        running.register()
        yield running
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(60) == 0, running.output()[-3000:]
    assert processes_using(workdir) == [], "smartcity up left processes behind"


def processes_using(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes()
            if "State:\tZ" in (entry / "status").read_text():
                continue
        except OSError:
            continue
        if str(path) in cmdline or str(path).encode() in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


def under_load(city: City, fault: Callable[[], None], after_s: float = 8.0) -> None:
    """Publish from both devices, cause ``fault``, keep publishing ``after_s`` more, and
    assert every acknowledged reading of both is stored and the city is still up."""
    base = new_base()
    exhibitor = city.exhibitor_load(EXHIBITOR_RATE, base)
    own = city.city_load(CITY_RATE, base)
    loads = [(exhibitor, city.exhibitor["device"]["device_id"]), (own, CITY_DEVICE[1])]
    try:
        time.sleep(3)
        fault()
        time.sleep(after_s)
    finally:
        for load, _ in loads:
            load.stop()
    for load, device_id in loads:
        lost = city.lost(load, device_id, timeout=90)
        print(f"{device_id}: sent {load.sent}, acknowledged {len(load.acked)}, lost {len(lost)}")
        assert len(load.acked) > load.sent // 2, "the load hardly reached the broker"
        assert not lost, f"{len(lost)} acknowledged readings of {device_id} lost, " \
                         f"e.g. seq {sorted(lost)[:10]}"
    assert city.running()
    wait_until(lambda: city.readyz() == 200, 60, "the city ready again")


def test_ingest_killed_is_restarted_and_loses_nothing_of_any_device(city: City) -> None:
    old: list[int] = []

    def kill_ingest() -> None:
        old.append(city.signal("ingest", signal.SIGKILL))

    under_load(city, kill_ingest)
    city.wait_restarted("ingest", old[0])
    assert "ingest killed by SIGKILL; restarting it" in city.output()


def test_influxd_killed_goes_to_the_spool_and_is_restarted_city_running(city: City) -> None:
    broker, old = city.pids()["mosquitto"], []

    def kill_influxd() -> None:
        old.append(city.signal("influxd", signal.SIGKILL))

    under_load(city, kill_influxd)
    city.wait_restarted("influxd", old[0])
    assert city.pids()["mosquitto"] == broker  # the rest of the city never stopped


def test_influxd_hung_keeps_ingest_ticking_and_is_restarted(city: City) -> None:
    heartbeat = city.data_dir / "ingest" / "smartcity-ingest" / "heartbeat.json"
    stalest, queue, old = [0.0], [0], []

    def hang_influxd() -> None:
        old.append(city.signal("influxd", signal.SIGSTOP))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            stalest[0] = max(stalest[0], time.time() - heartbeat.stat().st_mtime)
            with contextlib.suppress(ValueError, KeyError):  # caught mid-replace
                queue[0] = max(queue[0], int(orjson.loads(heartbeat.read_bytes())["queue"]))
            time.sleep(0.25)

    try:
        under_load(city, hang_influxd, after_s=5)
    finally:
        if old:
            with contextlib.suppress(ProcessLookupError):
                os.kill(old[0], signal.SIGCONT)
    print(f"heartbeat at most {stalest[0]:.1f}s old, writer queue at most {queue[0]}")
    assert stalest[0] < 5, "ingest's heartbeat stalled while InfluxDB hung"
    assert city.pids()["influxd"] != old[0], "up did not restart the hung InfluxDB"
    assert "influxd (pid" in city.output() and "is hung" in city.output()


def test_ingest_hung_is_killed_and_restarted_without_loss(city: City) -> None:
    old: list[int] = []

    def hang_ingest() -> None:
        old.append(city.signal("ingest", signal.SIGSTOP))

    under_load(city, hang_ingest, after_s=16)
    city.wait_restarted("ingest", old[0])


def test_broker_killed_is_restarted_with_its_sessions(city: City) -> None:
    old: list[int] = []

    def kill_broker() -> None:
        old.append(city.signal("mosquitto", signal.SIGKILL))

    under_load(city, kill_broker)
    city.wait_restarted("mosquitto", old[0])


def test_api_killed_is_restarted(city: City) -> None:
    old = city.signal("api", signal.SIGKILL)
    city.wait_restarted("api", old)
    wait_until(lambda: city.readyz() == 200, 60, "the api back")
    with city.http() as http:
        device_id = city.exhibitor["device"]["device_id"]
        # The restarted api read the registry: it knows the exhibitor's device at once.
        assert http.get(f"/api/v1/devices/{device_id}").status_code == 200


def test_no_account_takes_over_the_ingest_session(city: City) -> None:
    creds = city.exhibitor["credentials"]
    lost_before = city.output().count("lost the broker")
    for stolen in ("smartcity-ingest", "smartcity-rules"):
        with Session(city.ports["mqtt"], creds["username"], creds["password"],
                     client_id=stolen) as impostor:
            assert impostor.refused == NOT_AUTHORIZED, f"a device took the id {stolen}"
    time.sleep(2)
    assert city.output().count("lost the broker") == lost_before, "a service was kicked off"


def test_a_child_failing_repeatedly_degrades_the_city_visibly_then_it_recovers(
        city: City) -> None:
    with city.http() as http:
        for _ in range(3):
            old = city.signal("rules", signal.SIGKILL)
            city.wait_restarted("rules", old, timeout=30) if _ < 2 else None
        answer = wait_until(lambda: city.readyz() == 503 and http.get("/readyz"), 30,
                            "/readyz to report the degraded city")
        assert "rules" in answer.json()["checks"]["city"]["detail"]
        assert city.status()["degraded"] == ["rules"]
        assert "the city is degraded: rules" in city.output()
        assert city.running() and city.pids()["ingest"]
        influx = city.influx()
        board = influx.query('SELECT last("degraded") FROM "city_supervision" '
                                    "WHERE \"child\"='city'", db="smartcity")
        influx.close()
        assert board and board[0].values[0][1] >= 1
        wait_until(lambda: city.readyz() == 200, 90,
                   "the city whole again once rules ran a while")


def test_up_itself_killed_and_started_again_loses_nothing(tmp_path: Path) -> None:
    """`up` SIGKILLed: its children get SIGTERM from the kernel (ingest and rules store and
    acknowledge what they hold, the broker saves its sessions); the next `up` on the same
    data takes up the sessions. Devices keep publishing throughout, retrying while no broker
    answers."""
    base = new_base()
    with city_up(tmp_path, "--no-simulators") as first:
        first.register()
        loads = [(first.exhibitor_load(EXHIBITOR_RATE, base),
                  first.exhibitor["device"]["device_id"]),
                 (first.city_load(CITY_RATE, base), CITY_DEVICE[1])]
        time.sleep(3)
        first.proc.kill()
        first.proc.wait(10)
        wait_until(lambda: not processes_using(tmp_path / "var"), 60,
                   "every child of the killed up to stop")
    with city_up(tmp_path, "--no-simulators", ports=first.ports, token=first.token,
                 log_name="up-again.log") as again:
        again.exhibitor = first.exhibitor
        time.sleep(5)
        for load, _ in loads:
            load.stop()
        for load, device_id in loads:
            lost = again.lost(load, device_id, timeout=90)
            print(f"{device_id}: sent {load.sent}, acknowledged {len(load.acked)}, "
                  f"lost {len(lost)}")
            assert len(load.acked) > load.sent // 2
            assert not lost, f"{len(lost)} acknowledged readings of {device_id} lost"
        again.proc.send_signal(signal.SIGTERM)
        assert again.proc.wait(60) == 0
    assert processes_using(tmp_path) == []


def test_load_generator_counts_only_what_the_broker_acknowledged(city: City) -> None:
    """The counting the other tests rely on: readings refused by the broker (a topic the
    device may not publish on) are not counted as acknowledged."""
    creds = city.exhibitor["credentials"]
    load = Load(city.ports["mqtt"], creds["username"], creds["password"],
                "city/flood/flood-nguyen-huu-canh/telemetry", 50, new_base(),
                client_id=creds.get("client_id")).start()
    time.sleep(2)
    load.stop()
    assert load.sent > 0 and not load.acked
    with httpx.Client(base_url=city.api, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
