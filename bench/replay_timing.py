"""How well replay keeps time: lateness at 1x and 10x, throughput at max.

Synthesises a recording (telemetry with a sequence number, arrival times a Poisson stream),
starts a private Mosquitto, and replays the recording through it while ``mosquitto_sub``
stamps each message's arrival. A message's error is its arrival minus its due time,
``origin + offset / speed``, so it includes the broker's forwarding; the replayer's own
figure (publish call returned vs due) is printed beside it.

    .venv/bin/python bench/replay_timing.py            # 20k messages, 60 s at 1x
    .venv/bin/python bench/replay_timing.py --quick    # 5k messages, 15 s at 1x
    .venv/bin/python bench/replay_timing.py --like storm.screc   # the storm's own timing

``--like`` takes the arrival times of a real recording (``bench/storm_recording.py`` makes
the storm: 144,000 readings in 100 s), so the schedule has its bursts and gaps.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pahopub import publish_all  # bench/pahopub.py, beside this file

from launcher.servers import Mosquitto, find_binary, start_with_retry
from recorder import Header, Record, RecordingReader, RecordingWriter, Replayer, ReplayOptions
from smartcity.models import format_ts
from smartcity.settings import MqttSettings

ROOT = "bench"


def synthesise(path: Path, count: int, span_s: float, seed: int = 7,
               offsets: list[int] | None = None) -> tuple[list[int], list[tuple[str, bytes]]]:
    """A recording of ``count`` readings from 200 devices over ``span_s`` (or at the given
    ``offsets``, ns from the first); the offsets (ns) and the messages."""
    rng = random.Random(seed)
    start = time.time_ns() - 86_400 * 10**9
    if offsets is None:
        offsets = sorted(rng.randrange(0, int(span_s * 1e9)) for _ in range(count - 1))
        offsets = [0, *offsets]
    messages = []
    with RecordingWriter(path, Header(started_ns=start, root=ROOT), overwrite=True,
                         fsync=False) as w:
        for seq, off in enumerate(offsets):
            t = start + off
            body = {"ts": format_ts(t // 1_000_000), "seq": seq,
                    "water_level_cm": round(rng.uniform(0, 80), 1)}
            messages.append((f"{ROOT}/flood/f{seq % 200}/telemetry", orjson.dumps(body)))
            w.add(Record(t, *messages[-1], 1), now=0.0)
    return offsets, messages


class Subscriber:
    """``mosquitto_sub`` (C, so the instrument takes little of the CPU it measures) writing
    each message's CLOCK_REALTIME arrival to a file, read once the replay is over (a reader
    thread here would compete with the replayer for the GIL)."""

    def __init__(self, broker: Mosquitto, out: Path) -> None:
        self.out = out
        with out.open("w") as f:
            self.proc = subprocess.Popen(
                [find_binary("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(broker.port),
                 "-t", f"{ROOT}/#", "-q", "1", "--nodelay", "-F", "%U %t %p"], stdout=f)
        probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe")
        probe.connect("127.0.0.1", broker.port)
        probe.loop_start()
        deadline = time.monotonic() + 15
        while not out.stat().st_size:  # subscribed once a probe comes back
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto_sub did not subscribe")
            probe.publish(f"{ROOT}/probe", b"{}", qos=1).wait_for_publish(5)
            time.sleep(0.05)
        probe.disconnect()
        probe.loop_stop()

    def arrivals(self, expected: int, timeout: float) -> list[tuple[int, int]]:
        """(CLOCK_REALTIME ns, seq) of every replayed message, once ``expected`` have come."""
        deadline = time.monotonic() + timeout
        while self._lines(probes=False) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        self.proc.terminate()
        self.proc.wait(10)
        out = []
        for line in self.out.read_text().splitlines():
            stamp, topic, payload = line.split(" ", 2)
            if topic.endswith("/probe"):
                continue
            sec, frac = stamp.split(".")
            out.append((int(sec) * 10**9 + int(frac.ljust(9, "0")), orjson.loads(payload)["seq"]))
        return out

    def _lines(self, probes: bool) -> int:
        text = self.out.read_text()
        return text.count("\n") - (0 if probes else text.count("/probe "))


def run(broker: Mosquitto, path: Path, offsets: list[int], speed: float | None,
        spin_ms: float | None) -> dict[str, float]:
    sub = Subscriber(broker, path.with_suffix(".arrivals"))
    options = ReplayOptions(speed=speed) if spin_ms is None else \
        ReplayOptions(speed=speed, spin_s=spin_ms / 1000)
    replayer = Replayer(path, MqttSettings(url=broker.url, root=ROOT), options)
    before = time.time_ns() - time.monotonic_ns()
    stolen = _stolen_s()
    cpu = time.process_time()
    status = replayer.run()
    cpu = time.process_time() - cpu
    stolen = _stolen_s() - stolen
    after = time.time_ns() - time.monotonic_ns()
    got = sub.arrivals(len(offsets), timeout=30)
    if abs(after - before) > 100_000:
        print(f"  (the wall clock moved {(after - before) / 1e6:.2f} ms against the monotonic "
              "one during the run; errors below are off by up to that)")
    got = [(t - (before + after) // 2, seq) for t, seq in got]
    seqs = [s for _, s in got]
    out = {"sent": status.sent, "received": len(got), "cpu": cpu / status.elapsed_s,
           "stolen": stolen,
           "in_order": float(seqs == sorted(seqs)),
           "complete": float(sorted(seqs) == list(range(len(offsets))))}
    if speed is None:
        span_s = (got[-1][0] - got[0][0]) / 1e9 if len(got) > 1 else 0.0
        out["rate"] = len(got) / span_s if span_s else 0.0
        out["replayer_rate"] = status.sent / status.elapsed_s
        return out
    assert replayer.origin_ns is not None
    errors = sorted((t - (replayer.origin_ns + offsets[s] / speed)) / 1e6 for t, s in got)
    out.update(p50=statistics.median(errors), p99=errors[int(0.99 * (len(errors) - 1))],
               max=errors[-1], min=errors[0], send_p50=status.late_p50_ms,
               send_p99=status.late_p99_ms, send_max=status.late_max_ms,
               duration=offsets[-1] / 1e9 / speed)
    return out


def run_paho(broker: Mosquitto, path: Path, messages: list[tuple[str, bytes]]
             ) -> dict[str, float]:
    """The same messages from a bare paho QoS 1 publisher (bench/pahopub.py)."""
    sub = Subscriber(broker, path.with_suffix(".paho-arrivals"))
    seconds, cpu = publish_all(broker.port, messages)
    got = sub.arrivals(len(messages), timeout=30)
    span_s = (got[-1][0] - got[0][0]) / 1e9 if len(got) > 1 else 0.0
    seqs = [s for _, s in got]
    return {"rate": len(got) / span_s if span_s else 0.0, "acked_rate": len(messages) / seconds,
            "received": len(got), "cpu": cpu / seconds,
            "in_order": float(seqs == sorted(seqs)),
            "complete": float(sorted(seqs) == list(range(len(messages))))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5k messages over 15 s")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--span", type=float, default=None, help="seconds at 1x")
    parser.add_argument("--spin-ms", type=float, default=None,
                        help="busy-wait this long before each due time (default: the replayer's)")
    parser.add_argument("--speeds", default="1,10,paho,max",
                        help="comma-separated; paho: the same messages from a bare paho QoS 1 "
                             "publisher, the yardstick for max (default: 1,10,paho,max)")
    parser.add_argument("--like", type=Path, default=None, metavar="RECORDING",
                        help="the arrival times of this recording instead of a Poisson stream")
    args = parser.parse_args()
    count = args.messages or (5_000 if args.quick else 20_000)
    span = args.span or (15.0 if args.quick else 60.0)
    like = None
    if args.like is not None:
        with RecordingReader(args.like) as reader:
            arrivals = [r.arrival_ns for r in reader]
        like = [a - arrivals[0] for a in arrivals]
        count, span = len(like), like[-1] / 1e9
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        broker = start_with_retry(Mosquitto, Path(tmp) / "mosquitto")
        assert isinstance(broker, Mosquitto)
        try:
            path = Path(tmp) / "bench.screc"
            offsets, messages = synthesise(path, count, span, offsets=like)
            print(f"recording: {count} messages over {span:.0f}s at 1x "
                  f"({count / span:.0f} msg/s), {path.stat().st_size // 1024} KiB; "
                  f"{os.cpu_count()} CPUs, load average {_load()}")
            failed = False
            paho_rate = None
            for text in args.speeds.split(","):
                if text == "paho":
                    r = run_paho(broker, path, messages)
                    paho_rate = r["rate"]
                    ok = r["complete"] == 1.0 and r["in_order"] == 1.0
                    failed |= not ok
                    print(f"paho: {r['rate']:8.0f} msg/s at the subscriber ({r['acked_rate']:.0f}"
                          f" msg/s acknowledged, publisher CPU {r['cpu']:.0%}); "
                          f"{int(r['received'])}/{count} received"
                          f"{'' if ok else ', MESSAGES LOST OR OUT OF ORDER'}")
                    continue
                speed = None if text == "max" else float(text)
                r = run(broker, path, offsets, speed, args.spin_ms)
                ok = r["complete"] == 1.0 and r["in_order"] == 1.0
                failed |= not ok
                check = (f"{int(r['received'])}/{count} received, "
                         f"{'in order' if r['in_order'] else 'OUT OF ORDER'}"
                         f"{'' if ok else ', MESSAGES LOST'}")
                if speed is None:
                    ratio = f", {r['rate'] / paho_rate:.2f}x paho" if paho_rate else ""
                    print(f"max : {r['rate']:8.0f} msg/s at the subscriber "
                          f"({r['replayer_rate']:.0f} msg/s acknowledged, replayer CPU "
                          f"{r['cpu']:.0%}{ratio}); {check}")
                else:
                    print(f"{speed:3g}x: error at the subscriber p50 {r['p50']:.2f} ms, "
                          f"p99 {r['p99']:.2f} ms, max {r['max']:.2f} ms (min {r['min']:.2f}); "
                          f"at publish p50 {r['send_p50']:.1f}, p99 {r['send_p99']:.1f}, "
                          f"max {r['send_max']:.2f} ms; {r['duration']:.0f}s, replayer CPU "
                          f"{r['cpu']:.0%}, {r['stolen']:.2f}s stolen by the hypervisor; "
                          f"{check}")
            print(f"load average at the end: {_load()} (other processes competing for the CPUs "
                  "show up as lateness)")
        finally:
            broker.stop()
    return 1 if failed else 0


def _stolen_s() -> float:
    """CPU time the hypervisor gave to other guests (all CPUs), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
