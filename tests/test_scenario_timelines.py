"""The scenario regression suite: every built-in scenario tells the alert story kept in
``tests/data/timelines/``, from its recording and simulated afresh. A change to the
simulator, a scenario or the rules that changes a story fails here with the events added,
dropped or moved; ``tests/timelines.py`` says how to accept an intended change."""

from __future__ import annotations

import pytest

from recorder.builtin import builtin_recordings
from rules.rehearsal import Step, compare
from simulators.scenarios import builtin_names
from tests import timelines

NAMES = sorted(builtin_names())


def story_diff(name: str, told_by: str, expected: list[Step], got: list[Step]) -> str:
    lines = [d.line() for d in compare(expected, got)]
    if not lines:  # same times: a value, unit or id changed
        lines = [f"- {e.line()}\n+ {g.line()}" for e, g in zip(expected, got, strict=False)
                 if e != g][:10]
    return (f"{name}: {told_by} no longer tells the expected alert story "
            f"({len(expected)} events expected, {len(got)} now):\n  " + "\n  ".join(lines) +
            "\nIf the change is intended, make the expectations again and review their diff: "
            ".venv/bin/python -m tests.timelines")


def test_every_builtin_scenario_has_a_recording_and_an_expected_timeline() -> None:
    assert sorted(builtin_recordings()) == NAMES
    assert sorted(p.stem for p in timelines.TIMELINES.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_recording_tells_the_expected_story(name: str) -> None:
    expected = timelines.expected(name)
    got = timelines.of_recording(name)
    assert got.lost is None
    assert got.steps == expected, story_diff(name, "its recording", expected, got.steps)


@pytest.mark.parametrize("name", NAMES)
def test_the_simulator_tells_the_expected_story(name: str) -> None:
    expected = timelines.expected(name)
    got = timelines.of_simulation(name).steps
    assert got == expected, story_diff(name, "the simulator", expected, got)


def test_a_changed_story_fails_with_a_readable_diff() -> None:
    expected = timelines.expected("king-tide-storm")
    changed = [s.model_copy(update={"time": "2025-09-15T23:00:00.000Z"})
               if s.rule == "heavy-rain" else s for s in expected if s.device_id != "saigon-bridge"]
    text = story_diff("king-tide-storm", "its recording", expected, changed)
    assert "- dropped  raised warning traffic-jam saigon-bridge at 2025-09-15T10:46:30.000Z" in text
    assert "~ moved    raised" in text and "heavy-rain rain-sai-gon from " in text
    assert text.endswith(".venv/bin/python -m tests.timelines")
