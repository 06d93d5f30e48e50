"""What the broker's event log costs: Mosquitto's throughput with its log on stdout (the
default) and with ``log_type all`` to a file (what ``smartcity up`` runs so ingest learns of
refused publishes, ingest/brokerlog.py), measured back to back in one run.

For each variant a private Mosquitto starts on a free port; one subscriber reads
``bench/#`` at QoS 0 and a publisher sends ``--messages`` QoS 0 messages of a typical reading
(hand-encoded, bench/mqttwire.py) as fast as the socket takes them. The figure is the rate at
which the subscriber received them all, and the broker's CPU time per message. Compare the
two lines as a ratio: the machine is shared.

    .venv/bin/python -m bench.broker_log [--messages 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from bench.mqttwire import DISCONNECT, connect_packet, publish_packet, utf8, varint
from launcher.servers import Mosquitto, start_with_retry

PAYLOAD = b'{"ts":1795316645123,"seq":1,"water_level_cm":12.5,"battery_pct":92.0}'


def subscribe_packet(topic: str) -> bytes:
    body = (1).to_bytes(2, "big") + utf8(topic) + b"\x00"
    return b"\x82" + varint(len(body)) + body


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def receive(sock: socket.socket, expected: int, done: threading.Event, got: list[int]) -> None:
    """Count PUBLISH packets until ``expected`` arrived (the stream is parsed packet by packet:
    every packet's length is in its header)."""
    buf, count = b"", 0
    while count < expected:
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
        pos = 0
        while True:
            if len(buf) - pos < 2:
                break
            mult, length, i = 1, 0, pos + 1
            while i < len(buf):
                b = buf[i]
                length += (b & 0x7F) * mult
                mult <<= 7
                i += 1
                if not b & 0x80:
                    break
            else:
                break
            if len(buf) - i < length:
                break
            if buf[pos] >> 4 == 3:
                count += 1
            pos = i + length
        buf = buf[pos:]
    got.append(count)
    done.set()


def one_run(workdir: Path, messages: int, event_log: bool) -> tuple[float, float]:
    broker = start_with_retry(Mosquitto, workdir, event_log=workdir / "events.log"
                              if event_log else None)
    assert isinstance(broker, Mosquitto) and broker.proc is not None
    try:
        sub = socket.create_connection(("127.0.0.1", broker.port))
        sub.sendall(connect_packet("bench-sub", 0))
        sub.recv(4)  # CONNACK
        sub.sendall(subscribe_packet("bench/#"))
        sub.recv(5)  # SUBACK
        pub = socket.create_connection(("127.0.0.1", broker.port))
        pub.sendall(connect_packet("bench-pub", 0))
        pub.recv(4)
        packet = publish_packet(b"bench/flood/f1/telemetry", PAYLOAD)
        done, got = threading.Event(), []
        reader = threading.Thread(target=receive, args=(sub, messages, done, got), daemon=True)
        reader.start()
        cpu0, t0 = cpu_s(broker.proc.pid), time.perf_counter()
        chunk = packet * 500
        for _ in range(messages // 500):
            pub.sendall(chunk)
        done.wait(300)
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(broker.proc.pid) - cpu0
        pub.sendall(DISCONNECT)
        sub.sendall(DISCONNECT)
        if got != [messages]:
            raise SystemExit(f"received {got} of {messages}")
        return messages / elapsed, cpu / messages * 1e6
    finally:
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for r in range(args.rounds):
            for event_log in (False, True):  # back to back, alternating
                results[event_log].append(one_run(Path(tmp) / f"{r}-{event_log}",
                                                  args.messages, event_log))
        for event_log, runs in results.items():
            best_rate = max(rate for rate, _ in runs)
            best_cpu = min(cpu for _, cpu in runs)
            name = "log_type all to a file" if event_log else "default log (stdout)   "
            print(f"{name}  {best_rate:9.0f} msg/s   broker CPU {best_cpu:5.1f} µs/msg "
                  f"(best of {len(runs)})")
        (plain, _), (logged, _) = (max(results[False]), max(results[True]))
        print(f"ratio: the event log keeps {logged / plain:.0%} of the broker's throughput")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
