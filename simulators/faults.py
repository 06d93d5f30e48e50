"""Sensor faults engineers rehearse against, as transforms of one device's message stream.

Applied after the sensor has read the world, so the city's physics never notices them:

- ``dropout``: the message is lost (with ``probability``); the device's ``seq`` still counts
  it, so ingest sees the gap.
- ``stuck``: the metrics repeat the first reading of the fault's window (``ts`` and ``seq``
  move on, as a frozen sensor behind a live radio would).
- ``noise``: every metric jumps by a Gaussian of ``sd_pct`` percent of its value (at least of
  10 units), kept within the contract's ranges.
- ``battery_drain``: ``battery_pct`` appears and falls from ``from_pct`` at ``pct_per_h``; at
  0 the device goes silent until the window ends (a fresh battery).
- ``clock_skew``: ``ts`` is ``offset_s`` off.
- ``duplicate``: the same message (same ``seq``, same bytes) is sent twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from annotated_types import Ge, Le

from simulators.base import Metrics, clamp, encode, rng_for
from simulators.scenarios import (
    BatteryDrain,
    ClockSkew,
    Dropout,
    Duplicate,
    Fault,
    Noise,
    Stuck,
)
from smartcity.models import Telemetry, format_ts

_bounds_cache: dict[type[Telemetry], dict[str, tuple[float, float]]] = {}


def bounds(model: type[Telemetry]) -> dict[str, tuple[float, float]]:
    """Each metric's contract range, from the model's own field constraints."""
    if model not in _bounds_cache:
        out = {}
        for name in model.metric_names():
            lo, hi = -1e9, 1e9
            for m in model.model_fields[name].metadata:
                if isinstance(m, Ge):
                    lo = float(m.ge)  # type: ignore[arg-type]
                elif isinstance(m, Le):
                    hi = float(m.le)  # type: ignore[arg-type]
            out[name] = (lo, hi)
        _bounds_cache[model] = out
    return _bounds_cache[model]


class Faults:
    """The faults of one running scenario, from its simulated start."""

    def __init__(self, faults: Sequence[Fault], start_ms: int, seed: int,
                 original: Callable[[str], str]) -> None:
        self._start_ms = start_ms
        self._seed = seed
        self._original = original
        self._by_device: dict[str, list[tuple[int, Fault]]] = {}
        for i, f in enumerate(faults):
            for d in f.devices:
                self._by_device.setdefault(d, []).append((i, f))
        self._stuck: dict[tuple[int, str], Metrics] = {}
        self._rngs: dict[str, random.Random] = {}

    def affects(self, device_id: str) -> bool:
        return self._original(device_id) in self._by_device

    def apply(self, device_id: str, model: type[Telemetry], ts: str, seq: int,
              metrics: Metrics, now_ms: int, stamp_ms: int | None = None) -> list[bytes]:
        """The payloads the device sends for this reading (none, one or two)."""
        rel_s = (now_ms - self._start_ms) / 1000
        active = [(i, f) for i, f in self._by_device.get(self._original(device_id), ())
                  if f.at <= rel_s < f.end_s]
        if not active:
            return [encode(ts, seq, metrics)]
        rng = self._rngs.get(device_id)
        if rng is None:
            rng = self._rngs[device_id] = rng_for(self._seed, f"faults:{device_id}")
        stamp = now_ms if stamp_ms is None else stamp_ms  # the exhibit clock's wall time
        ts_ms, copies = stamp, 1
        for i, f in active:
            if isinstance(f, Stuck):
                metrics = dict(self._stuck.setdefault((i, device_id), metrics))
            elif isinstance(f, Noise):
                limits = bounds(model)
                metrics = {k: round(clamp(v + rng.gauss(0, f.sd_pct / 100 * max(abs(v), 10.0)),
                                          *limits[k]), 1)
                           for k, v in metrics.items()}
            elif isinstance(f, BatteryDrain):
                left = f.from_pct - f.pct_per_h * (rel_s - f.at) / 3600
                if left <= 0:
                    return []
                metrics = {"battery_pct": round(left, 1), **metrics}
            elif isinstance(f, ClockSkew):
                ts_ms = stamp + round(f.offset_s * 1000)
            elif isinstance(f, Dropout):
                if rng.random() < f.probability:
                    return []
            elif isinstance(f, Duplicate) and rng.random() < f.probability:
                copies = 2
        # Off the hot path, so checked against the contract like any device's payload.
        model.model_validate({"ts": ts_ms, "seq": seq, **metrics})
        return [encode(format_ts(ts_ms), seq, metrics)] * copies
