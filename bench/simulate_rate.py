#!/usr/bin/env python3
"""Simulator throughput: device messages per second one simulator process sustains into a
real Mosquitto, for a few ``--scale`` values.

Starts a private Mosquitto (launcher.servers, the stack's broker tuning) in a temporary
directory and, per scale, runs the simulator in this process as fast as the broker
acknowledges (``speed = inf``: the simulated clock never waits) while a subscriber in another
process counts the telemetry that comes out of the broker. Every device keeps its own MQTT
connection (its last will), all driven by one selector loop.

Figures, per scale:
  devices     simulated devices (16 per copy of the city)
  connect s   wall time to open every device's connection and announce it online
  publish/s   readings published and acknowledged (QoS 1) per second, connections excluded
  received/s  readings the subscriber got per second, from its first to its last
  lost        readings published but never received (should be 0)
  paho pub/s  the same number of readings from a bare paho QoS 1 publisher (one connection,
              bench/pahopub.py), measured right before; vs paho: publish/s as its ratio

Run ``.venv/bin/python bench/simulate_rate.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pahopub import publish_all  # bench/pahopub.py, beside this file

from launcher.servers import Mosquitto, start_with_retry
from simulators import runner
from simulators.runner import SEEDED_START_MS
from smartcity.city import load_city
from smartcity.settings import MqttSettings, SimulatorSettings

IDLE_S = 3.0  # the subscriber gives up this long after the last message


def count(url: str, root: str, expected: int, ready: Connection, out: Connection) -> None:
    """Subscriber process: count telemetry under ``root`` until ``expected`` or idle."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = url.removeprefix("mqtt://").split(":")
    got = [0, 0.0, 0.0]  # count, first, last
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if got[0] == 0:
            got[1] = now
        got[0] += 1
        got[2] = now

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{root}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(f"{root}/+/+/telemetry", qos=0)
    client.connect(host, int(port))
    client.loop_start()
    subscribed.wait(10)
    ready.send(True)
    while got[0] < expected and not (got[0] and time.monotonic() - got[2] > IDLE_S):
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    out.send(tuple(got))


def measure(broker: Mosquitto, scale: int, messages: int) -> dict[str, float]:
    root = f"bench-x{scale}"
    devices = 16 * scale
    assert devices == len(load_city(scale=scale).registry())
    steps = max(3, math.ceil(messages / devices))
    expected = steps * devices
    ready_r, ready_w = mp.Pipe(duplex=False)
    out_r, out_w = mp.Pipe(duplex=False)
    sub = mp.Process(target=count, args=(broker.url, root, expected, ready_w, out_w))
    sub.start()
    ready_r.recv()

    # The runner logs when every device is online; time the publishing from there.
    marks: dict[str, float] = {}
    original = runner._Runner._loop

    def timed_loop(self: runner._Runner) -> None:
        marks["online"] = time.monotonic()
        original(self)
        marks["done"] = time.monotonic()

    runner._Runner._loop = timed_loop  # type: ignore[method-assign]
    settings = SimulatorSettings(mqtt=MqttSettings(url=broker.url, root=root), interval_s=10,
                                 seed=1)
    started = time.monotonic()
    try:
        code = runner.run(settings, duration_s=steps * 10, start=SEEDED_START_MS,
                          speed=math.inf, scale=scale)
    finally:
        runner._Runner._loop = original  # type: ignore[method-assign]
    stopped = time.monotonic()
    received, first, last = out_r.recv()
    sub.join(10)
    assert code == 0, f"the simulator exited with {code}"
    return {
        "devices": devices,
        "connect_s": marks["online"] - started,
        "publish_rate": expected / (marks["done"] - marks["online"]),
        "receive_rate": received / (last - first) if last > first else 0.0,
        "lost": expected - received,
        "total_s": stopped - started,
    }


def measure_paho(broker: Mosquitto, messages: int) -> dict[str, float]:
    """The yardstick: the same number of readings of the city's devices from a bare paho QoS 1
    publisher (bench/pahopub.py), counted by the same subscriber."""
    root = "bench-paho"
    devices = load_city().registry()
    body = b'{"ts": 1780000000000, "seq": 1, "battery_pct": 50.0}'
    batch = [(f"{root}/{d.domain.value}/{d.device_id}/telemetry", body) for d in devices]
    sent = (batch * (messages // len(batch) + 1))[:messages]
    ready_r, ready_w = mp.Pipe(duplex=False)
    out_r, out_w = mp.Pipe(duplex=False)
    sub = mp.Process(target=count, args=(broker.url, root, messages, ready_w, out_w))
    sub.start()
    ready_r.recv()
    seconds, cpu = publish_all(broker.port, sent)
    received, first, last = out_r.recv()
    sub.join(10)
    return {"publish_rate": messages / seconds, "cpu": cpu / seconds,
            "receive_rate": received / (last - first) if last > first else 0.0,
            "lost": messages - received}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10,50,100",
                        help="comma-separated --scale values (default: 1,10,50,100)")
    parser.add_argument("--messages", type=int, default=60_000,
                        help="readings per scale (default: 60000)")
    parser.add_argument("--quick", action="store_true", help="scales 1 and 10, 20000 readings")
    args = parser.parse_args()
    scales = [1, 10] if args.quick else [int(s) for s in args.scales.split(",")]
    messages = 20_000 if args.quick else args.messages

    print(f"simulate_rate: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {messages} readings per scale, QoS 1, a connection per "
          "device")
    with tempfile.TemporaryDirectory(prefix="simulate-rate-") as tmp:
        broker = start_with_retry(Mosquitto, Path(tmp) / "mosquitto")
        assert isinstance(broker, Mosquitto)
        try:
            # The yardstick is measured right before each scale: the load of a shared
            # machine drifts, the ratio of two back-to-back figures much less.
            print(f"{'scale':>6} {'devices':>8} {'connect s':>10} {'publish/s':>10} "
                  f"{'received/s':>11} {'lost':>6} {'paho pub/s':>11} {'vs paho':>8}")
            for scale in scales:
                paho = measure_paho(broker, messages)
                r = measure(broker, scale, messages)
                print(f"{scale:>6} {r['devices']:>8.0f} {r['connect_s']:>10.2f} "
                      f"{r['publish_rate']:>10.0f} {r['receive_rate']:>11.0f} "
                      f"{r['lost']:>6.0f} {paho['publish_rate']:>11.0f} "
                      f"{r['publish_rate'] / paho['publish_rate']:>7.2f}x", flush=True)
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
