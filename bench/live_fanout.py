#!/usr/bin/env python3
"""The live stream under load: many screens on ``WS /api/v1/live`` while the broker carries
a fast stream of readings, and whether the api still answers ``/healthz`` meanwhile.

Starts a private Mosquitto (launcher.servers, the stack's broker tuning) in a temporary
directory and the real api (``python -m launcher.cli api``) on a free port, with InfluxDB
left unreachable (the live stream needs none). A child process connects ``--clients``
WebSocket screens (``websockets``, asyncio) that read everything; a raw MQTT 3.1.1 QoS 0
publisher (pre-encoded packets, so the instrument takes little CPU) sends readings of every
device of the city round-robin at each offered rate for ``--seconds``, while a thread here
asks ``/healthz`` every 50 ms.

Figures, per offered rate:
  published/s   readings the publisher sent per second
  hub in/s      broker messages the api's hub took per second (/api/v1/live/stats)
  per screen/s  readings one screen received per second (median over the screens; below
                the offered rate when the hub coalesced: a screen gets each device's newest)
  total/s       readings delivered to all screens together per second
  coalesced     pending readings replaced by newer ones (hub batches and screen buffers)
  dropped       screens closed for falling behind
  e2e ms        publish to screen, p50 / p99 (same machine, same clock)
  healthz ms    /healthz round trip while the screens are served, p50 / p99 / max
  api cpu %     CPU of the api process over the step (100 = one core)

Run from the repository root on an otherwise idle machine:

    .venv/bin/python bench/live_fanout.py                   # 100 screens, 1k/5k/10k msg/s
    .venv/bin/python bench/live_fanout.py --quick           # 20 screens, 1k msg/s, 5 s
    .venv/bin/python bench/live_fanout.py --clients 200 --rates 2000 --seconds 20
    SMARTCITY_LIVE_DELIVERY_BUDGET=5000 .venv/bin/python bench/live_fanout.py

``SMARTCITY_LIVE_*`` variables set by the caller are passed to the api.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mqttwire import connect_packet, publish_packet  # bench/mqttwire.py, beside this file

from launcher.servers import Mosquitto, free_port, start_with_retry
from smartcity.city import load_city

ROOT = "bench"
METRIC = {"home": "power_w", "traffic": "speed_kmh", "flood": "water_level_cm",
          "weather": "rain_mm_h"}
SLICE_S = 0.005


def wall_ms() -> int:
    return int(time.time() * 1000)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt(v: float | None, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


# -- a raw MQTT 3.1.1 QoS 0 publisher ---------------------------------------------------------


class Publisher:
    """Sends readings of ``devices`` round-robin at ``rate`` per second for ``seconds``,
    in 5 ms slices; ``ts`` is the wall clock at sending, for the end-to-end figure."""

    def __init__(self, port: int, devices: list[tuple[str, str]]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(f"bench-pub-{os.getpid()}", keepalive_s=60))
        ack = self.sock.recv(4)
        if len(ack) < 4 or ack[3] != 0:
            raise RuntimeError(f"the broker refused the publisher: {ack!r}")
        self.topics = [f"{ROOT}/{domain}/{device_id}/telemetry".encode()
                       for device_id, domain in devices]
        self.metrics = [METRIC[domain] for _, domain in devices]
        self.seq = 0
        self.sent = 0

    def run(self, rate: int, seconds: float) -> float:
        """Returns the seconds it took."""
        start = time.monotonic()
        due = 0.0
        n = len(self.topics)
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            target = min(seconds, elapsed + SLICE_S) * rate
            chunk = []
            ts = wall_ms()
            while due < target:
                i = self.seq % n
                body = orjson.dumps({"ts": ts, "seq": self.seq, "source": "simulated",
                                     self.metrics[i]: float(self.seq % 100)})
                chunk.append(publish_packet(self.topics[i], body))
                self.seq += 1
                due += 1
            if chunk:
                self.sock.sendall(b"".join(chunk))
                self.sent += len(chunk)
            time.sleep(max(0.0, start + elapsed + SLICE_S - time.monotonic()))
        return time.monotonic() - start

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


# -- the screens, in a child process ----------------------------------------------------------

def screens_main(url: str, n: int, conn: Connection) -> None:
    asyncio.run(_screens(url, n, conn))


async def _screens(url: str, n: int, conn: Connection) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    counts = [0] * n
    latencies: list[float] = []
    closes: list[int] = []

    async def screen(i: int, ready: asyncio.Event) -> None:
        async with connect(url, max_size=None, max_queue=None) as ws:
            orjson.loads(await ws.recv())  # the snapshot
            ready.set()
            try:
                async for frame in ws:
                    message = orjson.loads(frame)
                    if message["type"] == "reading":
                        counts[i] += 1
                        if counts[i] % 20 == 0:
                            latencies.append(wall_ms() - message["ts"])
            except ConnectionClosed as e:
                closes.append(e.rcvd.code if e.rcvd else 1006)

    readies = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(screen(i, readies[i])) for i in range(n)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    loop = asyncio.get_running_loop()
    conn.send("connected")
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "mark":
            counts[:] = [0] * n
            latencies.clear()
            conn.send("marked")
        elif command == "report":
            conn.send({"counts": list(counts), "latencies": list(latencies),
                       "closes": list(closes)})
        else:
            break
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the api ----------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HealthProbe(threading.Thread):
    """GET /healthz every 50 ms until stopped; the round trips in ms."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.times: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.wait(0.05):
                t = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.times.append((time.perf_counter() - t) * 1000)
                else:
                    self.failures += 1

    def stop(self) -> list[float]:
        self.stopping.set()
        self.join(15)
        return self.times


def start_api(broker: Mosquitto, port: int, scale: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMARTCITY_") or k.startswith("SMARTCITY_LIVE_")}
    env |= {"SMARTCITY_MQTT_URL": broker.url, "SMARTCITY_MQTT_ROOT": ROOT,
            "SMARTCITY_INFLUX_URL": f"http://127.0.0.1:{free_port()}",
            "SMARTCITY_SCALE": str(scale), "SMARTCITY_LOG_LEVEL": "WARNING",
            "SMARTCITY_DATA_DIR": str(log.parent / "var"), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "api", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the api did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def stats(base: str) -> dict[str, int]:
    result: dict[str, int] = httpx.get(f"{base}/api/v1/live/stats", timeout=10).json()
    return result


def step(args: argparse.Namespace, base: str, api_pid: int, publisher: Publisher,
         screens: Connection, rate: int) -> str:
    screens.send("mark")
    screens.recv()
    before = stats(base)
    cpu0, t0 = cpu_seconds(api_pid), time.monotonic()
    probe = HealthProbe(f"{base}/healthz")
    probe.start()
    sent0 = publisher.sent
    took = publisher.run(rate, args.seconds)
    time.sleep(1.0)  # let the last readings reach the screens
    health = probe.stop()
    cpu = (cpu_seconds(api_pid) - cpu0) / (time.monotonic() - t0) * 100
    after = stats(base)
    screens.send("report")
    report: dict[str, Any] = screens.recv()
    counts: list[int] = report["counts"]
    published = publisher.sent - sent0
    received = after["received"] - before["received"]
    per_screen = statistics.median(counts) / took if counts else None
    cols = [
        f"{rate:>8}", f"{published / took:>11.0f}", f"{received / took:>8.0f}",
        f"{fmt(per_screen):>12}", f"{sum(counts) / took:>9.0f}",
        f"{after['coalesced'] - before['coalesced']:>9}",
        f"{after['dropped_clients'] - before['dropped_clients']:>7}",
        f"{fmt(percentile(report['latencies'], 0.5)):>5} / "
        f"{fmt(percentile(report['latencies'], 0.99)):<5}",
        f"{fmt(percentile(health, 0.5), '.1f'):>5} / {fmt(percentile(health, 0.99), '.1f')} / "
        f"{fmt(max(health) if health else None, '.1f')}"
        + (f" ({probe.failures} failed)" if probe.failures else ""),
        f"{cpu:>5.0f}",
    ]
    return "  ".join(cols)


HEADER = ("offered/s  published/s  hub in/s  per screen/s    total/s  coalesced  dropped"
          "  e2e ms p50/p99  healthz ms p50/p99/max  api cpu %")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=None, help="screens (default: 100)")
    p.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",") if x.strip()],
                   default=None, help="offered msg/s, comma-separated (default: 1000,5000,"
                                      "10000)")
    p.add_argument("--seconds", type=float, default=None, help="per rate (default: 10)")
    p.add_argument("--scale", type=int, default=1, help="copies of the city's devices")
    p.add_argument("--quick", action="store_true", help="20 screens, 1000 msg/s for 5 s")
    args = p.parse_args(argv)
    args.clients = args.clients or (20 if args.quick else 100)
    args.rates = args.rates or ([1000] if args.quick else [1000, 5000, 10000])
    args.seconds = args.seconds or (5.0 if args.quick else 10.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    devices = [(d.device_id, d.domain.value) for d in load_city(scale=args.scale).registry()]
    with tempfile.TemporaryDirectory(prefix="live-fanout-") as tmp:
        workdir = Path(tmp)
        broker = start_with_retry(Mosquitto, workdir / "mosquitto")
        assert isinstance(broker, Mosquitto)
        api: subprocess.Popen[bytes] | None = None
        screens: Any = None
        try:
            port = free_port()
            api = start_api(broker, port, args.scale, workdir / "api.log")
            base = f"http://127.0.0.1:{port}"
            idle = HealthProbe(f"{base}/healthz")
            idle.start()
            time.sleep(2.0)
            baseline = idle.stop()
            ours, theirs = mp.get_context("spawn").Pipe()
            screens = mp.get_context("spawn").Process(
                target=screens_main, args=(f"ws://127.0.0.1:{port}/api/v1/live", args.clients,
                                           theirs), daemon=True)
            screens.start()
            if not ours.poll(90) or ours.recv() != "connected":
                raise RuntimeError("the screens did not connect")
            connected = stats(base)["clients"]
            print(f"live fan-out: {connected} screens on WS /api/v1/live, {len(devices)} "
                  f"devices, {args.seconds:g} s per rate, {os.cpu_count()} cores")
            print(f"healthz with no screen and no load: p50 "
                  f"{fmt(percentile(baseline, 0.5), '.1f')} ms, max "
                  f"{fmt(max(baseline) if baseline else None, '.1f')} ms")
            print(HEADER)
            publisher = Publisher(broker.port, devices)
            try:
                for rate in args.rates:
                    print(step(args, base, api.pid, publisher, ours, rate), flush=True)
            finally:
                publisher.close()
            ours.send("stop")
            screens.join(30)
        finally:
            if screens is not None and screens.is_alive():
                screens.terminate()
            if api is not None:
                api.terminate()
                try:
                    api.wait(20)
                except subprocess.TimeoutExpired:
                    api.kill()
                    api.wait()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
