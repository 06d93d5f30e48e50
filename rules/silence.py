"""Alerts whose sensor went silent. Pure: the wall clock is passed in.

An active alert keeps the value of the reading that last changed its level; the screens show
the sensor's newer readings beside it. When the sensor stops sending, nothing newer comes and
the alert would look current for ever, so after ``after_ms`` without a reading from its
device (wall-clock time, as received) the alert is published again with ``silent_since``:
the event time of the last reading heard. When the device speaks again, the alert is
published once more without it (unless the reading changed the alert anyway).
"""

from __future__ import annotations

from collections.abc import Iterable

from smartcity.alerts import Alert
from smartcity.models import format_ts


class Silence:
    def __init__(self, after_ms: int) -> None:
        self.after_ms = after_ms
        self._heard: dict[str, tuple[int, int]] = {}  # device -> (received wall ms, ts ms)
        self._silent: set[str] = set()  # alert ids published as silent

    def heard(self, device_id: str, wall_ms: int, ts_ms: int) -> None:
        self._heard[device_id] = (wall_ms, ts_ms)

    def check(self, active: Iterable[Alert], wall_ms: int) -> list[Alert]:
        """Active alerts whose device has been silent for ``after_ms`` and that were not
        yet published as such, as they are to be published now."""
        out = []
        for alert in active:
            heard = self._heard.get(alert.device_id)
            if alert.alert_id in self._silent or heard is None:
                continue
            received_ms, ts_ms = heard
            if wall_ms - received_ms >= self.after_ms:
                self._silent.add(alert.alert_id)
                out.append(alert.model_copy(update={"silent_since": format_ts(ts_ms)}))
        return out

    def resumed(self, active: Iterable[Alert], devices: set[str],
                changed: set[str]) -> list[Alert]:
        """Alerts published as silent whose device (in ``devices``) spoke again, unless the
        reading already produced an event for them (``changed``: alert ids)."""
        out = []
        for alert in active:
            if alert.alert_id in self._silent and alert.device_id in devices:
                self._silent.discard(alert.alert_id)
                if alert.alert_id not in changed:
                    out.append(alert.model_copy(update={"silent_since": None}))
        return out

    def forget(self, alert_ids: Iterable[str]) -> None:
        self._silent.difference_update(alert_ids)
