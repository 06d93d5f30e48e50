"""What a SIGKILLed Mosquitto loses, and what saving more often costs, per persistence setting.

    .venv/bin/python bench/broker_persistence.py              # about a minute
    .venv/bin/python bench/broker_persistence.py --messages 50000

For each setting (time-based ``autosave_interval 30``, the old one, against
``autosave_on_changes true`` with several change counts) in ONE run, back to back:

- cost: a QoS 1 publisher sends ``--messages`` readings as fast as the broker acknowledges
  them, with an online subscriber taking them (as ingest does) and with the subscriber's
  persistent session offline (the broker queues everything: the worst case for saving, the
  whole queue is written at each save); the bench prints messages a second and the bytes the
  broker wrote;
- window: with the subscriber offline, the broker is SIGKILLed right after the publisher got
  its last PUBACK, restarted on the same data, and the subscriber counts what it gets: the
  acknowledged readings that never arrive are what a broker crash loses at that moment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from launcher.servers import Mosquitto, free_port

SETTINGS = {
    "interval 30 s (time)": ["autosave_interval 30"],
    "interval 1 s (time)": ["autosave_interval 1"],
    "on changes, every 1000": ["autosave_on_changes true", "autosave_interval 1000"],
    "on changes, every 100": ["autosave_on_changes true", "autosave_interval 100"],
    "on changes, every 10": ["autosave_on_changes true", "autosave_interval 10"],
    "on changes, every 1": ["autosave_on_changes true", "autosave_interval 1"],
}


class Broker(Mosquitto):
    lines: tuple[str, ...] = ()

    def write_config(self) -> None:
        super().write_config()
        # Our lines last: they override the shared tuning's autosave settings.
        with self.config_path.open("a") as f:
            f.write("\n".join(self.lines) + "\n")


def written_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def subscriber(port: int, online: bool) -> tuple[mqtt.Client, list[int]]:
    got: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ingest", protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.append(int(m.payload))
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe("bench/t", 1)
    time.sleep(0.3)
    if not online:
        c.disconnect()
        c.loop_stop()
    return c, got


def publish(port: int, count: int) -> float:
    done = threading.Event()
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] >= count:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-device", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    started = time.perf_counter()
    for n in range(count):
        c.publish("bench/t", str(n).encode(), qos=1)
    if not done.wait(300):
        raise RuntimeError(f"only {acked[0]} of {count} acknowledged")
    elapsed = time.perf_counter() - started
    c.disconnect()
    c.loop_stop()
    return elapsed


def run(name: str, lines: list[str], count: int, root: Path) -> str:
    out = []
    for online in (True, False):
        broker = Broker(workdir=root / f"{len(os.listdir(root))}", port=free_port())
        broker.lines = tuple(lines)
        broker.start()
        assert broker.proc is not None
        sub, _ = subscriber(broker.port, online)
        before = written_bytes(broker.proc.pid)
        elapsed = publish(broker.port, count)
        wrote = written_bytes(broker.proc.pid) - before
        out.append(f"{count / elapsed:8.0f} msg/s {wrote / 2**20:7.1f} MiB written "
                   f"({'subscriber online' if online else 'subscriber offline'})")
        if online:
            sub.disconnect()
            sub.loop_stop()
            broker.stop()
            continue
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait()
        broker.proc = None
        broker.start()
        again, got = subscriber(broker.port, True)
        time.sleep(2.0)
        again.disconnect()
        again.loop_stop()
        broker.stop()
        out.append(f"broker SIGKILLed after the last PUBACK: {count - len(set(got))} of {count} "
                   "acknowledged readings lost")
    return f"{name}:\n    " + "\n    ".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="smartcity-bench-persist-"))
    try:
        print(f"{args.messages} QoS 1 readings per run, all settings in this one run; "
              "the machine is shared, compare the rows with each other", flush=True)
        for name, lines in SETTINGS.items():
            print(run(name, lines, args.messages, root), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
