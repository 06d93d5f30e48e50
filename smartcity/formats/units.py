"""Units a device may send a metric in, and the linear conversion to the metric's own unit.

Every conversion here is ``value * scale + offset`` (°F to °C included), so a custom mapping's
own scale and offset compose with it. Unit spellings are those devices and their firmware
use: the SenML registry (``Cel``, ``%RH``), symbols (``°C``, ``µg/m³``) and plain letters
(``C``, ``F`` as Tasmota's ``TempUnit`` says).
"""

from __future__ import annotations

from typing import NamedTuple


class Linear(NamedTuple):
    scale: float
    offset: float = 0.0

    def __call__(self, value: float) -> float:
        return value * self.scale + self.offset

    def then(self, scale: float, offset: float) -> Linear:
        """This conversion followed by ``x * scale + offset``."""
        return Linear(self.scale * scale, self.offset * scale + offset)


_CELSIUS = ("°C", "C", "Cel", "degC", "celsius")
_FAHRENHEIT = Linear(5 / 9, -160 / 9)
_LENGTH_CM = {"cm": 1, "m": 100, "mm": 0.1, "in": 2.54, "ft": 30.48}
_SPEED_KMH = {"km/h": 1, "kmh": 1, "m/s": 3.6, "mph": 1.609344, "kn": 1.852, "kt": 1.852}

# metric -> {unit spelling: conversion to the metric's unit}; the first entry is the unit
# the metric is named for, as the metric catalogue (smartcity.metrics) writes it.
UNITS: dict[str, dict[str, Linear]] = {
    "temperature_c": {**{u: Linear(1) for u in _CELSIUS},
                      **{u: _FAHRENHEIT for u in ("°F", "F", "degF", "fahrenheit")},
                      "K": Linear(1, -273.15)},
    "humidity_pct": {u: Linear(1) for u in ("%", "%RH", "RH")},
    "power_w": {"W": Linear(1), "kW": Linear(1000)},
    "pm25_ugm3": {u: Linear(1) for u in ("µg/m³", "ug/m3", "µg/m3", "ug/m³")},
    "co2_ppm": {"ppm": Linear(1)},
    "speed_kmh": {u: Linear(f) for u, f in _SPEED_KMH.items()},
    "wind_kmh": {u: Linear(f) for u, f in _SPEED_KMH.items()},
    "occupancy_pct": {"%": Linear(1), "/": Linear(100)},
    "flow_veh_h": {"veh/h": Linear(1), "1/h": Linear(1), "1/min": Linear(60),
                   "1/s": Linear(3600)},
    "water_level_cm": {u: Linear(f) for u, f in _LENGTH_CM.items()},
    "river_level_cm": {u: Linear(f) for u, f in _LENGTH_CM.items()},
    "rain_mm_h": {"mm/h": Linear(1), "in/h": Linear(25.4)},
    "battery_pct": {u: Linear(1) for u in ("%", "%EL")},
}


def conversion(metric: str, unit: str | None) -> Linear | None:
    """The conversion from ``unit`` to the metric's own; None if the metric never comes in
    that unit. No unit means the metric's own."""
    if unit is None:
        return Linear(1)
    return UNITS[metric].get(unit)


def units_of(metric: str) -> list[str]:
    return list(UNITS[metric])
