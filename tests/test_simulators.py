"""``smartcity simulate`` through a real Mosquitto: every device publishes QoS 1 telemetry
with its own ``seq``, keeps a retained status with a last will, the same seed, start and
scenario give the same bytes, and commands on ``{root}/control/...`` take effect."""

from __future__ import annotations

import itertools
import math
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from launcher.servers import Mosquitto, free_port, start_with_retry
from simulators.runner import SEEDED_START_MS, readings, run
from simulators.scenarios import load_scenario
from smartcity.city import load_city
from smartcity.codec import Reading, decode, decode_status
from smartcity.control import SimulatorState, decode_state
from smartcity.models import DeviceState
from smartcity.settings import MqttSettings, SimulatorSettings
from tests.mqtt import Received, collecting, publish, wait_for

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
def simulating(settings: SimulatorSettings, **options: object) -> Iterator[list[int]]:
    """Run the simulator in a thread; stop it on leaving and yield its exit code list."""
    stop, result = threading.Event(), []
    thread = threading.Thread(target=lambda: result.append(run(settings, stop=stop,
                                                               **options)))  # type: ignore[arg-type]
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
    return subprocess.Popen([sys.executable, "-m", "launcher.cli", "simulate", *args], env=env,
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
        # ts is simulated time: exactly one interval apart.
        assert {b.ts_ms - a.ts_ms for a, b in itertools.pairwise(readings_)} == {200}
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


def test_the_same_seed_start_and_scenario_publish_the_same_bytes_at_any_speed(
        mqtt_settings: MqttSettings, root: str) -> None:
    # Two runs at once under their own roots, one in (simulated) real time and one as fast as
    # the broker takes it: byte-identical streams, ts included, and what readings() gives.
    roots = [root, f"{root}-again"]
    settings = [SimulatorSettings(mqtt=mqtt_settings.model_copy(update={"root": r}),
                                  interval_s=0.25, seed=2024) for r in roots]
    storm = "sensor-faults"  # a flaky radio from the start: some readings are lost
    expected = [(str(m.topic), m.payload) for m in readings(
        load_city(), 2024, SEEDED_START_MS, 0.25, 8, root=roots[0],
        scenario=load_scenario(storm))]
    with collecting(settings[0].mqtt, f"{roots[0]}/+/+/telemetry") as first, \
            collecting(settings[1].mqtt, f"{roots[1]}/+/+/telemetry") as second:
        runs = [threading.Thread(target=run, kwargs={
            "settings": s, "duration_s": 2, "start": SEEDED_START_MS, "speed": speed,
            "scenario": storm}) for s, speed in zip(settings, (1, math.inf), strict=True)]
        for t in runs:
            t.start()
        for t in runs:
            t.join(30)
        wait_for(lambda: len(first) == len(second) == len(expected),
                 what="every reading of both runs")

    assert len(expected) < 8 * len(DEVICES)
    assert sorted((m.topic, m.payload) for m in first) == sorted(expected)
    assert sorted((m.topic.replace(roots[1], roots[0], 1), m.payload) for m in second) == \
        sorted(expected)
    # Per device, in publish order.
    for device in DEVICES:
        assert [m.payload for m in first if f"/{device}/" in m.topic] == \
            [p for t, p in expected if f"/{device}/" in t]


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


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    """Every paho network thread the simulator started is gone when a test ends."""
    before = set(threading.enumerate())
    yield
    wait_for(lambda: not [t for t in set(threading.enumerate()) - before if t.is_alive()],
             timeout=5, what="the simulator's network threads to stop")


# --- control through the broker ----------------------------------------------------------

def states(got: list[Received]) -> list[SimulatorState]:
    return [decode_state(m.payload) for m in list(got) if m.topic.endswith("/control/state")]


def latest_state(got: list[Received]) -> SimulatorState | None:
    found = states(got)
    return found[-1] if found else None


def state_where(got: list[Received], condition: Callable[[SimulatorState], object],
                what: str) -> SimulatorState:
    def found() -> SimulatorState | None:
        state = latest_state(got)
        return state if state is not None and condition(state) else None

    state = wait_for(found, what=what)
    assert state is not None
    return state


def ts_of(got: list[Received], root: str, device: str) -> list[int]:
    return [r.ts_ms for r in decoded(got, root).get(device, [])]


def test_control_commands_take_effect_on_a_running_simulator(mqtt_settings: MqttSettings,
                                                              root: str) -> None:
    settings = SimulatorSettings(mqtt=mqtt_settings, interval_s=10, seed=8)
    control = f"{root}/control"
    with collecting(mqtt_settings, f"{root}/control/state", f"{root}/+/+/telemetry") as got, \
            simulating(settings, start=SEEDED_START_MS, speed=60) as exit_code:
        first = state_where(got, lambda s: True, "the simulator's state")
        assert first.running and first.speed == 60 and first.scenario is None
        assert first.seed == 8 and first.start == SEEDED_START_MS and first.devices == 16

        # Start a scenario: its first fault drops flood-huynh-tan-phat from +10 min to +25 min.
        publish(mqtt_settings, f"{control}/scenario/start",
                b'{"name": "sensor-faults", "id": "go-1"}')
        started = state_where(got, lambda s: s.scenario == "sensor-faults", "the scenario")
        assert started.last_command is not None and started.last_command.id == "go-1"
        assert started.last_command.ok and started.scenario_started is not None
        began = started.scenario_started

        # Faster: ten simulated minutes per second.
        publish(mqtt_settings, f"{control}/speed", b'{"speed": 600}')
        state_where(got, lambda s: s.speed == 600, "the new speed")
        t0 = time.monotonic()
        sim0 = ts_of(got, root, "rain-sai-gon")[-1]
        time.sleep(1.5)
        sim1 = ts_of(got, root, "rain-sai-gon")[-1]
        assert (sim1 - sim0) / 1000 / (time.monotonic() - t0) > 250  # ~600 simulated s/s

        wait_for(lambda: ts_of(got, root, "rain-sai-gon")[-1] > began + 30 * 60_000,
                 what="the scenario's first half hour")
        dropped = [ts for ts in ts_of(got, root, "flood-huynh-tan-phat")
                   if 11 * 60_000 <= ts - began < 24 * 60_000]
        assert dropped == []
        seqs = [r.seq for r in decoded(got, root)["flood-huynh-tan-phat"]]
        assert any(b - a > 1 for a, b in itertools.pairwise(seqs))  # the gap ingest counts

        # Pause: no readings; resume: simulated time goes on from where it stopped.
        publish(mqtt_settings, f"{control}/pause", b"")
        state_where(got, lambda s: s.paused, "the pause")
        time.sleep(0.3)
        before = len(got)
        paused_at = ts_of(got, root, "rain-sai-gon")[-1]
        time.sleep(1.0)
        assert len([m for m in got[before:] if m.topic.endswith("/telemetry")]) == 0
        publish(mqtt_settings, f"{control}/resume", b"{}")
        wait_for(lambda: ts_of(got, root, "rain-sai-gon")[-1] > paused_at, what="readings")
        after = [t for t in ts_of(got, root, "rain-sai-gon") if t > paused_at]
        assert after[0] == paused_at + 10_000

        # A bad command is refused and reported; stop ends the scenario.
        publish(mqtt_settings, f"{control}/scenario/start", b'{"name": "alien-invasion"}')
        refused = state_where(got, lambda s: s.last_command is not None
                              and not s.last_command.ok, "the refusal")
        assert refused.last_command is not None
        assert "alien-invasion" in refused.last_command.detail
        assert refused.scenario == "sensor-faults"
        publish(mqtt_settings, f"{control}/scenario/stop", b'{"id": "halt"}')
        state_where(got, lambda s: s.scenario is None and s.last_command is not None
                    and s.last_command.id == "halt", "the scenario to stop")

    assert exit_code == [0]
    with collecting(mqtt_settings, f"{root}/control/state") as retained:
        gone = state_where(retained, lambda s: True, "the retained state")
    assert not gone.running and gone.sim_time is not None


def test_a_killed_simulator_leaves_its_state_not_running(
        mqtt_settings: MqttSettings, root: str, subprocess_env: dict[str, str]) -> None:
    with collecting(mqtt_settings, f"{root}/control/state") as got:
        sim = start_simulator(subprocess_env, mqtt_settings, "--interval", "0.2")
        try:
            state_where(got, lambda s: s.running, "a running state")
        finally:
            sim.kill()
            sim.communicate(timeout=15)
        state_where(got, lambda s: not s.running, "the will")
    assert got[-1].payload == b'{"running":false}'


def test_a_scaled_city_publishes_every_copy_on_its_own_connection(
        mqtt_settings: MqttSettings, root: str) -> None:
    settings = SimulatorSettings(mqtt=mqtt_settings, interval_s=1, seed=4)
    scaled = {d.device_id for d in load_city(scale=3).registry()}
    with collecting(mqtt_settings, f"{root}/+/+/telemetry") as got:
        assert run(settings, duration_s=5, start=SEEDED_START_MS, speed=math.inf, scale=3) == 0
        wait_for(lambda: len(got) == 5 * len(scaled), what="five readings of every copy")
    assert set(decoded(got, root)) == scaled
    with collecting(mqtt_settings, f"{root}/+/+/status") as statuses:
        wait_for(lambda: len(statuses) == len(scaled), what="every copy's retained status")
    assert all(decode_status(m.payload).state is DeviceState.OFFLINE for m in statuses)
