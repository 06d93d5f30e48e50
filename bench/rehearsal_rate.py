"""How fast a rules rehearsal runs over a recording: messages per second.

    .venv/bin/python bench/rehearsal_rate.py storm.screc [--scale 9] [--repeat 3]

``bench/storm_recording.py`` makes the storm recording (144,000 readings of 144 devices, so
the city is loaded at ``--scale 9``). In one run, back to back, it measures the parts a
rehearsal is made of, so the figures compare as ratios on a shared machine:

- read: every record of the file decompressed and parsed;
- decode: read, then each message decoded by the contract's decoder (``rules.feed``);
- rehearse: the whole rehearsal (``rules.rehearsal.rehearse``): read, decode, the engine.

Each is run ``--repeat`` times; the best is printed (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder import RecordingReader
from rules.feed import readings_of
from rules.rehearsal import rehearse
from smartcity.city import load_city
from smartcity.registry import Registry
from smartcity.rulefile import load_rules


def read_only(path: Path) -> int:
    with RecordingReader(path) as reader:
        return sum(1 for _ in reader)


def decode_only(path: Path, registry: Registry) -> int:
    n = 0
    with RecordingReader(path) as reader:
        root = reader.header.root or "city"
        for r in reader:
            readings_of(r.topic, r.payload, registry, root, r.arrival_ns // 1_000_000)
            n += 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording", type=Path)
    parser.add_argument("--scale", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    city, rules = load_city(scale=args.scale), load_rules()
    print(f"{args.recording}: {args.recording.stat().st_size // 1024} KiB; city at scale "
          f"{args.scale} ({len(city.registry())} devices); {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    events = messages = readings = 0
    for name in ("read", "decode", "rehearse"):
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            if name == "read":
                messages = read_only(args.recording)
            elif name == "decode":
                decode_only(args.recording, city.registry())
            else:
                result = rehearse(args.recording, rules, city)
                events, readings = len(result.steps), result.readings
            best = min(best, time.perf_counter() - t)
        print(f"{name:9} {messages / best:10,.0f} msg/s  ({messages:,} messages in {best:.2f} s)")
    print(f"rehearsal: {readings:,} readings judged, {events} alert events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
