"""The alert timeline each built-in scenario is expected to tell, kept in
``tests/data/timelines/{scenario}.json`` with the built-in rules and city.

After a deliberate change to the simulator, a scenario or the rules, make the recordings and
the expectations again and review the difference in git:

    .venv/bin/python scripts/make_recordings.py    # only if the simulator or a scenario changed
    .venv/bin/python -m tests.timelines
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from recorder.builtin import SEED, START, builtin_recordings, run_of
from rules.rehearsal import Rehearsal, Step, rehearse, rehearse_messages
from simulators.clock import parse_start
from simulators.scenarios import load_scenario
from simulators.simulation import readings
from smartcity.city import load_city
from smartcity.rulefile import load_rules

TIMELINES = Path(__file__).resolve().parent / "data" / "timelines"


def path_of(name: str) -> Path:
    return TIMELINES / f"{name}.json"


def expected(name: str) -> list[Step]:
    data = orjson.loads(path_of(name).read_bytes())
    return [Step.model_validate(s) for s in data["events"]]


def of_recording(name: str) -> Rehearsal:
    return rehearse(builtin_recordings()[name], load_rules(), load_city())


def of_simulation(name: str) -> Rehearsal:
    """The scenario simulated afresh, in-process, as its recording was made: catches a
    simulator change even before the recordings are made again."""
    city = load_city()
    scenario = load_scenario(name, city)
    run = run_of(scenario.length_s)
    start_ms = parse_start(START)

    def messages() -> Iterator[tuple[str, bytes, int]]:
        for m in readings(city, SEED, start_ms, run.interval_s, run.steps, scenario=scenario):
            yield str(m.topic), m.payload, start_ms

    return rehearse_messages(messages(), load_rules(), city, name=f"simulated {name}")


def write(name: str, steps: list[Step]) -> None:
    """One event per line, so a changed story reads as a short diff in review."""
    lines = ",\n".join("    " + orjson.dumps(s.model_dump()).decode() for s in steps)
    path_of(name).write_text(
        f'{{"recording": "{name}.screc", "rules": "rules/defaults.toml", "city": "built-in",\n'
        f' "events": [\n{lines}\n]}}\n')


def main() -> int:
    TIMELINES.mkdir(parents=True, exist_ok=True)
    for name in builtin_recordings():
        result = of_recording(name)
        write(name, result.steps)
        counts = result.counts()
        summary = ", ".join(f"{n} {change}" for change, n in counts.items())
        print(f"{path_of(name)}: {len(result.steps)} events ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
