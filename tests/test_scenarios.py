"""Scenario files: the built-ins validate and run fast, bad files are refused with line and
field, and every sensor fault shows in the stream the way engineers rehearse it."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from simulators.clock import parse_start
from simulators.scenarios import builtin_names, list_builtin, load_scenario, parse_scenario
from simulators.simulation import Message, readings
from smartcity.city import load_city
from smartcity.codec import Reading, decode
from smartcity.errors import ContractError

CITY = load_city()
START = parse_start("2025-10-20T10:00")
BUILT_IN = ("normal-day", "rush-hour", "king-tide-storm", "heatwave", "sensor-faults")


def test_the_built_in_scenarios_are_listed_with_a_one_line_description() -> None:
    listed = dict(list_builtin())
    assert set(BUILT_IN) <= set(listed)
    assert [name for name, _ in list_builtin()] == sorted(listed)
    for description in listed.values():
        assert 10 < len(description) <= 200 and "\n" not in description


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_scenario_validates_and_runs_a_simulated_hour_in_seconds(
        name: str) -> None:
    scenario = load_scenario(name, CITY)
    started = time.monotonic()
    messages = list(readings(CITY, 1, START, 10, 360, scenario=scenario))
    elapsed = time.monotonic() - started

    assert elapsed < 5
    devices = {d.device_id for d in CITY.registry()}
    seen = {decode(str(m.topic), m.payload).device_id for m in messages}  # all on contract
    assert seen == devices
    assert scenario.name == name and scenario.length_s >= 3600


def test_a_scenario_makes_the_stream_no_less_reproducible() -> None:
    storm = load_scenario("sensor-faults", CITY)
    first = list(readings(CITY, 9, START, 30, 300, scenario=storm))
    again = list(readings(CITY, 9, START, 30, 300, scenario=storm))
    other = list(readings(CITY, 10, START, 30, 300, scenario=storm))
    assert first == again
    assert first != other


def test_a_scaled_city_plays_the_scenario_in_every_copy() -> None:
    big = load_city(scale=2)
    storm = load_scenario("king-tide-storm", big)
    deepest: dict[str, float] = defaultdict(float)
    for m in readings(big, 3, START, 300, 12 * 8, scenario=storm):
        r = decode(str(m.topic), m.payload)
        if "water_level_cm" in r.metrics:
            deepest[r.device_id] = max(deepest[r.device_id], r.metrics["water_level_cm"])
    assert deepest["flood-nguyen-huu-canh"] > 20 and deepest["flood-nguyen-huu-canh-x1"] > 20


# --- bad files ---------------------------------------------------------------------------

GOOD = """\
version = 1
description = "A test"

[[events]]
kind = "rain"
intensity_mm_h = 50
at = "10m"
duration = "1h"

[[faults]]
kind = "stuck"
devices = ["flood-thao-dien"]
duration = 600
"""


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ('kind = "rain"', 'kind = "hail"', "bad.toml:5: events[0].kind",
     "kind must be one of: rain, tide, accident, closure, outage, heatwave, demand"),
    ("intensity_mm_h = 50\n", "", "bad.toml:4: events[0].intensity_mm_h", "is required"),
    ("intensity_mm_h = 50", "intensity_mm_h = 900", "bad.toml:6: events[0].intensity_mm_h",
     "less than or equal to 300"),
    ('duration = "1h"', 'duration = "an hour"', "bad.toml:8: events[0].duration",
     "is not a duration such as '90m'"),
    ('duration = "1h"', "duration = 0", "bad.toml:8: events[0].duration", "must be above 0"),
    ('at = "10m"', 'at = "-10m"', "bad.toml:7: events[0].at", "is not a duration"),
    ("intensity_mm_h = 50", "intensity_mm_h = 50\nintensty = 3", "bad.toml:7: events[0].intensty",
     "not a known field here (a typo?)"),
    ('kind = "stuck"', 'kind = "gremlins"', "bad.toml:11: faults[0].kind",
     "kind must be one of: dropout, stuck, noise, battery_drain, clock_skew, duplicate"),
    ('devices = ["flood-thao-dien"]', "devices = []", "bad.toml:12: faults[0].devices",
     "at least 1 item"),
    ('devices = ["flood-thao-dien"]', 'devices = ["Flood Thao Dien"]',
     "bad.toml:12: faults[0].devices[0]", "must match"),
    ('description = "A test"', 'description = "A\\ntest"', "bad.toml:2: description",
     "must be one line"),
    ('version = 1', 'version = 7', "bad.toml:1: version", "Input should be 1"),
    ('description = "A test"\n', "", "description", "is required"),
    ('version = 1', 'version = 1\nduration = "30m"', "bad.toml:8: events[0].at",
     "ends after the scenario's duration of 1800 s"),
    ('kind = "rain"\nintensity_mm_h = 50', 'kind = "demand"\nfactor = 2\nlevel = 1',
     "bad.toml:4: events[0]", "give either factor or level"),
    # Checked against the city: names of places that do not exist.
    ('kind = "rain"\nintensity_mm_h = 50', 'kind = "accident"\nroad = "duong-khong-co"',
     "bad.toml:6: events[0].road", "unknown road 'duong-khong-co' (not in the city file)"),
    ('kind = "rain"\nintensity_mm_h = 50', 'kind = "outage"\nward = "quan-99"',
     "bad.toml:6: events[0].ward", "unknown ward 'quan-99'"),
    ('devices = ["flood-thao-dien"]', 'devices = ["flood-thao-dien", "flood-hanoi"]',
     "bad.toml:12: faults[0].devices", "unknown device 'flood-hanoi'"),
])
def test_a_bad_scenario_is_refused_naming_line_and_field(tmp_path: Path, old: str, new: str,
                                                         field: str, message: str) -> None:
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ContractError) as e:
        load_scenario(path, CITY)
    assert [p.field for p in e.value.problems] == [field], e.value
    assert message in e.value.problems[0].message
    assert str(path) in str(e.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("= 50", "= -5").replace('"10m"', '"soon"'), encoding="utf-8")
    with pytest.raises(ContractError) as e:
        load_scenario(path, CITY)
    assert {p.field for p in e.value.problems} == {"bad.toml:6: events[0].intensity_mm_h",
                                                   "bad.toml:7: events[0].at"}


def test_unreadable_unknown_and_unnamed_scenarios_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="not valid TOML"):
        parse_scenario("description = ", "x.toml")
    with pytest.raises(ContractError, match="unknown scenario 'monsoon'") as e:
        load_scenario("monsoon")
    assert "king-tide-storm" in str(e.value)
    odd = tmp_path / "My Storm.toml"
    odd.write_text(GOOD, encoding="utf-8")
    with pytest.raises(ContractError, match=r"name: 'My Storm' is not a valid id: add name"):
        load_scenario(odd)
    odd.write_text('name = "my-storm"\n' + GOOD, encoding="utf-8")
    assert load_scenario(odd, CITY).name == "my-storm"


def test_a_file_scenario_defaults_its_length_to_its_last_item(tmp_path: Path) -> None:
    scenario = parse_scenario(GOOD, default_name="good", city=CITY)
    assert scenario.length_s == 70 * 60


# --- faults ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faulty() -> dict[str, list[tuple[float, Message, Reading]]]:
    """Two hours of sensor-faults at one-minute steps: device -> (minutes in, message, reading)."""
    out: dict[str, list[tuple[float, Message, Reading]]] = defaultdict(list)
    scenario = load_scenario("sensor-faults", CITY)
    for m in readings(CITY, 5, START, 60, 150, scenario=scenario):
        r = decode(str(m.topic), m.payload)
        out[m.device_id].append(((r.ts_ms - START) / 60_000, m, r))
    return out


def minutes(stream: list[tuple[float, Message, Reading]], lo: float, hi: float
            ) -> list[tuple[float, Message, Reading]]:
    return [x for x in stream if lo <= x[0] < hi]


def test_dropout_loses_messages_but_not_their_seq(faulty: dict) -> None:  # type: ignore[type-arg]
    gone = faulty["flood-huynh-tan-phat"]
    assert minutes(gone, 10, 25) == [] and len(minutes(gone, 0, 10)) == 10
    seqs = [r.seq for _, _, r in gone]
    assert seqs[10] - seqs[9] == 16  # the gap ingest counts
    flaky = minutes(faulty["ton-duc-thang"], 0, 120)
    assert 0.1 < 1 - len(flaky) / 120 < 0.3


def test_a_stuck_sensor_repeats_its_value_while_ts_and_seq_move_on(faulty: dict) -> None:  # type: ignore[type-arg]
    stuck = minutes(faulty["flood-thao-dien"], 20, 60)
    assert len({orjson.dumps(r.metrics) for _, _, r in stuck}) == 1
    assert len({r.seq for _, _, r in stuck}) == len({r.ts_ms for _, _, r in stuck}) == 40


def test_noise_bursts_then_calms_down(faulty: dict) -> None:  # type: ignore[type-arg]
    def jumps(lo: float, hi: float) -> float:
        temps = [r.metrics["temperature_c"] for _, _, r in minutes(faulty["rain-sai-gon"], lo, hi)]
        return max(abs(b - a) for a, b in itertools.pairwise(temps))

    assert jumps(30, 50) > 5 > 1 > jumps(60, 80)


def test_a_draining_battery_reports_its_charge_then_goes_silent(faulty: dict) -> None:  # type: ignore[type-arg]
    home = faulty["home-thao-dien"]
    assert all(r.metrics.get("battery_pct") is None for _, _, r in minutes(home, 0, 40))
    charge = [r.metrics["battery_pct"] for _, _, r in minutes(home, 40, 70)]
    assert charge[0] == 30 and charge == sorted(charge, reverse=True) and charge[-1] > 0
    assert minutes(home, 70, 100) == []  # flat: silent until the window ends
    assert len(minutes(home, 100, 150)) == 50 and \
        all("battery_pct" not in r.metrics for _, _, r in minutes(home, 100, 150))


def test_clock_skew_shifts_ts_by_the_offset(faulty: dict) -> None:  # type: ignore[type-arg]
    skewed = [r for _, _, r in faulty["saigon-bridge"]]
    by_seq = {r.seq: r.ts_ms for r in skewed}
    for seq, ts in by_seq.items():
        expected = START + seq * 60_000 - (3_600_000 if 60 <= seq < 90 else 0)
        assert ts == expected


def test_duplicates_repeat_the_same_bytes_and_seq(faulty: dict) -> None:  # type: ignore[type-arg]
    for device in ("home-le-thanh-ton", "tide-phu-an"):
        stream = faulty[device]
        doubled = minutes(stream, 70, 100)
        assert len(doubled) == 60
        assert all(a[1] == b[1] for a, b in zip(doubled[::2], doubled[1::2], strict=True))
        assert len(minutes(stream, 100, 130)) == 30
