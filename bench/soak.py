"""Soak: the whole city under `smartcity up` at exhibit load for half an hour or more, with
one random child SIGKILLed every few minutes; prints, over time, the readings the broker
acknowledged that InfluxDB does not hold, the restarts, and each child's memory and open
files.

    .venv/bin/python bench/soak.py                      # 30 minutes, a kill every 3 minutes
    .venv/bin/python bench/soak.py --minutes 60 --kill-every 120 --rate 800

The load is an exhibitor's device registered through the api (``--rate`` QoS 1 readings a
second) and one of the city's own devices (``--city-rate``), besides the simulators. Each
reading has its own ``seq`` and timestamp, so "lost" is exact: acknowledged seqs minus the
seqs InfluxDB holds. While the city runs, the count leaves out the last ``--settle`` seconds
(readings in flight); at the end the load stops and everything is counted.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cityup import CITY_DEVICE, City, Load, city_up, new_base

CHILDREN = ("mosquitto", "influxd", "ingest", "rules", "api", "simulate")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def stored_count(city: City, device_id: str, base_ms: int, upto_seq: int) -> int:
    """Distinct seqs 1..upto_seq InfluxDB holds (ts = base + seq, so a time range)."""
    client = city.influx()
    try:
        series = client.query(
            f"SELECT count(\"seq\") FROM \"flood\" WHERE \"device_id\"='{device_id}' AND "
            f"time > {base_ms}ms AND time <= {base_ms + upto_seq}ms")
    finally:
        client.close()
    return int(series[0].values[0][1]) if series and series[0].values else 0


def acked_upto(load: Load, upto_seq: int) -> int:
    return sum(1 for s in list(load.acked) if s <= upto_seq)


def report(city: City, loads: list[tuple[Load, str]], started: float, kills: list[str],
           settle_s: float) -> None:
    pids = city.pids()
    lost = []
    for load, device_id in loads:
        upto = max(0, int(load.sent - settle_s * load.rate))
        try:
            held = stored_count(city, device_id, load.base_ms, upto)
        except Exception as e:  # InfluxDB restarting right now: say so, count next time
            lost.append(f"{device_id[:12]} ? ({type(e).__name__})")
            continue
        # Acknowledged minus stored, settled readings only; the exact count of readings lost
        # is the final one (the publisher may see a PUBACK after ingest stored the reading).
        lost.append(f"{device_id[:12]} {acked_upto(load, upto) - held}")
    mem = " ".join(f"{n}={rss_kib(p) // 1024}M/{open_files(p)}fd" for n, p in sorted(pids.items()))
    print(f"{(time.monotonic() - started) / 60:6.1f} min  sent {sum(x.sent for x, _ in loads):>8}"
          f"  acked {sum(len(x.acked) for x, _ in loads):>8}"
          f"  acked-stored {', '.join(lost)}  restarts {city.restarts()}  kills {len(kills)}  "
          f"up {'running' if city.running() else 'STOPPED'}  rss/fds: {mem}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kill-every", type=float, default=180.0, help="seconds, +-30%%")
    parser.add_argument("--rate", type=float, default=500.0, help="exhibitor readings/s")
    parser.add_argument("--city-rate", type=float, default=100.0)
    parser.add_argument("--report-every", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    # SIGTERM ends the soak like Ctrl-C: the city is stopped and the figures so far printed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rnd = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="smartcity-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.minutes:g} min, exhibitor {args.rate:g}/s + city device "
          f"{args.city_rate:g}/s + simulators, a SIGKILL every ~{args.kill_every:g}s; "
          f"data in {workdir}", flush=True)
    with city_up(workdir) as city:
        city.register()
        base = new_base()
        loads = [(city.exhibitor_load(args.rate, base), city.exhibitor["device"]["device_id"]),
                 (city.city_load(args.city_rate, base), CITY_DEVICE[1])]
        started = time.monotonic()
        end = started + args.minutes * 60
        next_kill = started + args.kill_every * rnd.uniform(0.7, 1.3)
        next_report = started + args.report_every
        kills: list[str] = []
        try:
            while time.monotonic() < end and city.running():
                now = time.monotonic()
                if now >= next_kill:
                    victim = rnd.choice(CHILDREN)
                    pid = city.pids().get(victim)
                    if pid:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            kills.append(victim)
                            print(f"{(now - started) / 60:6.1f} min  SIGKILL {victim} "
                                  f"(pid {pid})", flush=True)
                        except ProcessLookupError:
                            pass
                    next_kill = now + args.kill_every * rnd.uniform(0.7, 1.3)
                if now >= next_report:
                    report(city, loads, started, kills, args.settle)
                    next_report = now + args.report_every
                time.sleep(0.5)
        finally:
            for load, _ in loads:
                load.stop()
        print("load stopped; waiting for the city to store the rest", flush=True)
        total_lost = 0
        for load, device_id in loads:
            missing = city.lost(load, device_id, timeout=180)
            total_lost += len(missing)
            print(f"final {device_id}: sent {load.sent}, acknowledged {len(load.acked)}, "
                  f"lost {len(missing)}" + (f" (e.g. seq {sorted(missing)[:10]})"
                                            if missing else ""), flush=True)
        print(f"kills {len(kills)} ({', '.join(kills)}); restarts logged by up "
              f"{city.restarts()}; up {'running' if city.running() else 'STOPPED'}",
              flush=True)
        report(city, loads, started, kills, 0)
    print(f"up exited with {city.proc.returncode} after SIGTERM", flush=True)
    return 1 if total_lost or city.proc.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
