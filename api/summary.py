"""The city summary: one figure set per domain from each device's last values (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from statistics import fmean

from api.models.city import (
    CitySummary,
    Extreme,
    FloodSummary,
    FloodWarning,
    HomeSummary,
    TrafficSummary,
    WeatherSummary,
)
from api.queries import DECIMALS, LastValues
from smartcity.city import FloodSite
from smartcity.models import format_ts
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain

WINDOW = "15m"
CONGESTED_BELOW_KMH = 15.0
DEFAULT_WARNING_CM = float(FloodSite.model_fields["warning_cm"].default)

# The metrics each domain's figures are built from; last_values_query asks for these.
FIGURES: dict[Domain, tuple[str, ...]] = {
    Domain.HOME: ("power_w", "temperature_c", "pm25_ugm3"),
    Domain.TRAFFIC: ("speed_kmh",),
    Domain.FLOOD: ("water_level_cm", "river_level_cm"),
    Domain.WEATHER: ("rain_mm_h", "temperature_c"),
}


class _Domain:
    """The registry's devices of one domain joined with their last values."""

    def __init__(self, domain: Domain, registry: Registry, last: LastValues) -> None:
        self.devices = registry.by_domain(domain)
        got = last.get(domain, {})
        self.values = {d.device_id: got[d.device_id] for d in self.devices if d.device_id in got}
        self.info = {d.device_id: d for d in self.devices}

    def counts(self) -> dict[str, int]:
        return {"devices_total": len(self.devices), "devices_reporting": len(self.values)}

    def metric(self, name: str) -> dict[str, float]:
        return {dev: v[name] for dev, v in self.values.items() if name in v}

    def mean(self, name: str) -> float | None:
        values = list(self.metric(name).values())
        return round(fmean(values), DECIMALS) if values else None

    def extreme(self, name: str, lowest: bool = False) -> Extreme | None:
        values = self.metric(name)
        if not values:
            return None
        # Ties go to the first device in registry order, so the answer is stable.
        pick = min if lowest else max
        device = pick(values, key=lambda d: values[d])
        return _extreme(self.info[device], values[device])


def _extreme(info: DeviceInfo, value: float) -> Extreme:
    return Extreme(device_id=info.device_id, site=info.site, name=info.name,
                   name_en=info.name_en, value=value)


def summarize(last: LastValues, registry: Registry, warning_levels: Mapping[str, float],
              now_ms: int, window: str = WINDOW) -> CitySummary:
    """``warning_levels`` maps flood device ids to their warning depth in cm; a site without
    one uses the city file's default."""
    home = _Domain(Domain.HOME, registry, last)
    power = home.metric("power_w")
    traffic = _Domain(Domain.TRAFFIC, registry, last)
    speeds = traffic.metric("speed_kmh")
    congested = sorted((d for d, v in speeds.items() if v < CONGESTED_BELOW_KMH),
                       key=lambda d: speeds[d])
    flood = _Domain(Domain.FLOOD, registry, last)
    levels = flood.metric("water_level_cm")
    warnings = []
    for device, level in levels.items():
        info, warning = flood.info[device], warning_levels.get(device, DEFAULT_WARNING_CM)
        if level >= warning:
            warnings.append(FloodWarning(device_id=device, site=info.site, name=info.name,
                                         name_en=info.name_en, water_level_cm=level,
                                         warning_cm=warning))
    warnings.sort(key=lambda w: -w.water_level_cm)
    weather = _Domain(Domain.WEATHER, registry, last)
    return CitySummary(
        generated_at=format_ts(now_ms),
        window=window,
        home=HomeSummary(**home.counts(),
                         total_power_w=round(sum(power.values()), DECIMALS) if power else None,
                         mean_temperature_c=home.mean("temperature_c"),
                         max_pm25_ugm3=home.extreme("pm25_ugm3")),
        traffic=TrafficSummary(**traffic.counts(),
                               mean_speed_kmh=traffic.mean("speed_kmh"),
                               slowest=traffic.extreme("speed_kmh", lowest=True),
                               congested_below_kmh=CONGESTED_BELOW_KMH,
                               congested=congested, congested_count=len(congested)),
        flood=FloodSummary(**flood.counts(),
                           max_water_level_cm=flood.extreme("water_level_cm"),
                           at_warning=warnings, at_warning_count=len(warnings)),
        weather=WeatherSummary(**weather.counts(),
                               max_rain_mm_h=weather.extreme("rain_mm_h"),
                               mean_temperature_c=weather.mean("temperature_c")),
    )
