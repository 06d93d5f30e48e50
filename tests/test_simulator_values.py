"""The simulated city's readings, without a broker: reproducible, on contract, plausible."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime

import pytest

from simulators.base import HCMC_TZ, local_hour
from simulators.runner import SEEDED_START_MS
from simulators.simulation import Simulation, readings
from smartcity.city import City, Home, load_city
from smartcity.codec import Reading, decode
from smartcity.models import Source
from smartcity.topics import Domain

TEN_MINUTES = 600
DAY = 144  # ten-minute steps


def local_midnight(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=HCMC_TZ).timestamp() * 1000)


RAINY_SEASON_DAY = local_midnight(2025, 7, 14)


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


@pytest.fixture(scope="module")
def one_day(city: City) -> list[Reading]:
    """Every reading of the default city over one rainy-season day, at ten-minute steps."""
    return [decode(str(m.topic), m.payload)
            for m in readings(city, 42, RAINY_SEASON_DAY, TEN_MINUTES, DAY)]


def values(readings_: list[Reading], metric: str, hours: tuple[float, float]) -> list[float]:
    return [r.metrics[metric] for r in readings_ if metric in r.metrics
            and hours[0] <= local_hour(r.ts_ms) < hours[1]]


def test_the_same_seed_city_and_start_give_byte_identical_messages(city: City) -> None:
    first = list(readings(city, 7, SEEDED_START_MS, 2.0, 50))
    again = list(readings(city, 7, SEEDED_START_MS, 2.0, 50))
    other_seed = list(readings(city, 8, SEEDED_START_MS, 2.0, 50))

    assert first == again
    assert [m.topic for m in other_seed] == [m.topic for m in first]
    assert [m.payload for m in other_seed] != [m.payload for m in first]


def test_every_reading_of_every_device_follows_the_contract(city: City,
                                                            one_day: list[Reading]) -> None:
    by_device: dict[str, list[int]] = defaultdict(list)
    for r in one_day:
        by_device[r.device_id].append(r.seq)
        assert r.source is Source.SIMULATED

    assert set(by_device) == {d.device_id for d in city.registry()}
    for seqs in by_device.values():
        assert seqs == list(range(DAY))


def test_messages_go_to_each_devices_telemetry_topic_under_the_root(city: City) -> None:
    messages = list(readings(city, 1, SEEDED_START_MS, 2.0, 1, root="exhibit/city"))

    assert [str(m.topic) for m in messages] == [
        f"exhibit/city/{d.domain}/{d.device_id}/telemetry" for d in city.registry()]
    for m in messages:
        assert decode(str(m.topic), m.payload, root="exhibit/city").device_id == m.device_id


def test_motorbike_rush_hours_slow_the_traffic_down(one_day: list[Reading]) -> None:
    night, morning, evening = (3, 4), (7, 9), (16.5, 19)

    for rush in (morning, evening):
        assert statistics.mean(values(one_day, "speed_kmh", rush)) < \
            0.7 * statistics.mean(values(one_day, "speed_kmh", night))
        assert statistics.mean(values(one_day, "occupancy_pct", rush)) > \
            3 * statistics.mean(values(one_day, "occupancy_pct", night))
        assert statistics.mean(values(one_day, "flow_veh_h", rush)) > \
            3 * statistics.mean(values(one_day, "flow_veh_h", night))


def test_homes_draw_most_power_in_the_hot_afternoon(one_day: list[Reading]) -> None:
    afternoon = statistics.mean(values(one_day, "power_w", (13, 17)))
    small_hours = statistics.mean(values(one_day, "power_w", (2, 5)))

    assert afternoon > 2 * small_hours


def test_the_air_is_tropical_and_warmest_after_noon(one_day: list[Reading]) -> None:
    weather = [r for r in one_day if r.domain is Domain.WEATHER]
    temperatures = [r.metrics["temperature_c"] for r in weather]

    assert min(temperatures) >= 22 and max(temperatures) <= 36
    assert statistics.mean(values(weather, "temperature_c", (12, 16))) > \
        statistics.mean(values(weather, "temperature_c", (3, 6))) + 4


def test_street_water_follows_the_rain(city: City) -> None:
    rain_mm_by_day: dict[int, float] = defaultdict(float)  # the day's total at the gauge
    water_by_day: dict[int, float] = defaultdict(float)  # the deepest at any flood site
    for m in readings(city, 7, RAINY_SEASON_DAY, TEN_MINUTES, 14 * DAY):
        r = decode(str(m.topic), m.payload)
        day = (r.ts_ms - RAINY_SEASON_DAY) // 86_400_000
        if "rain_mm_h" in r.metrics:
            rain_mm_by_day[day] += r.metrics["rain_mm_h"] * TEN_MINUTES / 3600
        if "water_level_cm" in r.metrics:
            water_by_day[day] = max(water_by_day[day], r.metrics["water_level_cm"])

    dry_days = [d for d in range(14) if rain_mm_by_day[d] == 0]
    wettest = max(range(14), key=lambda d: rain_mm_by_day[d])
    assert dry_days, "a fortnight of the rainy season has dry days too"
    # July's tides stay below the streets: without rain they are dry.
    assert all(water_by_day[d] < 1 for d in dry_days)
    assert rain_mm_by_day[wettest] > 20 and water_by_day[wettest] > 3


def test_readings_carry_their_simulated_time_as_ts(city: City) -> None:
    # ts is the simulated time, whatever the wall clock: that is what makes a run replayable.
    messages = list(readings(city, 3, SEEDED_START_MS, 2.5, 3))

    stamps = sorted({decode(str(m.topic), m.payload).ts_ms for m in messages})
    assert stamps == [SEEDED_START_MS, SEEDED_START_MS + 2500, SEEDED_START_MS + 5000]


def test_one_long_step_and_many_short_ones_tell_the_same_story(city: City) -> None:
    coarse, fine = Simulation(city, 4), Simulation(city, 4)
    coarse.step(SEEDED_START_MS)
    fine.step(SEEDED_START_MS)
    coarse.step(SEEDED_START_MS + 3 * 3_600_000)
    for k in range(1, 3 * 360 + 1):
        fine.step(SEEDED_START_MS + k * 10_000)
    a, b = coarse.last_state, fine.last_state
    assert a is not None and b is not None

    assert a.river_cm == pytest.approx(b.river_cm)  # the tide is a function of time
    for road in a.roads:  # 06:00 to 09:00: the morning rush on every road, either way
        assert a.roads[road].speed_kmh == pytest.approx(b.roads[road].speed_kmh, rel=0.35)


def test_adding_a_device_leaves_the_other_devices_readings_unchanged(city: City) -> None:
    newcomer = Home(id="home-new", name="Nhà mới", ward="sai-gon", lat=10.77, lon=106.70)
    bigger = city.model_copy(update={"homes": [*city.homes, newcomer]})

    before = list(readings(city, 5, SEEDED_START_MS, 60, 30))
    after = [m for m in readings(bigger, 5, SEEDED_START_MS, 60, 30) if m.device_id != "home-new"]

    assert after == before


def test_simulated_time_cannot_go_backwards(city: City) -> None:
    simulation = Simulation(city, 1)
    simulation.step(SEEDED_START_MS)

    with pytest.raises(ValueError, match="backwards"):
        simulation.step(SEEDED_START_MS - 1)

