"""Record the king-tide storm at exhibit scale: the recording the replay and rehearsal
benchmarks run over (about 144,000 readings in 100 s, 144 devices).

    .venv/bin/python bench/storm_recording.py OUT.screc [--scale 9] [--seconds 100]

A private Mosquitto, ``smartcity record`` and a seeded ``smartcity simulate`` sped up so the
whole storm (14 simulated hours) plays in ``--seconds``, every device reading about 1000 times.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from launcher.servers import Mosquitto, start_with_retry
from simulators.scenarios import load_scenario
from smartcity.city import load_city

START = "2025-09-15T05:00"
SEED = "2025"


def make(out: Path, scale: int = 9, seconds: float = 100.0) -> Path:
    sim_s = load_scenario("king-tide-storm", load_city()).length_s
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_with_retry(Mosquitto, Path(tmp) / "mosquitto")
        assert isinstance(broker, Mosquitto)
        env = dict(os.environ, SMARTCITY_MQTT_URL=broker.url, SMARTCITY_MQTT_ROOT="city",
                   SMARTCITY_DATA_DIR=tmp, SMARTCITY_LOG_LEVEL="WARNING")
        cli = [sys.executable, "-m", "launcher.cli"]
        try:
            recorder = subprocess.Popen([*cli, "record", "--out", str(out), "--force",
                                         "--no-retained", "--topic", "city/+/+/telemetry",
                                         "--note", f"king-tide-storm x{scale}, seed {SEED}"],
                                        env=env)
            time.sleep(1.5)  # subscribed before the first reading
            subprocess.run([*cli, "simulate", "--scenario", "king-tide-storm", "--seed", SEED,
                            "--start", START, "--speed", f"{sim_s / seconds:g}", "--interval",
                            f"{sim_s / 1000:g}", "--duration", f"{sim_s:g}", "--scale",
                            str(scale)], env=env, check=True)
            time.sleep(2.0)
            recorder.send_signal(signal.SIGTERM)
            recorder.wait(30)
        finally:
            broker.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=100.0)
    args = parser.parse_args()
    make(args.out, args.scale, args.seconds)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
