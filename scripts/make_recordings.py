"""Record every built-in scenario into recorder/recordings/{name}.screc.

Each scenario runs seeded from a fixed start through a private Mosquitto, sped up so the
recording plays in about 30 seconds at 1x (the api and `smartcity replay` can slow it down or
speed it up), with about 400 readings per device. Run it after changing the city or a
scenario: `.venv/bin/python scripts/make_recordings.py`, then `.venv/bin/python
scripts/make_timelines.py` for the alert timelines the scenario regression suite expects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from launcher.servers import Mosquitto, start_with_retry
from recorder.builtin import SEED, START, recordings_dir, run_of
from simulators.scenarios import builtin_names, load_scenario
from smartcity.city import load_city

OUT = recordings_dir()


def smartcity(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "launcher.cli", *args], env=env)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    city = load_city()
    for name in builtin_names():
        # A fresh broker each time: no retained state of one scenario leaks into the next.
        with tempfile.TemporaryDirectory() as tmp:
            broker = start_with_retry(Mosquitto, Path(tmp) / "mosquitto")
            assert isinstance(broker, Mosquitto)
            env = dict(os.environ, SMARTCITY_MQTT_URL=broker.url, SMARTCITY_MQTT_ROOT="city",
                       SMARTCITY_DATA_DIR=tmp, SMARTCITY_LOG_LEVEL="WARNING")
            try:
                sim_s = load_scenario(name, city).length_s
                speed, interval, _ = run_of(sim_s)
                out = OUT / f"{name}.screc"
                # Readings only: replayed onto a live exhibit, recorded status messages would
                # overwrite the live devices' retained status.
                recorder = smartcity("record", "--out", str(out), "--force", "--no-retained",
                                     "--topic", "city/+/+/telemetry", "--note",
                                     f"built-in scenario {name}, seed {SEED}, start {START}",
                                     env=env)
                time.sleep(1.5)  # subscribed before the first reading
                sim = smartcity("simulate", "--scenario", name, "--seed", str(SEED), "--start",
                                START, "--speed", f"{speed:g}", "--interval", f"{interval:g}",
                                "--duration", f"{sim_s:g}", env=env)
                if sim.wait() != 0:
                    print(f"{name}: simulate failed", file=sys.stderr)
                    return 1
                time.sleep(1.5)  # the last messages reach the recorder
                recorder.send_signal(signal.SIGTERM)
                recorder.wait(30)
                print(f"{name}: {out.stat().st_size // 1024} KiB, {sim_s / 3600:g} h simulated "
                      f"at {speed:g}x, a reading every {interval:g} s")
            finally:
                broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
