"""The registry of simulator plugins, one per domain.

A new domain adds a module with a ``PLUGIN`` (see :class:`simulators.base.Plugin`) and a line
here; the simulation and the runner pick it up from this table.
"""

from __future__ import annotations

from typing import Any

from simulators import flood, home, traffic, weather
from simulators.base import Plugin
from smartcity.topics import Domain

PLUGINS: dict[Domain, Plugin[Any]] = {
    p.domain: p for p in (home.PLUGIN, traffic.PLUGIN, flood.PLUGIN, weather.PLUGIN)
}
