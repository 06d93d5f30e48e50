#!/usr/bin/env python3
"""Ingest throughput: the highest QoS 1 rate at which every message reaches InfluxDB.

Starts a private Mosquitto and influxd (launcher.servers, the same broker tuning as the
stack) in a temporary directory, then for each offered rate of a ladder publishes a stream of
QoS 1 telemetry from every registered device for ``--seconds`` and measures, one after the
other on the same stream:

  bare    a paho-mqtt subscriber in its own process that only counts (QoS 1, auto-ack): the
          ceiling for any Python consumer on this machine;
  ingest  the real ``smartcity ingest`` process, storing into a fresh InfluxDB database,
          polled with ``SELECT count(seq)`` until every message is stored.

A step passes when every message has arrived (bare) or is stored (ingest) within the grace
period after the publisher finished. The summary gives, per consumer, the highest offered
rate that passed. After a failing step the bench keeps waiting to show whether the broker
delivered everything late (nothing lost) or dropped messages.

Run ``.venv/bin/python bench/ingest_throughput.py`` (3-8 minutes) or ``--quick`` (about
20 seconds); see bench/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import ast
import bisect
import contextlib
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mqttwire import DISCONNECT, connect_packet, publish_packet  # bench/, beside this file

DEFAULT_RATES = (2_000, 4_000, 6_000, 8_000, 10_000, 12_000, 15_000, 20_000, 25_000, 30_000, 40_000)
QUICK_RATES = (2_000, 10_000)


@dataclass(frozen=True)
class Variant:
    """A consumer of the ladder: the bare paho subscriber, or ingest with some settings and
    some number of worker processes in one share group."""

    name: str
    env: tuple[tuple[str, str], ...] = ()
    workers: int = 1
    about: str = ""


# Each step of ingest's speed-up, measured against the others on the same stream: the MQTT
# edge first, then validation without the pydantic models, then more workers.
VARIANTS = {v.name: v for v in (
    Variant("bare", about="paho-mqtt v5 subscriber that only counts (auto-ack): paho's ceiling"),
    Variant("paho", (("SMARTCITY_INGEST_EDGE", "paho"),
                     ("SMARTCITY_INGEST_FAST_VALIDATION", "false")),
            about="ingest on paho-mqtt with pydantic validation (before)"),
    Variant("edge", (("SMARTCITY_INGEST_EDGE", "asyncio"),
                     ("SMARTCITY_INGEST_FAST_VALIDATION", "false")),
            about="ingest on its asyncio MQTT edge, pydantic validation"),
    Variant("ingest", about="ingest as shipped: asyncio edge and fast validation"),
    Variant("ingest2", workers=2, about="two ingest workers in one share group"),
    Variant("ingest3", workers=3, about="three ingest workers in one share group"),
)}
# How long after the publisher's last message a consumer may take to finish and still pass.
# bare: delivery is sub-millisecond at steady state; 1 s only absorbs scheduler noise.
# ingest: adds its batch interval (0.25 s), one batch write (10-50 ms measured) and our poll
# interval (0.1 s plus the query): 0.1-0.4 s measured when it keeps up; 1.5 s leaves room for
# a slow write without letting a consumer that falls behind pass: at 5 s steps a consumer
# slower than 77% of the offered rate fails (bare: 83%; --seconds 10: 87% and 91%).
BARE_GRACE_S = 1.0
INGEST_GRACE_S = 1.5
POLL_S = 0.1
BUSY_WARN_PCT = 20  # flag a step if other programs used more than this % of a core
SLICE_S = 0.005  # the publisher sends what is due every 5 ms


def child_setup() -> None:
    """In a child process: die with the bench, and leave Ctrl-C to the bench, which stops
    its children in order."""
    from launcher.servers import kill_on_parent_death

    kill_on_parent_death()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- a minimal MQTT 3.1.1 QoS 1 publisher ---------------------------------------------------
#
# paho-mqtt costs 50-100 µs of CPU per QoS 1 message on the publishing side (its PUBACK
# handling alone builds a Properties and a ReasonCode object per ack): one paho publisher
# tops out near 10-20k msg/s at 100% of a core here, leaving one core for broker, consumer
# and influxd. Packets come pre-encoded (bench/mqttwire.py) and go out in 5 ms slices.




def split_packets(buf: bytearray) -> tuple[list[int], int]:
    """Packet types of the complete packets at the front of ``buf`` and their total length."""
    types: list[int] = []
    i, n = 0, len(buf)
    while i + 2 <= n:
        length, shift, j = 0, 0, i + 1
        while j < n:
            b = buf[j]
            length |= (b & 0x7F) << shift
            shift += 7
            j += 1
            if not b & 0x80:
                break
        else:
            break
        if j + length > n:
            break
        types.append(buf[i] >> 4)
        i = j + length
    return types, i


class RawPublisher:
    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        connack = self._read_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused the publisher: CONNACK {connack.hex()}")
        self.inbox = bytearray()

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("broker closed the connection")
            data += chunk
        return data

    def publish_wait(self, topic: str, payload: bytes, mid: int = 1) -> None:
        """One QoS 1 message, returning once the broker has acknowledged it."""
        self.sock.sendall(publish_packet(topic.encode(), payload, qos=1, mid=mid))
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("broker closed the connection")
            self.inbox += data
            types, used = split_packets(self.inbox)
            del self.inbox[:used]
            if 4 in types:
                return

    def read_acks(self) -> int:
        """PUBACKs waiting in the socket (non-blocking socket)."""
        acks = 0
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                raise RuntimeError("broker closed the connection mid-stream")
            self.inbox += data
        if self.inbox:
            types, used = split_packets(self.inbox)
            del self.inbox[:used]
            acks = types.count(4)
            if acks != len(types):
                raise RuntimeError(f"unexpected packets from the broker: {types}")
        return acks

    def close(self) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.sendall(DISCONNECT)
        except OSError:
            pass
        self.sock.close()


# -- the stream ----------------------------------------------------------------------------


def stream_devices() -> list[tuple[str, str]]:
    """(device_id, domain) of every registered device: ingest refuses unknown ids. Checks
    that ingest's own decoder accepts each device's payload, so a change of the contract
    stops the bench instead of showing up as messages never stored."""
    from smartcity.city import load_city
    from smartcity.codec import decode

    devices = [(d.device_id, d.domain.value) for d in load_city().registry()]
    for device, domain in devices:
        decode(topic_of("bench", domain, device), make_payload(domain, 1, 1_700_000_000_000),
               "bench")
    return devices


def make_payload(domain: str, seq: int, ts: int) -> bytes:
    v = seq % 97
    if domain == "home":
        body = (f'"power_w":{400 + v * 7}.5,"temperature_c":{27 + v % 6}.5,'
                f'"humidity_pct":{60 + v % 30}.0,"pm25_ugm3":{10 + v % 40}.5,'
                f'"co2_ppm":{500 + v * 3}.0')
    elif domain == "traffic":
        body = (f'"speed_kmh":{15 + v % 40}.5,"occupancy_pct":{20 + v % 60}.0,'
                f'"flow_veh_h":{900 + v * 11}.0')
    elif domain == "flood":
        body = f'"water_level_cm":{v % 35}.5'
    elif domain == "weather":
        body = (f'"rain_mm_h":{v % 20}.5,"temperature_c":{28 + v % 5}.5,'
                f'"humidity_pct":{70 + v % 25}.0,"wind_kmh":{5 + v % 15}.5')
    else:
        raise ValueError(f"the bench has no payload for domain {domain!r}")
    return f'{{"ts":{ts},"seq":{seq},{body}}}'.encode()


def topic_of(root: str, domain: str, device_id: str) -> str:
    return f"{root}/{domain}/{device_id}/telemetry"


def build_stream(root: str, devices: list[tuple[str, str]], n: int,
                 base_ms: int) -> tuple[bytearray, list[int]]:
    """n pre-encoded PUBLISH packets, devices round-robin; each device's points have
    distinct timestamps (base_ms + its count) and increasing seq, so every message is a
    distinct point in InfluxDB. Returns the bytes and each packet's end offset."""
    topics = [(topic_of(root, dom, dev).encode(), dom) for dev, dom in devices]
    buf = bytearray()
    ends: list[int] = []
    k = len(topics)
    for i in range(n):
        topic, domain = topics[i % k]
        seq = i // k
        buf += publish_packet(topic, make_payload(domain, seq, base_ms + seq), qos=1,
                              mid=i % 65535 + 1)
        ends.append(len(buf))
    return buf, ends


def publisher_main(conn: Connection, port: int, root: str, devices: list[tuple[str, str]],
                   n: int, rate: float, seconds: float, base_ms: int, inflight: int) -> None:
    """Child process: build the stream, connect, say ready, wait for the start time from the
    parent, publish paced in SLICE_S slices, report when the broker had acked everything."""
    child_setup()
    buf, ends = build_stream(root, devices, n, base_ms)
    pub = RawPublisher(port, f"bench-pub-{os.getpid()}")
    pub.sock.setblocking(False)
    conn.send("ready")
    t0: float = conn.recv()
    view = memoryview(buf)
    pos = sent = acked = 0
    t_sent = t_acked = None
    max_behind = 0
    give_up = t0 + seconds + 120
    while time.monotonic() < t0:
        time.sleep(min(0.001, max(0.0, t0 - time.monotonic())))
    next_tick = t0
    try:
        while True:
            now = time.monotonic()
            if sent < n:
                due = min(n, int((now - t0) * rate) + 1)
                target = min(due, acked + inflight)
                if target > sent:
                    with contextlib.suppress(BlockingIOError):
                        pos += pub.sock.send(view[pos:ends[target - 1]])
                    sent = bisect.bisect_right(ends, pos)
                    if sent == n:
                        t_sent = time.monotonic()
                max_behind = max(max_behind, due - sent)
            acked += pub.read_acks()
            if acked >= n:
                t_acked = time.monotonic()
                break
            if now > give_up:
                break
            next_tick += SLICE_S
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()
    finally:
        pub.close()
    conn.send({"t0": t0, "sent": sent, "acked": acked, "t_sent": t_sent, "t_acked": t_acked,
               "max_behind": max_behind})


# -- the bare subscriber -------------------------------------------------------------------


def bare_main(conn: Connection, port: int, topic_filter: str, expected: int) -> None:
    """Child process: a paho subscriber that only counts. Answers "report" with
    (count, monotonic time it reached ``expected``, time of its last message)."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    child_setup()
    state = {"count": 0, "t_all": None, "t_last": None}
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        state["count"] += 1
        state["t_last"] = time.monotonic()
        if state["count"] == expected:
            state["t_all"] = state["t_last"]

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{os.getpid()}",
                         protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not subscribed.wait(15):
        conn.send("could not subscribe")
        return
    conn.send("ready")
    try:
        while True:
            cmd = conn.recv()
            if cmd == "report":
                conn.send((state["count"], state["t_all"], state["t_last"]))
            else:
                break
    finally:
        client.disconnect()
        client.loop_stop()


# -- measuring -----------------------------------------------------------------------------


def cpu_seconds(pid: int | list[int] | None) -> float | None:
    if isinstance(pid, list):
        parts = [cpu_seconds(p) for p in pid]
        return None if None in parts else sum(p for p in parts if p is not None)
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time spent by the whole machine (all cores), from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuWatch:
    """CPU use of each process of the step over the step, and of everything else on the
    machine ("other": another program's load makes the figures unreliable)."""

    pids: dict[str, int | list[int] | None]
    start: dict[str, float | None] = field(default_factory=dict)
    t_start: float = 0.0
    busy_start: float = 0.0

    def _sample(self) -> dict[str, float | None]:
        return {k: cpu_seconds(p) for k, p in {**self.pids, "bench": os.getpid()}.items()}

    def begin(self) -> None:
        self.t_start = time.monotonic()
        self.busy_start = busy_seconds()
        self.start = self._sample()

    def end(self) -> dict[str, float | None]:
        wall = time.monotonic() - self.t_start
        busy = busy_seconds() - self.busy_start
        now = self._sample()
        out: dict[str, float | None] = {}
        ours = 0.0
        for k in now:
            a, b = self.start.get(k), now[k]
            if a is None or b is None or wall <= 0:
                out[k] = None
                continue
            ours += b - a
            out[k] = 100 * (b - a) / wall
        out["other"] = max(0.0, 100 * (busy - ours) / wall) if wall > 0 else None
        return out


@dataclass
class Step:
    consumer: str
    offered: int
    n: int
    pub: dict[str, Any] = field(default_factory=dict)
    got_at_deadline: int = 0
    done_s: float | None = None  # seconds from the start until all n arrived / were stored
    passed: bool = False
    eventually: int | None = None  # after a failure: how many arrived in the end
    cpu: dict[str, float | None] = field(default_factory=dict)
    note: str = ""

    @property
    def pub_s(self) -> float | None:
        p = self.pub
        return p["t_acked"] - p["t0"] if p.get("t_acked") else None

    @property
    def pub_rate(self) -> float | None:
        s = self.pub_s
        return self.n / s if s else None

    def publisher_short(self, seconds: float) -> bool:
        s = self.pub_s
        return s is None or s > seconds * 1.03 + 0.05

    @property
    def rate(self) -> float | None:
        return self.n / self.done_s if self.done_s else None

    @property
    def us_per_message(self) -> float | None:
        """The consumer's CPU per message (all its processes), over the step."""
        cpu = self.cpu.get("consumer")
        if cpu is None or not self.pub_s or not self.done_s:
            return None
        return cpu / 100 * max(self.pub_s, self.done_s) * 1e6 / self.n

    @property
    def lag(self) -> float | None:
        return max(0.0, self.done_s - self.pub_s) if self.done_s and self.pub_s else None


class BenchError(RuntimeError):
    pass


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.devices = stream_devices()
        self.mp = mp.get_context("spawn")
        self.children: list[Any] = []  # processes to stop whatever happens
        self.step_no = 0
        self.mosquitto: Any = None
        self.influxd: Any = None
        self.influx: Any = None

    # servers

    def start_servers(self) -> None:
        from launcher.servers import Influxd, Mosquitto, start_with_retry
        from smartcity.settings import InfluxSettings
        from storage.influx import InfluxClient

        self.mosquitto = start_with_retry(Mosquitto, self.workdir / "mosquitto")
        self.influxd = start_with_retry(Influxd, self.workdir / "influxd")
        self.influx = InfluxClient(InfluxSettings(url=self.influxd.url, db="bench",
                                                  timeout_s=30))

    def stop_all(self) -> None:
        for child in reversed(self.children):
            stop_child(child)
        self.children.clear()
        if self.influx is not None:
            self.influx.close()
        for server in (self.mosquitto, self.influxd):
            if server is not None:
                server.stop()

    # children

    def stop(self, child: Any, conn: Connection | None = None) -> None:
        stop_child(child, conn)
        if child in self.children:
            self.children.remove(child)

    def spawn(self, target: Any, *args: Any) -> tuple[Any, Connection]:
        parent, child = self.mp.Pipe()
        proc = self.mp.Process(target=target, args=(child, *args), daemon=True)
        proc.start()
        child.close()
        self.children.append(proc)
        return proc, parent

    def start_publisher(self, root: str, n: int, rate: int,
                        base_ms: int) -> tuple[Any, Connection]:
        proc, conn = self.spawn(publisher_main, self.mosquitto.port, root, self.devices, n,
                                float(rate), self.args.seconds, base_ms, self.args.inflight)
        if not conn.poll(60):
            raise BenchError("the publisher did not get ready within 60 s")
        if conn.recv() != "ready":
            raise BenchError("the publisher failed to start")
        return proc, conn

    def go(self, conn: Connection) -> float:
        t0 = time.monotonic() + 0.2
        conn.send(t0)
        return t0

    def next_names(self, consumer: str, rate: int) -> tuple[str, int]:
        self.step_no += 1
        base_ms = (int(time.time()) // 60 * 60) * 1000
        return f"bench{self.step_no}-{consumer}-{rate}", base_ms

    def measure(self, step: Step, conn: Connection, t0: float, grace: float,
                count: Any, watch: CpuWatch) -> None:
        """Wait for the publisher and the consumer; ``count()`` is the consumer's current
        count. Pass: all n in by max(planned end, broker acked everything) + grace."""
        seconds = self.args.seconds
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        hard_limit = t0 + seconds + 150
        deadline: float | None = None
        in_time = 0  # the last count seen before the deadline
        while True:
            if deadline is None and conn.poll():
                step.pub = conn.recv()
                end = step.pub["t_acked"] or time.monotonic()
                deadline = max(t0 + seconds, end) + grace
            got = count()
            now = time.monotonic()
            if deadline is None or now <= deadline:
                in_time = min(got, step.n)
            if got >= step.n and step.done_s is None:
                step.done_s = now - t0
            if step.done_s is not None and deadline is not None:
                break
            if (deadline is not None and now > deadline) or now > hard_limit:
                break
            time.sleep(POLL_S)
        step.cpu = watch.end()
        if not step.pub:
            step.note = "publisher never finished"
            return
        assert deadline is not None
        step.passed = step.done_s is not None and t0 + step.done_s <= deadline
        step.got_at_deadline = step.n if step.passed else in_time
        if step.pub["acked"] < step.n:
            step.note = f"broker acked only {step.pub['acked']} of {step.n}"
            step.passed = False
        if not step.passed:
            self.drain(step, t0, count)

    def drain(self, step: Step, t0: float, count: Any) -> None:
        """After a failure: wait for the late messages, to show whether any were lost, and
        how fast the consumer worked through the backlog."""
        last, last_change = -1, time.monotonic()
        limit = time.monotonic() + self.args.drain
        while True:
            got = count()
            now = time.monotonic()
            if got != last:
                last, last_change = got, now
            if got >= step.n:
                if step.done_s is None:
                    step.done_s = now - t0
                break
            if now - last_change > 20 or now > limit:
                break
            time.sleep(0.2)
        step.eventually = got

    # the two consumers

    def run_bare(self, rate: int) -> Step:
        root, base_ms = self.next_names("bare", rate)
        n = int(rate * self.args.seconds)
        step = Step("bare", rate, n)
        sub, sub_conn = self.spawn(bare_main, self.mosquitto.port,
                                   f"$share/bench/{root}/+/+/telemetry", n)
        try:
            if not sub_conn.poll(30) or sub_conn.recv() != "ready":
                raise BenchError("the bare subscriber could not subscribe")
            pub, conn = self.start_publisher(root, n, rate, base_ms)

            def count() -> int:
                sub_conn.send("report")
                got, t_all, _ = sub_conn.recv()
                if t_all is not None and step.done_s is None:
                    step.done_s = t_all - t0  # the subscriber's own clock: exact
                return int(got)

            watch = CpuWatch({"pub": pub.pid, "mosquitto": self.mosquitto.proc.pid,
                              "consumer": sub.pid, "influxd": self.influxd.proc.pid})
            t0 = self.go(conn)
            time.sleep(max(0.0, t0 - time.monotonic()))
            watch.begin()
            self.measure(step, conn, t0, BARE_GRACE_S, count, watch)
            self.stop(pub)
        finally:
            self.stop(sub, sub_conn)
        return step

    def run_ingest(self, rate: int, variant: Variant) -> Step:
        from storage.influx import quote_ident

        root, base_ms = self.next_names(variant.name, rate)
        db = root
        n = int(rate * self.args.seconds)
        step = Step(variant.name, rate, n)
        self.influx.create_database(db)
        logs = [self.workdir / f"{root}-{i}.log" for i in range(variant.workers)]
        procs = [self.start_ingest(root, db, log, variant, i) for i, log in enumerate(logs)]
        proc, log_path = procs[0], logs[0]
        try:
            for p, log in zip(procs, logs, strict=True):
                self.wait_subscribed(p, log)
            self.warm_up(root, db, base_ms, proc, log_path)
            pub, conn = self.start_publisher(root, n, rate, base_ms)
            measurements = ",".join(sorted({domain for _, domain in self.devices}))
            count_q = (f"SELECT count(seq) FROM {measurements} "
                       f"WHERE time >= {base_ms}ms")

            def count() -> int:
                for p in procs:
                    if p.poll() is not None:
                        raise BenchError(f"ingest exited with {p.returncode}; logs {logs}")
                return sum(int(s.values[0][1]) for s in self.influx.query(count_q, db))

            watch = CpuWatch({"pub": pub.pid, "mosquitto": self.mosquitto.proc.pid,
                              "consumer": [p.pid for p in procs],
                              "influxd": self.influxd.proc.pid})
            t0 = self.go(conn)
            time.sleep(max(0.0, t0 - time.monotonic()))
            watch.begin()
            self.measure(step, conn, t0, INGEST_GRACE_S, count, watch)
            self.stop(pub)
            total = count()
            if total > n:
                step.note = f"{total} points stored for {n} messages"
        finally:
            for p in procs:
                self.stop(p)
        step.note = " ".join(filter(None, [step.note, *map(ingest_summary, logs)]))
        self.influx.query(f"DROP DATABASE {quote_ident(db)}", post=True)
        return step

    def start_ingest(self, root: str, db: str, log_path: Path, variant: Variant,
                     worker: int) -> subprocess.Popen[bytes]:
        from launcher.servers import kill_on_parent_death as pdeathsig

        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")
               or k.startswith("SMARTCITY_INGEST_")}  # caller may tune ingest: BATCH_SIZE...
        env.update(variant.env)
        env.update(SMARTCITY_MQTT_URL=self.mosquitto.url, SMARTCITY_MQTT_ROOT=root,
                   SMARTCITY_INFLUX_URL=self.influxd.url, SMARTCITY_INFLUX_DB=db,
                   SMARTCITY_DATA_DIR=str(self.workdir / root),
                   SMARTCITY_INGEST_CLIENT_ID=f"ingest-{root}-{worker}", PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(self.args.ingest_cmd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=pdeathsig)
        self.children.append(proc)
        return proc

    @staticmethod
    def wait_subscribed(proc: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + 60
        while b"subscribing to" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"ingest did not subscribe; log {log_path}:\n"
                                 + log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.05)

    def warm_up(self, root: str, db: str, base_ms: int, proc: subprocess.Popen[bytes],
                log_path: Path) -> None:
        """Once ingest has subscribed, wait until a warm-up reading (an hour before the
        stream, so it is not counted) is stored: the session, the write path and the shard
        all exist before the clock starts."""
        device, domain = self.devices[0]
        pub = RawPublisher(self.mosquitto.port, f"bench-warmup-{self.step_no}")
        try:
            for i in range(600):
                ts = base_ms - 3_600_000 + i
                pub.publish_wait(topic_of(root, domain, device), make_payload(domain, i, ts),
                                 i + 1)
                time.sleep(0.1)
                series = self.influx.query(f"SELECT count(seq) FROM {domain} "
                                           f"WHERE time < {base_ms}ms", db)
                if series and series[0].values[0][1]:
                    return
                if proc.poll() is not None:
                    break
        finally:
            pub.close()
        raise BenchError(f"the warm-up reading was never stored; log {log_path}")


def ingest_summary(log_path: Path) -> str:
    """Ingest's own counters from its 'stopped:' log line, and any warnings it logged."""
    text = log_path.read_text(errors="replace")
    warnings = sum(1 for line in text.splitlines() if " WARNING " in line or " ERROR " in line)
    out = ""
    for line in text.splitlines():
        if "stopped: {" in line:
            s = ast.literal_eval(line.split("stopped: ", 1)[1])
            if s.get("batches"):
                out = (f"[ingest: {s['batches']} batches of {s['stored'] / s['batches']:.0f} "
                       f"points avg, {1000 * s['write_seconds'] / s['batches']:.0f} ms avg "
                       f"write, spooled {s['spooled']}]")
    if warnings:
        out += f" [{warnings} warnings/errors in {log_path.name}]"
    return out


def stop_child(child: Any, conn: Connection | None = None) -> None:
    """Stop one child we started: a multiprocessing.Process or a subprocess.Popen."""
    if isinstance(child, subprocess.Popen):
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.send("stop")
        child.join(5)
    if child.is_alive():
        child.terminate()
        child.join(5)
    if child.is_alive():
        child.kill()
        child.join()


# -- output --------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ".0f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


HEADER = (f"{'offered':>8} {'consumer':<8} {'messages':>8} {'pub rate':>8} "
          f"{'got in time':>11} {'all in':>7} {'rate':>7} {'lag':>6} "
          f"{'cpu% pub/mosq/cons/influx/other':>31} {'µs/msg':>6}  verdict")


def row(s: Step, seconds: float) -> str:
    cpu = "/".join(fmt(s.cpu.get(k))
                   for k in ("pub", "mosquitto", "consumer", "influxd", "other"))
    if s.passed:
        verdict = "pass"
    else:
        verdict = "FAIL"
        if s.eventually is not None:
            lost = s.n - s.eventually
            verdict += (", all in late, none lost" if lost == 0
                        else f", {lost} of {s.n} NEVER ARRIVED")
    if s.pub and s.publisher_short(seconds):
        verdict += f" (publisher reached only {fmt(s.pub_rate)}/s)"
    if (s.cpu.get("other") or 0) > BUSY_WARN_PCT:
        verdict += " (machine busy with other work: figure unreliable)"
    line = (f"{s.offered:>8} {s.consumer:<8} {s.n:>8} {fmt(s.pub_rate):>8} "
            f"{s.got_at_deadline:>11} {fmt(s.done_s, '.2f'):>7} {fmt(s.rate):>7} "
            f"{fmt(s.lag, '.2f'):>6} {cpu:>31} {fmt(s.us_per_message):>6}  {verdict}")
    return line + (f"\n{'':>17}{s.note}" if s.note else "")


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from launcher.servers import find_binary

    def first_line(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"? ({e})"
        return next((ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()), "?")

    import paho.mqtt

    return "\n".join([
        f"machine:   {os.cpu_count()} cpus ({len(os.sched_getaffinity(0))} usable) {model}",
        f"python:    {platform.python_version()} ({sys.executable}), "
        f"paho-mqtt {paho.mqtt.__version__}",
        f"mosquitto: {first_line([find_binary('mosquitto'), '-h'])}",
        f"influxd:   {first_line([find_binary('influxd'), 'version'])}",
    ])


def summary(steps: list[Step], consumer: str, seconds: float) -> str:
    mine = [s for s in steps if s.consumer == consumer]
    good = [s for s in mine if s.passed]
    first_fail = next((s for s in mine if not s.passed), None)
    if not good:
        best = "no step passed"
    else:
        s = max(good, key=lambda s: min(s.offered, s.pub_rate or 0))
        rate = s.offered if not s.publisher_short(seconds) else int(s.pub_rate or 0)
        best = (f"highest sustained rate {rate} msg/s (done {fmt(s.lag, '.2f')} s after the "
                f"publisher: {fmt(s.rate)} msg/s over the step)")
    if first_fail is None:
        limit = "never failed: the ladder was too short to find its limit"
    else:
        f = first_fail
        limit = (f"failed at {f.offered} msg/s ({f.got_at_deadline} of {f.n} in time")
        if f.eventually == f.n and f.rate:
            limit += f"; all in after {f.done_s:.1f} s = {f.rate:.0f} msg/s, none lost)"
        elif f.eventually is not None:
            limit += f"; {f.n - f.eventually} NEVER ARRIVED)"
        else:
            limit += ")"
    peak = max((s.rate for s in mine if s.rate), default=None)
    return (f"{consumer + ':':<8} {best}; {limit}; "
            f"peak throughput {fmt(peak)} msg/s")


def ratios(steps: list[Step], consumers: list[str]) -> str:
    """Each consumer against the first, step by step (same stream, same run): the figures
    to quote on a shared machine, where absolute rates move with the load."""
    if len(consumers) < 2:
        return ""
    base = consumers[0]
    out = [f"ratios to {base} in this run (peak throughput; CPU per message, lower is better):"]
    peak = {c: max((s.rate for s in steps if s.consumer == c and s.rate), default=None)
            for c in consumers}
    for c in consumers[1:]:
        a, b = peak[c], peak[base]
        us = {k: [s.us_per_message for s in steps if s.consumer == k and s.passed
                  and s.us_per_message] for k in (c, base)}
        mean = {k: sum(v) / len(v) if v else None for k, v in us.items()}
        tp = f"{a / b:.2f}x" if a and b else "-"
        cpu = (f"{mean[c] / mean[base]:.2f}x ({mean[c]:.0f} vs {mean[base]:.0f} µs)"
               if mean[c] and mean[base] else "-")
        out.append(f"  {c:<8} throughput {tp}, CPU per message {cpu}")
    return "\n".join(out)


def background_load(seconds: float = 1.0) -> float:
    """% of a core the whole machine is busy over ``seconds``."""
    before = busy_seconds()
    time.sleep(seconds)
    return 100 * (busy_seconds() - before) / seconds


def wait_idle(limit: float) -> None:
    deadline = time.monotonic() + limit
    while background_load() > BUSY_WARN_PCT and time.monotonic() < deadline:
        pass


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",") if x.strip()],
                   help="offered rates in msg/s, comma-separated "
                        f"(default: {','.join(map(str, DEFAULT_RATES))})")
    p.add_argument("--seconds", type=float, help="length of each step (default: 5)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: rates {','.join(map(str, QUICK_RATES))}, 2 s steps")
    p.add_argument("--only", choices=tuple(VARIANTS), help="measure one consumer only")
    p.add_argument("--consumers", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                   default=["bare", "ingest"],
                   help="consumers to compare on the same stream, in this order: "
                        f"{', '.join(VARIANTS)} (default: bare,ingest)")
    p.add_argument("--keep-going", action="store_true",
                   help="run every rate, not stopping a consumer after its first failure")
    p.add_argument("--inflight", type=int, default=20_000,
                   help="publisher's unacknowledged QoS 1 messages at most (default: 20000)")
    p.add_argument("--drain", type=float, default=120,
                   help="after a failure, wait up to this long for late messages (default 120)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each step, wait up to this long for other programs to use "
                        f"less than {BUSY_WARN_PCT}%% of a core (shared machines; default 0)")
    p.add_argument("--workdir", type=Path,
                   help="keep servers' data and ingest logs here (default: a temp dir, removed)")
    p.add_argument("--ingest-cmd", nargs="+",
                   default=[sys.executable, "-m", "launcher.cli", "ingest"],
                   help="how to run ingest (default: %(default)s)")
    args = p.parse_args(argv)
    if args.rates is None:
        args.rates = list(QUICK_RATES if args.quick else DEFAULT_RATES)
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 5.0
    if args.only:
        args.consumers = [args.only]
    unknown = [c for c in args.consumers if c not in VARIANTS]
    if unknown:
        p.error(f"unknown consumers {unknown}; choose from {', '.join(VARIANTS)}")
    if not 0 < args.inflight < 65535:
        p.error("--inflight must be between 1 and 65534 (MQTT packet ids)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    # Also SIGINT: a shell starting us in the background would have us ignore it.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="smartcity-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(machine())
    tuning = " ".join(f"{k}={v}" for k, v in os.environ.items()
                      if k.startswith("SMARTCITY_INGEST_")) or "defaults"
    print(f"stream:    {args.seconds:g} s per step, QoS 1, "
          f"{len(stream_devices())} devices round-robin; "
          f"grace bare {BARE_GRACE_S:g} s, ingest {INGEST_GRACE_S:g} s; "
          f"ingest tuning: {tuning}")
    idle_load = background_load()
    print(f"load:      {idle_load:.0f}% of a core busy before the start"
          + (" (other programs are running: expect lower, noisier figures)"
             if idle_load > BUSY_WARN_PCT else ""))
    print()
    bench = Bench(args, workdir)
    steps: list[Step] = []
    ok = interrupted = False
    try:
        bench.start_servers()
        print(HEADER, flush=True)
        alive = set(args.consumers)
        for rate in args.rates:
            for consumer in args.consumers:
                if consumer not in alive:
                    continue
                if args.wait_idle:
                    wait_idle(args.wait_idle)
                step = (bench.run_bare(rate) if consumer == "bare"
                        else bench.run_ingest(rate, VARIANTS[consumer]))
                steps.append(step)
                print(row(step, args.seconds), flush=True)
                if not step.passed and not args.keep_going:
                    alive.discard(consumer)
            if not alive:
                break
        ok = True
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything", file=sys.stderr)
    except BenchError as e:
        print(f"\nbench failed: {e}", file=sys.stderr)
    finally:
        bench.stop_all()
        if args.workdir is None and (ok or interrupted):
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"servers' data and ingest logs kept in {workdir}", file=sys.stderr)
    if steps:
        print()
        if not ok:
            print("PARTIAL RESULTS: the run did not finish")
        print("columns: pub rate = messages / time until the broker acked the last one; "
              "got in time = arrived/stored by the deadline; all in = seconds from the first "
              "message until all arrived/stored; rate = messages / all in; lag = all in - "
              "publishing time; cpu% over the step (100 = one core)")
        print()
        for consumer in args.consumers:
            if any(s.consumer == consumer for s in steps):
                print(summary(steps, consumer, args.seconds))
        print()
        for consumer in args.consumers:
            print(f"{consumer:<8} {VARIANTS[consumer].about}")
        print(ratios(steps, args.consumers))
        if args.quick:
            print("(--quick: 2 s steps make the verdicts coarse; a smoke test, not a figure)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
