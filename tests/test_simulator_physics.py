"""The coupled physics as properties of what the devices report, without a broker: each
scenario against the same city, seed and start without it (or without one of its events)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from functools import cache

import pytest

from simulators.clock import parse_start
from simulators.scenarios import Accident, Scenario, load_scenario
from simulators.simulation import readings
from smartcity.city import FloodSite, load_city
from smartcity.codec import decode

MINUTE = 60
CITY = load_city()
# In HCMC's flood-tide season; the scenarios start at 10:00 local time.
OCTOBER_MORNING = parse_start("2025-10-20T10:00")
JULY_MIDNIGHT = parse_start("2025-07-14T00:00")

Series = dict[str, list[tuple[float, dict[str, float]]]]  # device -> (hours in, metrics)


def run(scenario: Scenario | None, start_ms: int = OCTOBER_MORNING, hours: float = 14,
        seed: int = 11) -> Series:
    """Every reading of the city at one-minute steps (cached: tests share their runs)."""
    return _run(scenario.model_dump_json() if scenario else None, start_ms, hours, seed)


@cache
def _run(scenario_json: str | None, start_ms: int, hours: float, seed: int) -> Series:
    scenario = Scenario.model_validate_json(scenario_json) if scenario_json else None
    out: Series = defaultdict(list)
    for m in readings(CITY, seed, start_ms, MINUTE, int(hours * 60), scenario=scenario):
        r = decode(str(m.topic), m.payload)
        out[r.device_id].append(((r.ts_ms - start_ms) / 3_600_000, r.metrics))
    return out


def values(series: Series, device: str, metric: str, hours: tuple[float, float]) -> list[float]:
    return [m[metric] for h, m in series[device] if hours[0] <= h < hours[1] and metric in m]


def mean(series: Series, device: str, metric: str, hours: tuple[float, float]) -> float:
    return statistics.fmean(values(series, device, metric, hours))


STORM = load_scenario("king-tide-storm", CITY)
# The storm's baseline: the same day without its events (and, like it, without showers).
CALM = STORM.model_copy(update={"events": []})
FLOOD_SITES = list(CITY.flood_sites)


def test_the_king_tide_peaks_at_phu_an_as_the_scenario_says() -> None:
    storm, calm = run(STORM), run(CALM)
    river = values(storm, "tide-phu-an", "river_level_cm", (0, 14))
    usual = values(calm, "tide-phu-an", "river_level_cm", (0, 14))

    assert 170 <= max(river) <= 186  # the 178 cm high water at +6 h, with waves
    assert max(usual) < 150  # an ordinary October day stays below alarm level 1
    at_peak = max(storm["tide-phu-an"], key=lambda p: p[1]["river_level_cm"])[0]
    assert 5.5 <= at_peak <= 6.5


@pytest.mark.parametrize("site", FLOOD_SITES, ids=lambda s: s.id)
def test_during_the_storm_low_sites_flood_past_their_warning_then_drain(site: FloodSite) -> None:
    storm = run(STORM)
    before = values(storm, site.device_id, "water_level_cm", (0, 4.5))
    during = values(storm, site.device_id, "water_level_cm", (5, 9))
    after = values(storm, site.device_id, "water_level_cm", (13, 14))

    assert max(before) < 2
    assert max(during) > site.warning_cm
    assert max(after) < site.warning_cm / 2


def only(scenario: Scenario, kind: str) -> Scenario:
    return scenario.model_copy(update={"events": [e for e in scenario.events if e.kind == kind]})


def test_the_same_storm_floods_deeper_and_longer_when_it_meets_the_king_tide() -> None:
    # The drains empty into the river: while it stands above the streets they cannot.
    storm, rain_only = run(STORM), run(only(STORM, "rain"))
    for site in FLOOD_SITES:
        assert max(values(storm, site.device_id, "water_level_cm", (5, 9))) > \
            1.15 * max(values(rain_only, site.device_id, "water_level_cm", (5, 9)))
        assert mean(storm, site.device_id, "water_level_cm", (8, 10)) > \
            1.5 * mean(rain_only, site.device_id, "water_level_cm", (8, 10))


def test_a_king_tide_alone_comes_over_the_lowest_banks() -> None:
    tide = run(only(STORM, "tide"))
    thao_dien = next(s for s in FLOOD_SITES if s.id == "flood-thao-dien")  # the lowest
    assert max(values(tide, "flood-thao-dien", "water_level_cm", (5, 8))) > thao_dien.warning_cm
    assert max(values(tide, "flood-thao-dien", "water_level_cm", (12, 14))) < 1


def test_flooded_segments_and_their_neighbours_slow_down() -> None:
    storm, calm = run(STORM), run(CALM)
    flooded = ("nguyen-huu-canh", "huynh-tan-phat")  # the flood sites' own roads
    neighbours = ("ton-duc-thang", "dien-bien-phu-hang-xanh", "saigon-bridge", "khanh-hoi-bridge")
    window = (6.5, 8.5)

    for road in flooded:
        assert mean(storm, road, "speed_kmh", window) < 0.2 * mean(calm, road, "speed_kmh", window)
    for road in neighbours:
        assert mean(storm, road, "speed_kmh", window) < 0.6 * mean(calm, road, "speed_kmh", window)
    # Far from the water and off the flooded roads' queues, later: back to normal.
    assert mean(storm, "mai-chi-tho", "speed_kmh", (13, 14)) > \
        0.8 * mean(calm, "mai-chi-tho", "speed_kmh", (13, 14))


def test_homes_in_flooded_wards_pump_and_grow_damp() -> None:
    # The tide alone: no rain to cool the air, so the pump is all that changes the power.
    tide, calm = run(only(STORM, "tide")), run(CALM)
    home, window = "home-thao-dien", (5.5, 7)  # An Khánh, where Thảo Điền floods

    assert mean(tide, home, "humidity_pct", window) > mean(calm, home, "humidity_pct", window) + 6
    assert 600 < mean(tide, home, "power_w", window) - mean(calm, home, "power_w", window) < 900
    dry = "home-le-thanh-ton"  # Phường Sài Gòn has no flood site
    assert mean(tide, dry, "power_w", window) == mean(calm, dry, "power_w", window)


def test_a_power_cut_leaves_homes_of_the_ward_at_almost_nothing() -> None:
    storm = run(STORM)  # Thạnh Mỹ Tây loses power from +6h30 for 90 minutes

    assert max(values(storm, "home-nguyen-huu-canh", "power_w", (6.6, 7.9))) < 20
    assert min(values(storm, "home-nguyen-huu-canh", "power_w", (8.5, 9.5))) > 100
    assert min(values(storm, "home-le-thanh-ton", "power_w", (6.6, 7.9))) > 100  # another ward


def test_rush_hour_counts_exceed_night_counts() -> None:
    day = run(load_scenario("normal-day", CITY), JULY_MIDNIGHT, hours=24)
    for road in (r.id for r in CITY.roads):
        night = mean(day, road, "flow_veh_h", (1, 4))
        for rush in ((7, 9), (16.5, 19)):
            assert mean(day, road, "flow_veh_h", rush) > 3 * night
            assert mean(day, road, "occupancy_pct", rush) > 3 * mean(day, road, "occupancy_pct",
                                                                       (1, 4))


def test_an_accident_lowers_speed_on_its_segment_and_upstream() -> None:
    rush = load_scenario("rush-hour", CITY)
    no_crash = rush.model_copy(update={"events": [e for e in rush.events
                                                  if not isinstance(e, Accident)]})
    start = parse_start("2025-07-15T14:00")
    crash, plain = run(rush, start, hours=4), run(no_crash, start, hours=4)
    window = (1.4, 1.8)  # the crash at Hàng Xanh from +1h, for 50 minutes

    assert mean(crash, "dien-bien-phu-hang-xanh", "speed_kmh", window) < \
        0.5 * mean(plain, "dien-bien-phu-hang-xanh", "speed_kmh", window)
    for upstream in ("nguyen-huu-canh", "saigon-bridge"):  # its connected segments
        assert mean(crash, upstream, "speed_kmh", window) < \
            0.85 * mean(plain, upstream, "speed_kmh", window)
    # Before the crash both runs are the same stream.
    assert values(crash, "saigon-bridge", "speed_kmh", (0, 1)) == \
        values(plain, "saigon-bridge", "speed_kmh", (0, 1))


def test_rush_hour_demand_jams_the_city_whatever_the_clock_says() -> None:
    start = parse_start("2025-07-15T02:00")  # the small hours
    rush, calm = run(load_scenario("rush-hour", CITY), start, hours=3), run(None, start, hours=3)
    for road in (r.id for r in CITY.roads):
        assert mean(rush, road, "flow_veh_h", (0.5, 0.7)) > 3 * mean(calm, road, "flow_veh_h",
                                                                       (0.5, 0.7))


def test_a_closed_road_carries_nothing_and_the_roads_into_it_back_up() -> None:
    closure = Scenario.model_validate({"name": "closed", "description": "x", "events": [
        {"kind": "closure", "road": "khanh-hoi-bridge", "at": "30m", "duration": "2h"}]})
    start = parse_start("2025-07-15T10:00")
    closed, open_ = run(closure, start, hours=3), run(None, start, hours=3)

    assert set(values(closed, "khanh-hoi-bridge", "flow_veh_h", (0.6, 2.4))) == {0.0}
    for neighbour in ("huynh-tan-phat", "ton-duc-thang"):
        assert mean(closed, neighbour, "speed_kmh", (1.5, 2.4)) < \
            0.8 * mean(open_, neighbour, "speed_kmh", (1.5, 2.4))


def test_a_heatwave_runs_the_air_conditioning_harder() -> None:
    heat = load_scenario("heatwave", CITY)
    start = parse_start("2025-04-20T00:00")
    hot, usual = run(heat, start, hours=24), run(None, start, hours=24)

    assert mean(hot, "rain-sai-gon", "temperature_c", (12, 16)) > \
        mean(usual, "rain-sai-gon", "temperature_c", (12, 16)) + 3.5
    for home in (h.id for h in CITY.homes):
        assert mean(hot, home, "power_w", (0, 24)) > 1.15 * mean(usual, home, "power_w", (0, 24))
