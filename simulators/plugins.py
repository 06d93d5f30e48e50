"""The registry of simulated device kinds.

A new kind adds a module with a ``PLUGIN`` (see :class:`simulators.base.Plugin`) and a line
here; the simulation picks it up from this table. The order is the city file's section
order, so devices publish in registry order.
"""

from __future__ import annotations

from typing import Any

from simulators import flood, home, tide, traffic, weather
from simulators.base import Plugin

PLUGINS: tuple[Plugin[Any], ...] = (home.PLUGIN, traffic.PLUGIN, flood.PLUGIN, weather.PLUGIN,
                                    tide.PLUGIN)
