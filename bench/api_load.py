#!/usr/bin/env python3
"""The read api under a hall of screens: p50/p99 latency and throughput per endpoint at
``--clients`` concurrent keep-alive clients, each variant of the api measured back to back in
one run.

Starts a private Mosquitto and influxd (launcher.servers) in a temporary directory, fills
InfluxDB with an hour of readings of every device of the city (one every 10 s), and keeps a
live stream of readings going on the broker (``--live-rate`` msg/s, QoS 0) so the api's live
hub works as it does in the hall. Then, for each variant, it starts the real api
(``python -m launcher.cli api``) and, per endpoint, runs ``--clients`` closed-loop clients
(hand-written HTTP/1.1 over asyncio, spread over ``--procs`` processes so the instrument is
not the bottleneck) for ``--seconds`` after a one-second warm-up:

  latest    GET /api/v1/sensors/{id}/latest, the ids round-robin
  summary   GET /api/v1/city/summary
  sensors   GET /api/v1/sensors
  history   GET /api/v1/sensors/{id}/history?metric=...  (the last hour, from InfluxDB)

Variants (``--variants``): ``influx`` (every answer queried from InfluxDB: before) and
``memory`` (latest, sensors and summary from the readings the api receives: after).

Run from the repository root:

    .venv/bin/python bench/api_load.py                  # 50 clients, 10 s per endpoint
    .venv/bin/python bench/api_load.py --quick          # 3 s per endpoint
    .venv/bin/python bench/api_load.py --variants memory --endpoints latest --clients 100
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mqttwire import connect_packet, publish_packet  # bench/mqttwire.py, beside this file

from launcher.servers import Influxd, Mosquitto, free_port, start_with_retry
from smartcity.city import load_city
from smartcity.codec import Reading
from smartcity.models import Source
from smartcity.settings import InfluxSettings
from storage.influx import InfluxClient
from storage.lineprotocol import to_line

ROOT = "hall"
DB = "hall"
METRIC = {"home": "power_w", "traffic": "speed_kmh", "flood": "water_level_cm",
          "weather": "rain_mm_h"}
SLICE_S = 0.005
VARIANTS = {
    "influx": ({"SMARTCITY_API_READS": "influx"}, 1,
               "every answer queried from InfluxDB (before)"),
    "memory": ({"SMARTCITY_API_READS": "memory"}, 1,
               "latest, sensors and summary from memory (after)"),
}
_LENGTH = re.compile(rb"content-length: *([0-9]+)", re.IGNORECASE)


def wall_ms() -> int:
    return int(time.time() * 1000)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt(v: float | None, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


# -- data ----------------------------------------------------------------------------------

def fill(influx: InfluxClient, hours: float = 1.0, every_s: int = 10) -> int:
    """An hour of readings of every device, one every ``every_s``; returns the points."""
    registry = load_city().registry()
    now = wall_ms()
    lines = []
    for device in registry:
        metric = METRIC[device.domain.value]
        for k in range(int(hours * 3600 / every_s)):
            ts = now - k * every_s * 1000
            reading = Reading(device.domain, device.device_id, ts, 10_000 - k, Source.SIMULATED,
                              {metric: float(k % 50)})
            lines.append(to_line(reading, device))
    for i in range(0, len(lines), 5000):
        influx.write(("\n".join(lines[i:i + 5000]) + "\n").encode())
    return len(lines)


class LiveStream(threading.Thread):
    """Readings of every device round-robin at ``rate`` per second, QoS 0, until stopped."""

    def __init__(self, port: int, rate: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(connect_packet(f"bench-live-{os.getpid()}", keepalive_s=60))
        if self.sock.recv(4)[3:4] != b"\x00":
            raise RuntimeError("the broker refused the live publisher")
        self.devices = [(f"{ROOT}/{d.domain.value}/{d.device_id}/telemetry".encode(),
                         METRIC[d.domain.value]) for d in load_city().registry()]
        self.rate = rate
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        start, due, seq = time.monotonic(), 0.0, 20_000
        while not self.stopping.is_set():
            target = (time.monotonic() - start + SLICE_S) * self.rate
            chunk = []
            while due < target:
                topic, metric = self.devices[seq % len(self.devices)]
                body = orjson.dumps({"ts": wall_ms(), "seq": seq, "source": "simulated",
                                     metric: float(seq % 50)})
                chunk.append(publish_packet(topic, body))
                seq += 1
                due += 1
            if chunk:
                self.sock.sendall(b"".join(chunk))
                self.sent += len(chunk)
            time.sleep(SLICE_S)
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


# -- the clients, in child processes -------------------------------------------------------

def clients_main(conn: Connection, port: int, paths: list[str], clients: int,
                 warmup_s: float, seconds: float) -> None:
    conn.send(asyncio.run(_clients(port, paths, clients, warmup_s, seconds)))


async def _clients(port: int, paths: list[str], clients: int, warmup_s: float,
                   seconds: float) -> tuple[list[float], int, int]:
    start = time.perf_counter()
    measure_from, until = start + warmup_s, start + warmup_s + seconds
    latencies: list[float] = []
    errors = [0, 0]  # non-200 answers, broken connections

    async def client(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while True:
                path = paths[i % len(paths)]
                i += 1
                t = time.perf_counter()
                if t >= until:
                    return
                writer.write(f"GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                m = _LENGTH.search(head)
                await reader.readexactly(int(m[1]) if m else 0)
                done = time.perf_counter()
                if t >= measure_from:
                    latencies.append(done - t)
                    if head[9:12] != b"200":
                        errors[0] += 1
        except (OSError, asyncio.IncompleteReadError):
            errors[1] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    return latencies, errors[0], errors[1]


@dataclass
class Result:
    variant: str
    endpoint: str
    requests: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    bad: int
    broken: int
    api_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def row(self) -> str:
        return (f"{self.variant:<8} {self.endpoint:<8} {self.rate:>8.0f}"
                f" {fmt(self.p50_ms, '.1f'):>7} {fmt(self.p99_ms, '.1f'):>7}"
                f" {fmt(self.max_ms, '.0f'):>6} {self.bad:>5}"
                f" {self.broken:>6} {self.api_cpu:>7.0f}")


HEADER = (f"{'variant':<8} {'endpoint':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>6} {'non-200':>5} {'broken':>6} {'api cpu%':>7}")


# -- the api -------------------------------------------------------------------------------

def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def family(pid: int) -> list[int]:
    """The process and its children (api workers)."""
    out = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def start_api(broker: Mosquitto, influxd: Influxd, port: int, variant: str,
              log: Path) -> subprocess.Popen[bytes]:
    extra, workers, _ = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env |= {"SMARTCITY_MQTT_URL": broker.url, "SMARTCITY_MQTT_ROOT": ROOT,
            "SMARTCITY_INFLUX_URL": influxd.url, "SMARTCITY_INFLUX_DB": DB,
            "SMARTCITY_LOG_LEVEL": "WARNING", "SMARTCITY_API_DEVICE_ACCOUNTS": "none",
            "SMARTCITY_DATA_DIR": str(log.parent / "var"), "PYTHONUNBUFFERED": "1", **extra}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "api", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            # Ready when the latest values are there (memory: seeded), on every worker.
            answers = [httpx.get(f"{base}/api/v1/sensors/flood-thao-dien/latest", timeout=2)
                       for _ in range(4 * workers)]
            if all(a.status_code == 200 and a.json()["values"] for a in answers):
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the api did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)


def endpoint_paths(name: str) -> list[str]:
    registry = load_city().registry()
    if name == "latest":
        return [f"/api/v1/sensors/{d.device_id}/latest" for d in registry]
    if name == "summary":
        return ["/api/v1/city/summary"]
    if name == "sensors":
        return ["/api/v1/sensors"]
    if name == "history":
        return [f"/api/v1/sensors/{d.device_id}/history?metric={METRIC[d.domain.value]}"
                for d in registry]
    raise ValueError(name)


def measure(args: argparse.Namespace, port: int, api_pid: int, variant: str,
            endpoint: str) -> Result:
    ctx = mp.get_context("spawn")
    paths = endpoint_paths(endpoint)
    per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
           for i in range(args.procs)]
    pipes, procs = [], []
    for n in per:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=clients_main, args=(child, port, paths, n, 1.0, args.seconds),
                        daemon=True)
        p.start()
        pipes.append(parent)
        procs.append(p)
    pids = family(api_pid)
    time.sleep(1.0)  # the warm-up
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    got = [pipe.recv() for pipe in pipes]
    cpu = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0) * 100
    for p in procs:
        p.join(10)
    latencies = [x for lat, _, _ in got for x in lat]
    ms = [x * 1000 for x in latencies]
    return Result(variant, endpoint, len(latencies), args.seconds, percentile(ms, 0.5),
                  percentile(ms, 0.99), max(ms) if ms else None, sum(g[1] for g in got),
                  sum(g[2] for g in got), cpu)


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "")
    return (f"machine:   {os.cpu_count()} cpus {model}; python {platform.python_version()}; "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')}")


def busy_pct(seconds: float = 1.0) -> float:
    def busy() -> float:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    b0 = busy()
    time.sleep(seconds)
    return 100 * (busy() - b0) / seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--procs", type=int, default=2,
                   help="client processes the clients are spread over (default 2)")
    p.add_argument("--seconds", type=float, default=None, help="per endpoint (default 10)")
    p.add_argument("--quick", action="store_true", help="3 s per endpoint")
    p.add_argument("--live-rate", type=int, default=200,
                   help="live readings per second on the broker meanwhile (default 200)")
    p.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS),
                   help=f"api variants, in order (default {','.join(VARIANTS)})")
    p.add_argument("--endpoints", type=lambda s: s.split(","),
                   default=["latest", "summary", "sensors", "history"])
    args = p.parse_args(argv)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    for v in args.variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(machine())
    print(f"load:      {busy_pct():.0f}% of a core busy before the start (2 cores = 200%)")
    print(f"clients:   {args.clients} keep-alive clients in {args.procs} processes, "
          f"{args.seconds:g} s per endpoint after 1 s warm-up; live stream {args.live_rate} "
          "readings/s on the broker")
    with tempfile.TemporaryDirectory(prefix="smartcity-apiload-") as tmp:
        workdir = Path(tmp)
        broker = start_with_retry(Mosquitto, workdir / "mosquitto")
        influxd = start_with_retry(Influxd, workdir / "influxd")
        assert isinstance(broker, Mosquitto) and isinstance(influxd, Influxd)
        live: LiveStream | None = None
        results: list[Result] = []
        try:
            influx = InfluxClient(InfluxSettings(url=influxd.url, db=DB, timeout_s=30))
            influx.create_database()
            print(f"data:      {fill(influx)} points in InfluxDB (an hour of every device)\n")
            influx.close()
            live = LiveStream(broker.port, args.live_rate)
            live.start()
            print(HEADER, flush=True)
            for variant in args.variants:
                port = free_port()
                api = start_api(broker, influxd, port, variant, workdir / f"api-{variant}.log")
                try:
                    for endpoint in args.endpoints:
                        r = measure(args, port, api.pid, variant, endpoint)
                        results.append(r)
                        print(r.row(), flush=True)
                finally:
                    api.terminate()
                    try:
                        api.wait(20)
                    except subprocess.TimeoutExpired:
                        api.kill()
                        api.wait()
        finally:
            if live is not None:
                live.stopping.set()
                live.join(5)
            influxd.stop()
            broker.stop()
    print()
    for v in args.variants:
        print(f"{v:<8} {VARIANTS[v][2]}")
    base = args.variants[0]
    for r in results:
        if r.variant == base:
            continue
        b = next((x for x in results if x.variant == base and x.endpoint == r.endpoint), None)
        if b is not None and b.rate and b.p99_ms and r.p99_ms:
            print(f"{r.variant} vs {base}, {r.endpoint}: throughput {r.rate / b.rate:.1f}x, "
                  f"p99 {r.p99_ms / b.p99_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
