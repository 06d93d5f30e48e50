"""``smartcity simulate`` through a real Mosquitto: every device publishes QoS 1 telemetry
with its own ``seq``, keeps a retained status with a last will, and ``--seed`` makes the
stream reproducible."""

from __future__ import annotations

import itertools
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from simulators.runner import SEEDED_START_MS, readings, run
from smartcity.city import load_city
from smartcity.codec import Reading, decode, decode_status
from smartcity.models import DeviceState
from smartcity.servers import Mosquitto, free_port, start_with_retry
from smartcity.settings import MqttSettings, SimulatorSettings
from tests.mqtt import Received, collecting, wait_for

DEVICES = {d.device_id for d in load_city().registry()}
OFFLINE_WILL = b'{"state":"offline"}'


def decoded(got: list[Received], root: str) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = defaultdict(list)
    for m in list(got):
        if m.topic.endswith("/telemetry"):
            reading = decode(m.topic, m.payload, root)
            out[reading.device_id].append(reading)
    return out


def every_device_has(got: list[Received], root: str, count: int) -> bool:
    per_device = decoded(got, root)
    return set(per_device) == DEVICES and all(len(r) >= count for r in per_device.values())


def retained_statuses(settings: MqttSettings) -> dict[str, Received]:
    """What a newcomer sees on every device's status topic, by device id."""
    with collecting(settings, f"{settings.root}/+/+/status") as got:
        wait_for(lambda: len(got) >= len(DEVICES), what="a retained status of every device")
        return {m.topic.split("/")[-2]: m for m in got}


def all_retained_offline(settings: MqttSettings, payload: bytes | None = None) -> bool:
    statuses = retained_statuses(settings).values()
    return all(m.retain and decode_status(m.payload).state is DeviceState.OFFLINE
               and (payload is None or m.payload == payload) for m in statuses)


@contextmanager
def simulating(settings: SimulatorSettings) -> Iterator[list[int]]:
    """Run the simulator in a thread; stop it on leaving and yield its exit code list."""
    stop, result = threading.Event(), []
    thread = threading.Thread(target=lambda: result.append(run(settings, stop=stop)))
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive()


def start_simulator(env: dict[str, str], settings: MqttSettings,
                    *args: str) -> subprocess.Popen[bytes]:
    env = {**env, "SMARTCITY_MQTT_URL": settings.url, "SMARTCITY_MQTT_ROOT": settings.root}
    return subprocess.Popen([sys.executable, "-m", "smartcity.cli", "simulate", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_every_device_publishes_qos1_telemetry_with_its_own_seq(mqtt_settings: MqttSettings,
                                                                root: str) -> None:
    settings = SimulatorSettings(mqtt=mqtt_settings, interval_s=0.2, seed=1)

    with collecting(mqtt_settings, f"{root}/+/+/telemetry") as got, \
            simulating(settings) as exit_code:
        wait_for(lambda: every_device_has(got, root, 6), what="6 readings from every device")
        statuses = retained_statuses(mqtt_settings)

    assert exit_code == [0]
    assert {m.qos for m in got} == {1}
    for readings_ in decoded(got, root).values():
        assert [r.seq for r in readings_] == list(range(len(readings_)))
        gaps = [b.ts_ms - a.ts_ms for a, b in itertools.pairwise(readings_)]
        assert 190 <= statistics.median(gaps) <= 210
    assert set(statuses) == DEVICES
    for m in statuses.values():
        assert m.retain and decode_status(m.payload).state is DeviceState.ONLINE


def test_a_stopped_simulator_exits_0_and_leaves_every_device_offline(
        mqtt_settings: MqttSettings, root: str, subprocess_env: dict[str, str]) -> None:
    with collecting(mqtt_settings, f"{root}/+/+/telemetry") as got:
        sim = start_simulator(subprocess_env, mqtt_settings, "--interval", "0.2")
        try:
            wait_for(lambda: every_device_has(got, root, 1), what="every device publishing")
        finally:
            sim.send_signal(signal.SIGTERM)
            _, stderr = sim.communicate(timeout=15)

    assert sim.returncode == 0, stderr.decode()
    statuses = retained_statuses(mqtt_settings)
    assert set(statuses) == DEVICES
    for m in statuses.values():
        status = decode_status(m.payload)
        # A goodbye, not the will: the will has no time.
        assert m.retain and status.state is DeviceState.OFFLINE and status.ts is not None


def test_a_killed_simulator_leaves_every_device_offline_by_its_last_will(
        mqtt_settings: MqttSettings, root: str, subprocess_env: dict[str, str]) -> None:
    with collecting(mqtt_settings, f"{root}/+/+/telemetry") as got:
        sim = start_simulator(subprocess_env, mqtt_settings, "--interval", "0.2")
        try:
            wait_for(lambda: every_device_has(got, root, 1), what="every device publishing")
            assert not all_retained_offline(mqtt_settings)
        finally:
            sim.kill()
            sim.communicate(timeout=15)

    wait_for(lambda: all_retained_offline(mqtt_settings, OFFLINE_WILL),
             what="every device's will, retained")


def test_the_same_seed_publishes_the_same_readings(mqtt_settings: MqttSettings, root: str,
                                                   subprocess_env: dict[str, str]) -> None:
    # Two runs at once, each under its own root; their ts differ (wall clock), values do not.
    roots = [root, f"{root}-again"]
    settings = [mqtt_settings.model_copy(update={"root": r}) for r in roots]
    args = ("--seed", "2024", "--interval", "0.25", "--duration", "2")

    with collecting(settings[0], f"{roots[0]}/#") as first, \
            collecting(settings[1], f"{roots[1]}/#") as second:
        sims = [start_simulator(subprocess_env, s, *args) for s in settings]
        for sim in sims:
            _, stderr = sim.communicate(timeout=30)
            assert sim.returncode == 0, stderr.decode()

    once = values_by_device_and_seq(((m.topic, m.payload) for m in first), roots[0])
    twice = values_by_device_and_seq(((m.topic, m.payload) for m in second), roots[1])
    # The runs may differ by a tick at the end: each stops 2 s after its own start.
    both = once.keys() & twice.keys()
    seqs = 1 + max(seq for _, seq in both)
    generated = readings(load_city(), 2024, SEEDED_START_MS, 0.25, seqs, root=roots[0])
    expected = values_by_device_and_seq(((str(m.topic), m.payload) for m in generated), roots[0])
    assert seqs >= 5 and both == {(d, seq) for d in DEVICES for seq in range(seqs)}
    assert {k: once[k] for k in both} == {k: twice[k] for k in both} == expected


def test_devices_reconnect_after_a_broker_restart_and_keep_counting(tmp_path: Path,
                                                                    root: str) -> None:
    broker = start_with_retry(Mosquitto, tmp_path / "broker")
    assert isinstance(broker, Mosquitto)
    mqtt_settings = MqttSettings(url=broker.url, root=root)
    settings = SimulatorSettings(mqtt=mqtt_settings, interval_s=0.2, seed=3)
    try:
        with simulating(settings) as exit_code:
            with collecting(mqtt_settings, f"{root}/+/+/telemetry") as before:
                wait_for(lambda: every_device_has(before, root, 2), what="readings before")
            last_seq = {d: r[-1].seq for d, r in decoded(before, root).items()}
            broker.stop()
            broker.start()
            restarted_ms = time.time_ns() // 1_000_000
            with collecting(mqtt_settings, f"{root}/+/+/telemetry") as after:
                wait_for(lambda: every_device_has(after, root, 2), what="readings after")
            statuses = retained_statuses(mqtt_settings)
    finally:
        broker.stop()

    assert exit_code == [0]
    for device, readings_ in decoded(after, root).items():
        assert readings_[0].seq > last_seq[device]
    for m in statuses.values():  # announced again, not just kept by the broker's persistence
        status = decode_status(m.payload)
        assert status.state is DeviceState.ONLINE and status.ts and status.ts >= restarted_ms


def test_without_a_broker_the_simulator_waits_then_gives_up_with_exit_code_1(root: str) -> None:
    nowhere = MqttSettings(url=f"mqtt://127.0.0.1:{free_port()}", root=root)
    started = time.monotonic()

    assert run(SimulatorSettings(mqtt=nowhere, interval_s=0.2, seed=1), duration_s=1) == 1
    assert time.monotonic() - started < 3


def values_by_device_and_seq(messages: Iterable[tuple[str, bytes]],
                             root: str) -> dict[tuple[str, int], bytes]:
    """Each telemetry payload without its ts, by (device, seq)."""
    out = {}
    for topic, payload in messages:
        if topic.endswith("/telemetry"):
            body = orjson.loads(payload)
            del body["ts"]
            out[decode(topic, payload, root).device_id, body["seq"]] = orjson.dumps(body)
    return out


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    """Every paho network thread the simulator started is gone when a test ends."""
    before = set(threading.enumerate())
    yield
    wait_for(lambda: not [t for t in set(threading.enumerate()) - before if t.is_alive()],
             timeout=5, what="the simulator's network threads to stop")
