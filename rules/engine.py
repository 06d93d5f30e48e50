"""The rules engine: readings in, alert events out. Pure: no I/O and no clock.

Time is the readings' own ``ts`` (event time), so a replayed storm, a backlog delivered after
an outage and a live stream are judged alike, and tests pass minutes in microseconds.

One state machine per (rule, device, source): a replay of a device's history never mixes its
timeline with the same device's live one. Per level it keeps at most one running timer:

- a *gain* timer for each level above the active one: starts at the first reading that
  reaches the level's ``enter``, is broken by a reading back past its ``exit``; the level is
  gained by a reading that reaches ``enter`` once the timer has run ``raise_after``;
- a *loss* timer for the active level and those below it: starts at the first reading past
  the level's ``exit``, is broken by a reading that reaches ``enter`` again; the level is lost
  by a reading past ``exit`` once the timer has run ``clear_after``.

Readings inside the hysteresis band keep whatever timer runs and start none, so a value that
jitters around a threshold raises one alert and a short dip raises none. Gaining the highest
gainable level raises (no alert yet) or escalates; losing a level drops every level above it
too, and the alert settles at the highest lower level the value still holds, or clears.
A reading not newer than the last one judged for its machine is skipped (a redelivery after a
crash, or a device clock going backwards), which makes re-evaluation harmless; a device silent
for longer than ``max_gap`` restarts its timers, so two readings an hour apart are not an hour
of congestion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rules.wording import WardNames, render
from smartcity.alerts import Alert, AlertState, alert_id
from smartcity.codec import Reading
from smartcity.models import Source, format_ts
from smartcity.profiles import Profile, apply_profile
from smartcity.registry import DeviceInfo, Registry
from smartcity.rulefile import Rule, RuleSet, Threshold
from smartcity.topics import Domain

STATE_VERSION = 1


@dataclass
class Track:
    """The state machine of one (rule, device, source)."""

    level: int = -1  # index into the rule's thresholds of the active alert's level; -1: none
    alert: Alert | None = None  # the active episode's last event
    last_ts: int | None = None
    gain: dict[int, int] = field(default_factory=dict)  # level index -> timer start (ms)
    loss: dict[int, int] = field(default_factory=dict)


def step(track: Track, levels: tuple[Threshold, ...], sign: int, max_gap_ms: int,
         value: float, ts: int, scale: float = 1.0) -> int:
    """Advance ``track`` by one reading; return the new level index (-1: no alert). The
    caller has already checked that ``ts`` is newer than ``track.last_ts``. ``scale``: how
    many seconds of the story a second of ``ts`` is (a story played compressed on the
    exhibit clock), so "for two minutes" means two minutes of the story."""
    if track.last_ts is not None and (ts - track.last_ts) * scale > max_gap_ms:
        track.gain.clear()
        track.loss.clear()
    track.last_ts = ts
    v = sign * value

    def reaches(k: int) -> bool:
        return v >= sign * levels[k].enter

    def holds(k: int) -> bool:
        return v >= sign * levels[k].exit

    current = track.level
    for k in range(current + 1, len(levels)):
        if reaches(k):
            track.gain.setdefault(k, ts)
        elif not holds(k):
            track.gain.pop(k, None)
    for k in range(current + 1):
        if not holds(k):
            track.loss.setdefault(k, ts)
        elif reaches(k):
            track.loss.pop(k, None)

    gained = [k for k, since in track.gain.items()
              if reaches(k) and (ts - since) * scale >= levels[k].raise_after_ms]
    lost = [k for k, since in track.loss.items()
            if not holds(k) and (ts - since) * scale >= levels[k].clear_after_ms]
    if gained:
        new = max(gained)
    elif lost:
        # The active level has been calm for its full clear_after: settle where the value
        # stands now rather than walking down one timer at a time, which would leave a
        # "warning" on screen over a street that has long been dry.
        new = max((k for k in range(min(lost)) if holds(k)), default=-1)
    else:
        new = current
    if new > current:
        track.gain = {k: s for k, s in track.gain.items() if k > new}
        track.loss.clear()
    elif new < current:
        track.loss = {k: s for k, s in track.loss.items() if k <= new}
    track.level = new
    return new


@dataclass
class Counters:
    readings: int = 0
    ignored: int = 0  # unknown device, or a domain other than the registered one
    late: int = 0  # not newer than the last reading judged for the same machine
    events: int = 0


class Engine:
    def __init__(self, rules: RuleSet, registry: Registry, wards: WardNames | None = None
                 ) -> None:
        self.registry = registry
        self.wards = wards or {}
        self.rules = {r.id: r for r in rules.enabled()}
        self._by_domain: dict[Domain, list[Rule]] = defaultdict(list)
        for rule in self.rules.values():
            self._by_domain[rule.domain].append(rule)
        self._tracks: dict[tuple[str, str, Source], Track] = {}
        self.counters = Counters()
        # Simulated readings on the exhibit clock carry the wall-clock time while the story
        # plays this many times as fast (the simulator's state says so).
        self.story_speed = 1.0
        # Per-site thresholds are checked up front, so a bad site override fails at start-up.
        for device in registry:
            for rule in self._by_domain.get(device.domain, ()):
                rule.thresholds(device.site)

    def evaluate(self, reading: Reading) -> list[Alert]:
        """The alert events this reading causes, in order (usually none)."""
        self.counters.readings += 1
        device = self.registry.get(reading.device_id)
        if device is None or device.domain is not reading.domain:
            self.counters.ignored += 1
            return []
        events: list[Alert] = []
        for rule in self._by_domain.get(reading.domain, ()):
            value = reading.metrics.get(rule.metric)
            if value is None:
                continue
            key = (rule.id, reading.device_id, reading.source)
            track = self._tracks.get(key)
            if track is None:
                track = self._tracks[key] = Track()
            elif track.last_ts is not None and reading.ts_ms <= track.last_ts:
                self.counters.late += 1
                continue
            levels = rule.thresholds(device.site)
            before = track.level
            scale = self.story_speed if reading.source is Source.SIMULATED else 1.0
            after = step(track, levels, rule.sign, round(rule.max_gap_s * 1000), value,
                         reading.ts_ms, scale)
            if after != before:
                events.append(self._event(rule, levels, device, reading, track, before))
        self.counters.events += len(events)
        return events

    def _event(self, rule: Rule, levels: tuple[Threshold, ...], device: DeviceInfo,
               reading: Reading, track: Track, before: int) -> Alert:
        ts, value = reading.ts_ms, float(reading.metrics[rule.metric])
        if track.level < 0:
            shown, texts, threshold = levels[before], rule.cleared, levels[0].exit
            state = AlertState.CLEARED
        else:
            shown, texts = levels[track.level], levels[track.level].texts
            threshold = shown.enter
            state = AlertState.RAISED if before < 0 else AlertState.UPDATED
        raised_ms = ts if track.alert is None else track.alert.raised_ms
        event = Alert(
            alert_id=track.alert.alert_id if track.alert else alert_id(rule.id, device.device_id,
                                                                        raised_ms),
            domain=rule.domain, rule=rule.id, device_id=device.device_id, site=device.site,
            ward=device.ward, level=shown.level, state=state, source=reading.source,
            raised_at=format_ts(raised_ms), updated_at=format_ts(ts),
            cleared_at=format_ts(ts) if state is AlertState.CLEARED else None,
            metric=rule.metric, value=value, threshold=threshold, unit=rule.unit,
            **render(texts, device, self.wards, value, threshold, rule.unit))
        track.alert = event if event.active else None
        return event

    def active(self) -> list[Alert]:
        return [t.alert for t in self._tracks.values() if t.alert is not None]

    def forget(self, device_id: str) -> list[Alert]:
        """A device removed from the exhibit: its tracks go, and its active alerts come back
        as cleared events to publish, so none stays on the screens."""
        out = []
        for key in [k for k in self._tracks if k[1] == device_id]:
            track = self._tracks.pop(key)
            if track.alert is not None:
                out.append(_withdrawn(track.alert, track.last_ts, DEVICE_REMOVED))
        return out

    # -- persistence -----------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON-able data; :meth:`restore` takes it back."""
        tracks = []
        for (rule_id, device_id, source), t in self._tracks.items():
            names = [lv.level.value for lv in self.rules[rule_id].levels]
            tracks.append({
                "rule": rule_id, "device_id": device_id, "source": source.value,
                "last_ts": t.last_ts,
                "gain": {names[k]: s for k, s in t.gain.items()},
                "loss": {names[k]: s for k, s in t.loss.items()},
                "alert": t.alert.model_dump(mode="json") if t.alert else None,
            })
        # Exhibitor devices too: after a restart their alerts are restored before their
        # retained profiles arrive again.
        devices = [d.model_dump(mode="json") for d in self.registry if d.source is Source.LIVE]
        return {"version": STATE_VERSION, "tracks": tracks, "devices": devices}

    def restore(self, data: dict[str, Any]) -> list[Alert]:
        """Take back a :meth:`dump`. Alerts whose rule, level or device is gone since (the rule
        file or the registry changed) come back as cleared events to publish, so no retained
        alert outlives its rule."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown rules state version {data.get('version')!r}")
        self._tracks.clear()
        for raw_device in data.get("devices", []):
            apply_profile(self.registry, Profile(raw_device["device_id"],
                                                 DeviceInfo.model_validate(raw_device)))
        orphans: list[Alert] = []
        for raw in data["tracks"]:
            alert = Alert.model_validate(raw["alert"]) if raw["alert"] else None
            rule = self.rules.get(raw["rule"])
            device = self.registry.get(raw["device_id"])
            if rule is None or device is None or device.domain is not rule.domain:
                if alert is not None:
                    orphans.append(_withdrawn(alert, raw["last_ts"]))
                continue
            index = {lv.level.value: i for i, lv in enumerate(rule.thresholds(device.site))}
            level = index.get(alert.level.value, -2) if alert else -1
            if level == -2 and alert is not None:
                orphans.append(_withdrawn(alert, raw["last_ts"]))
                alert, level = None, -1
            self._tracks[(rule.id, device.device_id, Source(raw["source"]))] = Track(
                level=level, alert=alert, last_ts=raw["last_ts"],
                gain={index[n]: s for n, s in raw["gain"].items() if index.get(n, -1) > level},
                loss={index[n]: s for n, s in raw["loss"].items()
                      if 0 <= index.get(n, -1) <= level})
        return orphans

    def tracks(self) -> Iterable[tuple[tuple[str, str, Source], Track]]:
        return self._tracks.items()


RULE_CHANGED = ("Quy tắc cảnh báo này đã được thay đổi hoặc gỡ bỏ.",
                "The rule behind this alert was changed or removed.")
DEVICE_REMOVED = ("Thiết bị đo đã được gỡ khỏi triển lãm.",
                  "The sensor was removed from the exhibit.")


def _withdrawn(alert: Alert, last_ts: int | None,
               why: tuple[str, str] = RULE_CHANGED) -> Alert:
    ts = format_ts(max(last_ts or 0, alert.updated_ms))
    return alert.model_copy(update={
        "state": AlertState.CLEARED, "updated_at": ts, "cleared_at": ts,
        "title_vi": f"Đã gỡ cảnh báo: {alert.title_vi}",
        "title_en": f"Alert withdrawn: {alert.title_en}",
        "message_vi": why[0], "message_en": why[1]})
