"""The rules engine and the rule file, as pure functions: readings with event times in,
alert events out. Minutes pass in the timestamps, not on the clock."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from rules.engine import Engine
from rules.wording import ward_names
from smartcity.alerts import Alert, AlertLevel, AlertState, alert_id, decode_alert, encode_alert
from smartcity.city import City, load_city
from smartcity.codec import Reading
from smartcity.errors import InvalidId
from smartcity.ids import is_valid_id
from smartcity.models import Source, format_ts
from smartcity.registry import DeviceInfo, Registry
from smartcity.rulefile import RuleFileError, RuleSet, load_rules, parse_rules
from smartcity.topics import Domain
from storage import alerts
from storage.alerts import alert_line

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z
MIN = 60_000
FLOOD = "flood-nguyen-huu-canh"
ROAD = "nguyen-huu-canh"

CITY = load_city()
DEFAULTS = load_rules().with_city(CITY)

W, D, WATCH = AlertLevel.WARNING, AlertLevel.DANGER, AlertLevel.WATCH
R, U, C = AlertState.RAISED, AlertState.UPDATED, AlertState.CLEARED


def engine(rules: RuleSet = DEFAULTS, registry: Registry | None = None) -> Engine:
    return Engine(rules, registry or CITY.registry(), ward_names(CITY))


def reading(value: float, minute: float, device: str = FLOOD, domain: Domain = Domain.FLOOD,
            metric: str = "water_level_cm", source: Source = Source.SIMULATED) -> Reading:
    return Reading(domain, device, T0 + round(minute * MIN), 0, source, {metric: value})


def run(e: Engine, values: Sequence[float], **kw: Any) -> list[tuple[int, Alert]]:
    """Feed one reading a minute; return (index, event) pairs."""
    out = []
    for i, v in enumerate(values):
        out += [(i, ev) for ev in e.evaluate(reading(v, i, **kw))]
    return out


def summary(events: list[tuple[int, Alert]]) -> list[tuple[int, AlertState, AlertLevel]]:
    return [(i, ev.state, ev.level) for i, ev in events]


# -- the flood story ---------------------------------------------------------------------

RISE_AND_FALL = ([0, 4, 8, 12, 15, 18, 22, 26, 30, 35, 41, 44, 45, 43, 41]  # 0..14 rising
                 + [36] * 6 + [30] * 8 + [22] * 6 + [12] * 4 + [5] * 12)  # 15..50 falling


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param(RISE_AND_FALL, [(5, R, WATCH), (8, U, W), (11, U, D), (25, U, W), (45, C, W)],
                 id="gradual: watch, warning, danger, back to warning, cleared"),
    pytest.param([0] + [45] * 3 + [0] * 12, [(2, R, D), (14, C, D)],
                 id="flash flood: raised at danger, cleared"),
    pytest.param([0, 25, 25, 25] + [16] * 11 + [5] * 12,
                 [(3, R, W), (14, U, WATCH), (25, C, WATCH)],
                 id="warning, settles at watch, cleared"),
])
def test_rising_then_falling_water_raises_escalates_and_clears_one_alert(
        values: list[float], expected: list[tuple[int, AlertState, AlertLevel]]) -> None:
    events = run(engine(), values)
    assert summary(events) == expected
    alerts = [ev for _, ev in events]
    first_i = events[0][0]
    assert {a.alert_id for a in alerts} == {alert_id("flood-depth", FLOOD, T0 + first_i * MIN)}
    for i, a in events:
        assert a.raised_at == format_ts(T0 + first_i * MIN)
        assert a.updated_at == format_ts(T0 + i * MIN)
        assert a.cleared_at == (a.updated_at if a.state is C else None)
        assert a.value == values[i] and a.site == FLOOD and a.ward == "thanh-my-tay"
        assert a.source is Source.SIMULATED and a.unit == "cm"
    assert sum(a.state is R for a in alerts) == 1 and sum(a.state is C for a in alerts) == 1


def test_thresholds_and_texts_of_the_events() -> None:
    events = [ev for _, ev in run(engine(), [0, 42.5, 42.5, 42.5])]
    (danger,) = events
    assert danger.threshold == 40 and danger.metric == "water_level_cm"
    assert danger.title_vi == "Ngập nặng tại Điểm ngập Nguyễn Hữu Cảnh: 42,5 cm"
    assert danger.title_en == "Severe flooding at Nguyen Huu Canh flood point: 42.5 cm"
    assert "42,5 cm" in danger.message_vi and "(danger level 40 cm)" in danger.message_en
    rain = run(engine(), [120] * 7, device="rain-sai-gon", domain=Domain.WEATHER,
               metric="rain_mm_h")
    assert summary(rain) == [(5, R, D)]  # five minutes of a downpour
    event = rain[0][1]
    assert event.title_vi == "Mưa rất to tại Phường Sài Gòn: 120 mm/h"
    assert event.title_en == "Very heavy rain in Sai Gon Ward: 120 mm/h"


def test_a_sites_warning_level_comes_from_the_city_file() -> None:
    # Thao Dien floods at 15 cm (warning_cm in the city file), Nguyen Huu Canh at 20.
    at_16 = [0, 16, 16, 16]
    thao_dien = run(engine(), at_16, device="flood-thao-dien")
    assert summary(thao_dien) == [(3, R, W)] and thao_dien[0][1].threshold == 15
    assert summary(run(engine(), at_16)) == [(3, R, WATCH)]


# -- no flapping -------------------------------------------------------------------------

JITTER_FLOOD = [19.5, 20.5] * 30
JITTER_ROAD = [14.0, 16.5, 13.5, 17.0] * 15


@pytest.mark.parametrize(("values", "kw", "expected"), [
    pytest.param(JITTER_FLOOD, {}, [(2, R, WATCH), (3, U, W)],
                 id="water at 19.5/20.5 cm for an hour"),
    pytest.param(JITTER_ROAD, dict(device=ROAD, domain=Domain.TRAFFIC, metric="speed_kmh"),
                 [(6, R, W)], id="traffic at 13.5-17 km/h for an hour"),
    pytest.param([14, 21] * 30, dict(device=ROAD, domain=Domain.TRAFFIC, metric="speed_kmh"),
                 [], id="stop-and-go that leaves the band every other minute"),
])
def test_jitter_around_a_threshold_raises_one_alert(
        values: list[float], kw: dict[str, Any],
        expected: list[tuple[int, AlertState, AlertLevel]]) -> None:
    events = run(engine(), values, **kw)
    assert summary(events) == expected
    assert len({ev.alert_id for _, ev in events}) == min(1, len(events))


@pytest.mark.parametrize(("speeds", "expected"), [
    pytest.param([30] + [10] * 4 + [30] * 10, [], id="a 4-minute jam"),
    pytest.param(([30] + [10] * 4) * 6, [], id="4-minute jams, one after another"),
    pytest.param([30] + [10] * 6 + [30] * 3, [(6, R, W), (9, C, W)], id="5 minutes"),
    pytest.param([30] + [10, 18] * 3 + [30] * 3, [], id="5 minutes, ending at 18 km/h"),
    pytest.param([30] + [10, 18] * 3 + [10] + [30] * 3, [(7, R, W), (10, C, W)],
                 id="6 minutes of 10-18 km/h, inside the band"),
    pytest.param([30] + [10] * 3 + [21] + [10] * 4 + [30] * 3, [], id="broken by 21 km/h"),
])
def test_congestion_must_last_the_minimum_to_raise(
        speeds: list[float], expected: list[tuple[int, AlertState, AlertLevel]]) -> None:
    events = run(engine(), speeds, device=ROAD, domain=Domain.TRAFFIC, metric="speed_kmh")
    assert summary(events) == expected


def test_a_jam_raises_at_five_minutes_not_a_second_before() -> None:
    e = engine()

    def slow(second: int) -> list[AlertState]:
        jam = reading(10, second / 60, ROAD, Domain.TRAFFIC, "speed_kmh")
        return [ev.state for ev in e.evaluate(jam)]

    assert [slow(s) for s in (0, 60, 120, 180, 240, 299)] == [[]] * 6
    assert slow(300) == [R]


# -- hysteresis boundaries, on a small rule --------------------------------------------

SMALL = """
version = 1
[[rules]]
id = "deep"
domain = "flood"
metric = "water_level_cm"
direction = "above"
unit = "cm"
hysteresis = 3
raise_after_s = 0
clear_after_s = 0
[[rules.levels]]
level = "warning"
enter = 20
title_vi = "Ngập {place}: {value} {unit}"
title_en = "Flooding {place}: {value} {unit}"
message_vi = "Mức {threshold} {unit}"
message_en = "Level {threshold} {unit}"
[rules.cleared]
title_vi = "Hết ngập {place}"
title_en = "Flooding over at {place}"
message_vi = "Còn {value} {unit}"
message_en = "Now {value} {unit}"
"""
SMALL_BELOW = (SMALL.replace('"above"', '"below"').replace('"flood"', '"traffic"')
               .replace("water_level_cm", "speed_kmh").replace("enter = 20", "enter = 15"))


@pytest.mark.parametrize(("text", "device", "domain", "metric", "values", "levels"), [
    pytest.param(SMALL, FLOOD, Domain.FLOOD, "water_level_cm",
                 [19.99, 20, 17.01, 17, 16.99, 19.99, 20],
                 [None, W, W, W, None, None, W], id="above: enter 20 (>=), exit 17 (<)"),
    pytest.param(SMALL_BELOW, ROAD, Domain.TRAFFIC, "speed_kmh",
                 [15.01, 15, 17.99, 18, 18.01, 15.01, 15],
                 [None, W, W, W, None, None, W], id="below: enter 15 (<=), exit 18 (>)"),
])
def test_hysteresis_boundaries(text: str, device: str, domain: Domain, metric: str,
                               values: list[float], levels: list[AlertLevel | None]) -> None:
    e = engine(parse_rules(text))
    seen = []
    for i, v in enumerate(values):
        e.evaluate(reading(v, i, device, domain, metric))
        active = e.active()
        seen.append(active[0].level if active else None)
    assert seen == levels


def test_a_silent_device_restarts_its_timers() -> None:
    e = engine()
    assert e.evaluate(reading(25, 0)) == []
    assert e.evaluate(reading(25, 20)) == []  # 20 min later: not 20 minutes of flooding
    assert [ev.state for ev in e.evaluate(reading(25, 22))] == [R]


def test_late_and_repeated_readings_are_skipped() -> None:
    e = engine()
    first = run(e, [0, 25, 25, 25])
    assert summary(first) == [(3, R, W)]
    # A redelivery after a crash, then a device clock gone backwards: judged already or late.
    for minute in (3, 2, 0):
        assert e.evaluate(reading(0, minute)) == []
    assert e.counters.late == 3 and len(e.active()) == 1


def test_unknown_devices_and_wrong_domains_are_ignored() -> None:
    e = engine()
    for _ in range(5):
        assert e.evaluate(reading(50, _, device="nobody")) == []
        assert e.evaluate(reading(50, _, device=ROAD)) == []  # a road is not a flood site
    assert e.counters.ignored == 10 and e.active() == []


def test_an_exhibitors_live_device_raises_alerts_like_a_simulated_one() -> None:
    booth = DeviceInfo(device_id="expo-water-7", domain=Domain.FLOOD, name="Cảm biến gian 7",
                       name_en="Booth 7 sensor", ward="sai-gon", site="booth-7", lat=10.77,
                       lon=106.7, source=Source.LIVE)
    e = engine(registry=Registry([*CITY.registry(), booth]))
    events = run(e, [0, 25, 25, 25], device="expo-water-7", source=Source.LIVE)
    assert summary(events) == [(3, R, W)]
    alert = events[0][1]
    assert alert.source is Source.LIVE and alert.site == "booth-7" and alert.threshold == 20
    assert alert.title_vi == "Ngập tại Cảm biến gian 7: 25 cm"


def test_a_replay_runs_its_own_state_machine() -> None:
    e = engine()
    run(e, [0, 25, 25, 25])
    replay = run(e, [0, 45, 45, 45], source=Source.REPLAYED)
    assert summary(replay) == [(2, R, D)] and replay[0][1].source is Source.REPLAYED
    assert len(e.active()) == 2


# -- state survives a restart --------------------------------------------------------------

def test_a_restarted_engine_carries_on_as_if_it_never_stopped() -> None:
    values = RISE_AND_FALL
    uninterrupted = run(engine(), values)
    for cut in range(len(values)):
        first = engine()
        events = run(first, values[:cut])
        second = engine()
        assert second.restore(orjson.loads(orjson.dumps(first.dump()))) == []
        for i in range(cut, len(values)):
            events += [(i, ev) for ev in second.evaluate(reading(values[i], i))]
        assert events == uninterrupted, f"restarted after reading {cut}"


def test_restoring_an_alert_whose_rule_is_gone_clears_it() -> None:
    first = engine()
    (raised,) = [ev for _, ev in run(first, [0, 25, 25, 25])]
    state = first.dump()
    without_flood = RuleSet(rules=[r for r in DEFAULTS.rules if r.id != "flood-depth"])
    (cleared,) = engine(without_flood).restore(state)
    assert cleared.state is C and cleared.alert_id == raised.alert_id
    assert cleared.raised_at == raised.raised_at and cleared.cleared_at == format_ts(T0 + 3 * MIN)
    assert cleared.title_en.startswith("Alert withdrawn: ")


# -- the event model -----------------------------------------------------------------------

def test_alert_ids_follow_the_id_rule_and_are_deterministic() -> None:
    readable = alert_id("flood-depth", FLOOD, T0)
    assert readable == "flood-depth_flood-nguyen-huu-canh_20260528t202640000z"
    long_one = alert_id("r" * 64, "d" * 64, T0 + 7)
    assert is_valid_id(long_one) and long_one.endswith("20260528t202640007z")
    assert long_one == alert_id("r" * 64, "d" * 64, T0 + 7) != alert_id("r" * 64, "e" * 64, T0 + 7)


def test_alert_events_round_trip_and_become_escaped_lines() -> None:
    (_, alert), = run(engine(), [0, 25, 25, 25])
    assert decode_alert(encode_alert(alert)) == alert
    assert decode_alert(b"") is None
    tricky = alert.model_copy(update={"title_en": 'Say "hi", a=b \\ c'})
    line = alert_line(tricky)
    assert line.startswith("alerts,alert_id=flood-depth_flood-nguyen-huu-canh_")
    assert ",state=raised,ward=thanh-my-tay value=25.0,threshold=20.0," in line
    assert 'title_en="Say \\"hi\\", a=b \\\\ c"' in line
    assert line.endswith(f" {T0 + 3 * MIN}")


# -- the rule file -----------------------------------------------------------------------

def test_the_default_rules_cover_flood_rain_traffic_and_home() -> None:
    rules = {r.id: r for r in DEFAULTS.rules}
    assert {r.domain for r in rules.values()} == set(Domain)
    flood = rules["flood-depth"].thresholds(None)
    assert [(t.level, t.enter, t.exit) for t in flood] == [
        (WATCH, 10, 7), (W, 20, 17), (D, 40, 37)]
    jam = rules["traffic-jam"].thresholds(None)[0]
    assert (jam.enter, jam.exit, jam.raise_after_ms, jam.clear_after_ms) == (15, 20, 300_000,
                                                                             120_000)


BAD_FILES = [
    # (change to the small rule file, where the error points, what it says)
    ('unit = "cm"', 'unit = "cm', "file", "not valid TOML"),
    ('unit = "cm"', 'unit = "cm"\nunits = "cm"', "rules.0.units", "is not a known field"),
    ('metric = "water_level_cm"', 'metric = "water_level"', "rules.0",
     "'water_level' is not a flood metric"),
    ('direction = "above"', 'direction = "up"', "rules.0.direction", "'above' or 'below'"),
    ("enter = 20", 'enter = "twenty"', "rules.0.levels.0.enter", "valid number"),
    ("enter = 20", "enter = 20\nexit = 25", "rules.0", "warning exit 25 must be at or below"),
    ('level = "warning"', 'level = "severe"', "rules.0.levels.0.level", "'advisory'"),
    ("hysteresis = 3", "hysteresis = -1", "rules.0.hysteresis", "greater than or equal to 0"),
    ("raise_after_s = 0", "raise_after_s = -5", "rules.0.raise_after_s", "greater than or"),
    ('title_en = "Flooding {place}: {value} {unit}"', 'title_en = "Flooding {where}"',
     "rules.0.levels.0", "unknown placeholder(s) where"),
    ('title_en = "Flooding {place}: {value} {unit}"', 'title_en = "Flooding {value:.1f}"',
     "rules.0.levels.0", "no format spec"),
    ('title_vi = "Hết ngập {place}"', 'title_vi = "Hết ngập\\n{place}"', "rules.0.cleared",
     "must be one line"),
    ('id = "deep"', 'id = "Deep Water"', "rules.0.id", "must match"),
    ("version = 1", "version = 2", "version", "Input should be 1"),
    ("clear_after_s = 0", 'clear_after_s = 0\nsites.flood-x = { danger = 30 }', "rules.0",
     "sites.flood-x: danger is not one of this rule's levels"),
    ("clear_after_s = 0", 'clear_after_s = 0\nsite_warning_level = "danger"', "rules.0",
     "site_warning_level: 'danger' is not one of this rule's levels"),
    ("[rules.cleared]", "[rules.cleaned]", "rules.0.cleared", "required"),
]


@pytest.mark.parametrize(("old", "new", "field", "says"), BAD_FILES,
                         ids=[f"{b[2]}: {b[3]}" for b in BAD_FILES])
def test_a_bad_rule_file_is_refused_naming_the_field(old: str, new: str, field: str, says: str,
                                                     tmp_path: Path) -> None:
    assert old in SMALL
    path = tmp_path / "rules.toml"
    path.write_text(SMALL.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    assert str(path) in str(caught.value)
    # Problems read "rules.toml:7: rules[0].direction"; compare the field path alone.
    plain = [re.sub(r"\[(\d+)\]", r".\1", p.field.split(": ")[-1]) for p in
             caught.value.problems]
    assert any(f == field and says in f"{caught.value.reason}: {p.message}"
               for f, p in zip(plain, caught.value.problems, strict=True)), caught.value.problems


def test_a_bad_rule_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(SMALL.replace('direction = "above"', 'direction = "sideways"', 1))
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if "sideways" in text)
    assert caught.value.problems[0].field == f"rules.toml:{line}: rules[0].direction"


@pytest.mark.parametrize(("levels", "says"), [
    ("watch:10,warning:8", "warning enter 8 must be above watch enter 10"),
    ("warning:20,watch:30", "must be listed mildest first"),
    ("watch:10,watch:20", "must be listed mildest first"),
])
def test_levels_must_rise_with_severity(levels: str, says: str) -> None:
    head, rest = SMALL.split("[[rules.levels]]")
    level, cleared = rest.split("[rules.cleared]")
    body = "".join("[[rules.levels]]" + level.replace('"warning"', f'"{name}"')
                   .replace("enter = 20", f"enter = {enter}")
                   for name, enter in (pair.split(":") for pair in levels.split(",")))
    with pytest.raises(RuleFileError, match=says):
        parse_rules(head + body + "[rules.cleared]" + cleared)


def test_a_missing_rule_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"cannot read rule file .*nowhere\.toml"):
        load_rules(tmp_path / "nowhere.toml")


def test_a_city_warning_level_that_breaks_the_rule_is_refused() -> None:
    data = CITY.model_dump()
    data["flood_sites"][0]["warning_cm"] = 5  # below the watch level of 10
    with pytest.raises(RuleFileError) as caught:
        load_rules().with_city(City.model_validate(data))
    assert "warning_cm" in str(caught.value)
    assert "sites.flood-nguyen-huu-canh: warning enter 5 must be above watch enter 10" in \
        str(caught.value)


def test_alert_queries_are_built_from_checked_values() -> None:
    since = T0 - alerts.ACTIVE_WINDOW_MS
    assert alerts.latest_events_query(T0, Domain.FLOOD) == (
        f'SELECT * FROM "alerts" WHERE time >= {since}ms AND "domain" = \'flood\' '
        'GROUP BY "alert_id" ORDER BY time DESC LIMIT 1')
    assert alerts.events_query(T0, T0 + MIN, alert_id="a_1", limit=5) == (
        f'SELECT * FROM "alerts" WHERE time >= {T0}ms AND time <= {T0 + MIN}ms AND '
        '"alert_id" = \'a_1\' ORDER BY time DESC LIMIT 5')
    with pytest.raises(InvalidId):
        alerts.events_query(T0, alert_id="x' OR '1'='1")
