"""Durations as people write them, in every setting, option and query parameter.

``90`` (seconds), ``"90"``, ``"1.5s"``, ``".5s"``, ``"250ms"``, ``"5m"``, ``"1h30m"``,
``"1h 30m"``, ``"2d"``, ``"1w"``: a number of seconds, or parts each a number and one of the
units ms, s, m, h, d, w. Always seconds back, finite and never negative; what a caller needs
beyond that (above zero, whole milliseconds) it checks itself.
"""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
EXAMPLES = "'90m', '1h30m', '45s' or '250ms'"


def parse_duration(value: object) -> float:
    """Seconds from a number or a duration text; ValueError saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration such as {EXAMPLES}, or seconds")
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m[1]) * UNIT_S[m[2]]
                pos = m.end()
            if not text or pos != len(text):
                raise ValueError(f"{value[:40]!r} is not a duration such as {EXAMPLES}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{str(value)[:40]!r} must be a finite, non-negative duration")
    return seconds
