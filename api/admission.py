"""How many exhibitor devices the exhibit takes, and how fast: pure, with the clock passed in.

A registration costs a broker account (the dynamic security plugin saves its whole file on
every change) and a retained profile every service holds in memory, so both the total and the
rate are capped: past ``max_devices`` a registration is refused with 409 (remove a device
first), past the rate with 429 and how long to wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fastapi import HTTPException


@dataclass
class Admission:
    max_devices: int
    per_minute: float
    _tokens: float = field(default=-1.0)
    _last: float = 0.0

    def admit(self, registered: int, now: float) -> None:
        """Take one registration, or raise the HTTPException that refuses it."""
        if registered >= self.max_devices:
            raise HTTPException(409, f"the exhibit holds its maximum of {self.max_devices} "
                                     "exhibitor devices (SMARTCITY_API_MAX_DEVICES); remove "
                                     "one first")
        burst = max(1.0, self.per_minute)
        if self._tokens < 0:
            self._tokens, self._last = burst, now
        self._tokens = min(burst, self._tokens + (now - self._last) * self.per_minute / 60)
        self._last = now
        if self._tokens < 1:
            wait = math.ceil((1 - self._tokens) * 60 / self.per_minute)
            raise HTTPException(429, f"too many registrations: at most {self.per_minute:g} a "
                                     f"minute (SMARTCITY_API_REGISTRATIONS_PER_MINUTE); try "
                                     f"again in {wait}s", headers={"Retry-After": str(wait)})
        self._tokens -= 1
