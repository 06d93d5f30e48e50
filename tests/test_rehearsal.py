"""Rehearsal: the rules engine over a recording, against the live rules service on a real
Mosquitto and InfluxDB, and from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recorder import Replayer, ReplayOptions, Selection
from recorder.selection import Remap
from rules.rehearsal import Step, compare, rehearse
from smartcity.alerts import decode_alert
from smartcity.city import load_city
from smartcity.rulefile import load_rules
from smartcity.settings import InfluxSettings, MqttSettings
from tests.mqtt import collecting, wait_for
from tests.test_rules_service import rules_settings, running_rules

REPO = Path(__file__).resolve().parents[1]
STORM = REPO / "recorder" / "recordings" / "king-tide-storm.screc"


@pytest.mark.servers
def test_a_live_replay_through_the_rules_service_raises_what_the_rehearsal_shows(
        mqtt_settings: MqttSettings, influx_settings: InfluxSettings, tmp_path: Path,
        root: str) -> None:
    expected = rehearse(STORM, load_rules(), load_city())
    assert len(expected.steps) > 20 and {s.change for s in expected.steps} == {
        "raised", "escalated", "eased", "cleared"}
    settings = rules_settings(mqtt_settings, influx_settings, tmp_path)
    with collecting(mqtt_settings, f"{root}/alerts/#") as got, running_rules(settings):
        # Byte for byte (no source=replayed), onto this test's root, as fast as the broker
        # takes it: the engine judges by the readings' own times, not by when they arrive.
        status = Replayer(STORM, mqtt_settings, ReplayOptions(
            speed=None, mark_source=False,
            selection=Selection(remaps=(Remap.parse(f"city={root}"),)))).run()
        assert status.state == "finished" and status.sent == expected.messages

        def events() -> list[Step]:
            alerts = [decode_alert(m.payload) for m in got]
            return [Step.of(a) for a in alerts if a is not None]

        wait_for(lambda: len(events()) >= len(expected.steps), timeout=60,
                 what=f"{len(expected.steps)} alert events from the live service")
    live = events()
    # Step.of without the level before cannot tell escalated from eased: compare the rest.
    assert [s.model_copy(update={"change": s.state}) for s in live] == \
        [s.model_copy(update={"change": s.state}) for s in expected.steps]


def test_compare_shows_what_a_threshold_change_adds_drops_and_moves(tmp_path: Path) -> None:
    defaults = (REPO / "rules" / "defaults.toml").read_text()
    # Flood levels raised only after 10 minutes, not 2: every flood alert comes later.
    slower = defaults.replace("raise_after_s = 120\nclear_after_s = 600\nmax_gap_s = 900",
                              "raise_after_s = 600\nclear_after_s = 600\nmax_gap_s = 900", 1)
    assert slower != defaults
    (tmp_path / "slower.toml").write_text(slower)
    result = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "rules", "--rehearse", str(STORM),
         "--compare", str(tmp_path / "slower.toml")], capture_output=True, text=True,
        timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"rehearsal of {STORM} with the built-in HCMC rules: 6,400 messages")
    assert "raised    watch    flood-depth    flood-thao-dien" in out
    moved = [line for line in out.splitlines() if line.startswith("~ moved")]
    assert moved and all("flood-depth" in line for line in moved)
    assert "~ moved    raised watch flood-depth flood-thao-dien from 2025-09-15T03:25:30.000Z " \
           "to 2025-09-15T03:33:54.000Z" in out


def test_compare_names_added_and_dropped_events() -> None:
    base = rehearse(STORM, load_rules(), load_city()).steps
    without_first = base[1:]
    shifted = [base[0].model_copy(update={"time": "2025-09-15T23:59:59.000Z"}), *base[1:]]
    dropped = compare(base, without_first)
    assert [(d.difference, d.time) for d in dropped] == [("dropped", base[0].time)]
    assert dropped[0].line().startswith(f"- dropped  {base[0].change} {base[0].level} ")
    added = compare(without_first, base)
    assert [(d.difference, d.other_time) for d in added] == [("added", base[0].time)]
    moved = compare(base, shifted)
    assert [(d.difference, d.time, d.other_time) for d in moved] == [
        ("moved", base[0].time, "2025-09-15T23:59:59.000Z")]
    assert compare(base, base) == []


def test_rehearsal_refuses_what_is_not_a_recording(tmp_path: Path) -> None:
    (tmp_path / "nope.screc").write_text("not a recording")
    result = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "rules", "--rehearse",
         str(tmp_path / "nope.screc")], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and "not a smartcity recording" in result.stderr
