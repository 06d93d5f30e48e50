"""The metric catalogue: every metric a device may send, once.

Each metric's name carries its unit (``water_level_cm``); here it also gets the unit as people
read it, its Vietnamese and English label, its plausible range (the payload models refuse
values outside it), an example value and the SenML names and units it may arrive in. The
payload models, the codec, the api (``GET /api/v1/metrics``, which the board reads its labels
from) and the Grafana boards are derived from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Senml(NamedTuple):
    unit: str | None  # the metric's own unit in SenML; None if the registry has none
    names: tuple[str, ...]  # plain SenML names meaning this metric (lower case)
    units: dict[str, float]  # SenML units a plain name may come in, and their factor to ours


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # as people read it, in English
    label_vi: str
    label_en: str
    low: float
    high: float
    example: float  # a plausible value, for the payloads shown to exhibitors
    senml: Senml
    unit_vi: str = field(default="")  # where Vietnamese writes the unit differently

    def unit_in(self, lang: str) -> str:
        return (self.unit_vi or self.unit) if lang == "vi" else self.unit


_CM = {"cm": 1.0, "m": 100.0, "mm": 0.1}

CATALOGUE: dict[str, Metric] = {m.name: m for m in (
    Metric("power_w", "W", "Điện", "Power", 0, 100_000, 850,
           Senml("W", ("power",), {"W": 1, "kW": 1000})),
    Metric("temperature_c", "°C", "Nhiệt độ", "Temperature", -20, 70, 29.5,
           Senml("Cel", ("temperature", "temp"), {"Cel": 1})),
    Metric("humidity_pct", "%", "Độ ẩm", "Humidity", 0, 100, 72,
           Senml("%RH", ("humidity",), {"%RH": 1})),
    Metric("pm25_ugm3", "µg/m³", "PM2.5", "PM2.5", 0, 2000, 24,
           Senml("ug/m3", ("pm25", "pm2.5", "pm2_5"), {"ug/m3": 1})),
    Metric("co2_ppm", "ppm", "CO₂", "CO₂", 0, 20_000, 620, Senml("ppm", ("co2",), {"ppm": 1})),
    Metric("speed_kmh", "km/h", "Tốc độ", "Speed", 0, 200, 31,
           Senml("km/h", ("speed",), {"km/h": 1, "m/s": 3.6})),
    Metric("occupancy_pct", "%", "Chiếm dụng", "Occupancy", 0, 100, 38,
           Senml("%", ("occupancy",), {"%": 1, "/": 100})),
    Metric("flow_veh_h", "veh/h", "Lưu lượng", "Flow", 0, 50_000, 1400,
           Senml(None, ("flow",), {"1/min": 60, "1/s": 3600}), unit_vi="xe/h"),
    Metric("water_level_cm", "cm", "Mực nước", "Water level", -100, 1000, 12.5,
           Senml("cm", ("water_level", "water_depth"), _CM)),
    Metric("river_level_cm", "cm", "Mực nước sông", "River level", -1000, 1000, 135,
           Senml("cm", ("river_level",), _CM)),
    Metric("rain_mm_h", "mm/h", "Lượng mưa", "Rain", 0, 500, 8,
           Senml("mm/h", ("rain", "rainfall"), {"mm/h": 1, "m/h": 1000})),
    Metric("wind_kmh", "km/h", "Gió", "Wind", 0, 300, 14,
           Senml("km/h", ("wind", "wind_speed"), {"km/h": 1, "m/s": 3.6})),
    Metric("battery_pct", "%", "Pin", "Battery", 0, 100, 92,
           Senml("%EL", ("battery",), {"%EL": 1})),
)}


def metric(name: str) -> Metric:
    """The catalogue's entry; KeyError naming the metric if it has none."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the metric catalogue") from None
