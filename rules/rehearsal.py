"""Rehearsal: the rules engine over a recording, as fast as the machine allows.

"What would the warnings have done?" A rehearsal reads a recording (``smartcity record``, or
a built-in scenario's) and takes every message through the same functions and the same
:class:`~rules.engine.Engine` as the live service (:mod:`rules.feed`), with no broker and no
database. The engine judges by the time each reading states, so a rehearsal gives exactly the
alerts a live run of the same messages gives, in seconds instead of hours.

Messages that state no time of their own (a bare number on a metric topic) are stamped with
when they were recorded, as the live service would stamp them on arrival.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder import RecordingError, RecordingReader
from recorder.reading import describe_loss
from rules.engine import Engine
from rules.feed import follow_story, is_profile, judge, profile_change, readings_of
from rules.wording import ward_names
from smartcity import control, logs
from smartcity.alerts import Alert, AlertLevel, AlertState
from smartcity.city import City, load_city
from smartcity.codec import Reading
from smartcity.errors import ContractError
from smartcity.models import parse_ts
from smartcity.profiles import Change
from smartcity.rulefile import RuleSet, load_rules
from smartcity.settings import Settings
from smartcity.topics import DEFAULT_ROOT, profile_filter


class Step(BaseModel):
    """One alert event of a timeline: what an engineer reads, and what a test compares."""

    model_config = ConfigDict(frozen=True)

    time: str  # the event time the reading stated (RFC 3339 UTC)
    change: str  # raised, escalated, eased (both "updated" on the wire), cleared
    state: str  # raised, updated, cleared
    level: str
    rule: str
    device_id: str
    value: float
    unit: str
    alert_id: str

    @classmethod
    def of(cls, alert: Alert, before: AlertLevel | None = None) -> Step:
        """The step of ``alert``; ``before`` is the level it had until this event."""
        change = alert.state.value
        if alert.state is AlertState.UPDATED and before is not None:
            change = "escalated" if alert.level.rank > before.rank else "eased"
        return cls(time=alert.updated_at, change=change, state=alert.state.value,
                   level=alert.level.value,
                   rule=alert.rule, device_id=alert.device_id, value=round(alert.value, 3),
                   unit=alert.unit, alert_id=alert.alert_id)

    def line(self) -> str:
        return (f"{self.time}  {self.change:9} {self.level:8} {self.rule:14} {self.device_id:28}"
                f" {self.value:g} {self.unit}")


@dataclass
class Rehearsal:
    recording: str
    messages: int = 0
    readings: int = 0
    undecodable: int = 0
    ignored: int = 0  # readings of devices the city does not know
    elapsed_s: float = 0.0
    steps: list[Step] = field(default_factory=list)
    lost: str | None = None  # records lost to damage in the recording

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def counts(self) -> Counter[str]:
        return Counter(s.change for s in self.steps)


def rehearse(path: Path | str, rules: RuleSet, city: City, *, root: str | None = None
             ) -> Rehearsal:
    """Every alert event the rules raise over the recording at ``path``, in order."""
    with RecordingReader(path) as reader:
        result = rehearse_messages(
            ((r.topic, r.payload, r.arrival_ns // 1_000_000) for r in reader), rules, city,
            root=root or reader.header.root or DEFAULT_ROOT, name=str(path))
        result.lost = describe_loss(reader.damage)
    return result


def rehearse_messages(messages: Iterable[tuple[str, bytes, int]], rules: RuleSet, city: City,
                      *, root: str = DEFAULT_ROOT, name: str = "") -> Rehearsal:
    """Every alert event the rules raise over ``messages`` (topic, payload, and when it
    arrived in ms since the epoch), in order."""
    registry = city.registry()
    engine = Engine(rules.with_city(city), registry, ward_names(city))
    result = Rehearsal(name)
    profiles = profile_filter(root)
    story = str(control.state_topic(root))  # the simulator's clock, as the live rules follow it
    levels: dict[str, AlertLevel] = {}  # each alert's level so far
    started = time.perf_counter()
    for topic, payload, arrived_ms in messages:
        result.messages += 1
        removed = None
        readings: list[Reading] = []
        if is_profile(topic, profiles):
            changed = profile_change(registry, topic, payload, root)
            if changed is not None and changed.change is Change.REMOVED:
                removed = changed.device_id
        elif topic == story:
            follow_story(engine, payload)
        else:
            decoded = readings_of(topic, payload, registry, root, arrived_ms)
            if decoded is None:
                result.undecodable += 1
            readings = decoded or []
            result.readings += len(readings)
        for alert in judge(engine, readings, removed):
            result.steps.append(Step.of(alert, levels.get(alert.alert_id)))
            levels[alert.alert_id] = alert.level
    result.elapsed_s = time.perf_counter() - started
    result.ignored = engine.counters.ignored
    return result


# -- comparing two timelines --------------------------------------------------------------


class Difference(BaseModel):
    model_config = ConfigDict(frozen=True)

    difference: str  # added, dropped, moved
    rule: str
    device_id: str
    change: str  # of the step: raised, escalated, eased, cleared
    level: str
    time: str | None  # in the base timeline (None: added)
    other_time: str | None  # in the other timeline (None: dropped)
    value: float | None = None
    other_value: float | None = None

    def line(self) -> str:
        what = f"{self.change} {self.level} {self.rule} {self.device_id}"
        if self.difference == "added":
            return f"+ added    {what} at {self.other_time} ({self.other_value:g})"
        if self.difference == "dropped":
            return f"- dropped  {what} at {self.time} ({self.value:g})"
        return f"~ moved    {what} from {self.time} to {self.other_time}"


def _align(a: list[Step], b: list[Step]) -> list[tuple[Step | None, Step | None]]:
    """Pair the events of one kind (same rule, device, change and level) in two timelines:
    as many pairs as possible, in order, then the closest in time. So when a threshold change
    drops the first of three warnings, the other two pair with their counterparts and the
    first shows as dropped, rather than everything moving up by one."""
    ta, tb = [parse_ts(x.time) for x in a], [parse_ts(y.time) for y in b]
    unpaired = 10**15  # dearer than any distance in time: pairing comes first
    n, m = len(a), len(b)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                cost[i][j] = (i + j) * unpaired
                continue
            cost[i][j] = min(cost[i - 1][j - 1] + abs(ta[i - 1] - tb[j - 1]),
                             cost[i - 1][j] + unpaired, cost[i][j - 1] + unpaired)
    pairs: list[tuple[Step | None, Step | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + abs(ta[i - 1] - tb[j - 1]):
            pairs.append((a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + unpaired:
            pairs.append((a[i - 1], None))
            i -= 1
        else:
            pairs.append((None, b[j - 1]))
            j -= 1
    return pairs


def compare(base: Iterable[Step], other: Iterable[Step]) -> list[Difference]:
    """What ``other`` adds, drops or moves against ``base``, in time order."""
    kinds: dict[tuple[str, str, str, str], tuple[list[Step], list[Step]]] = {}
    for side, steps in enumerate((base, other)):
        for s in steps:
            kinds.setdefault((s.rule, s.device_id, s.change, s.level), ([], []))[side].append(s)
    out = []
    for (rule, device_id, change, level), (a, b) in kinds.items():
        for x, y in _align(a, b):
            if x is not None and y is not None and x.time == y.time:
                continue
            difference = "moved" if x and y else "dropped" if x else "added"
            out.append(Difference(difference=difference, rule=rule, device_id=device_id,
                                  change=change, level=level, time=x.time if x else None,
                                  other_time=y.time if y else None,
                                  value=x.value if x else None,
                                  other_value=y.value if y else None))
    return sorted(out, key=lambda d: (d.time or d.other_time or "", d.rule, d.device_id))


# -- the command line: smartcity rules --rehearse ---------------------------------------------


class RehearsalSettings(Settings):
    """A rehearsal reads the city and the rules; no broker, no database."""

    log_level: str = "WARNING"
    city_file: Path | None = None
    scale: int = Field(default=1, ge=1, le=10_000)
    rules_file: Path | None = Field(default=None, alias="SMARTCITY_RULES_FILE")


def rehearse_main(recording: Path, rules_file: Path | None, compare_with: Path | None,
                  out: TextIO | None = None) -> int:
    try:
        return _main(recording, rules_file, compare_with, out or sys.stdout)
    except (RecordingError, OSError, ContractError, ValidationError) as e:
        print(f"smartcity rules: {e}", file=sys.stderr)
        return 2


def _main(recording: Path, rules_file: Path | None, compare_with: Path | None,
          out: TextIO) -> int:
    settings = RehearsalSettings()
    logs.setup("rules", settings.log_level)
    rules_file = rules_file or settings.rules_file
    city = load_city(settings.city_file, scale=settings.scale)
    base = rehearse(recording, load_rules(rules_file), city)
    named = str(rules_file) if rules_file else "the built-in HCMC rules"
    print(f"rehearsal of {recording} with {named}: {base.messages:,} messages, "
          f"{base.readings:,} readings in {base.elapsed_s:.2f} s ({base.rate:,.0f} msg/s)",
          file=out)
    for step in base.steps:
        print(step.line(), file=out)
    counts = base.counts()
    print(f"{len(base.steps)} events: {counts['raised']} raised, {counts['escalated']} "
          f"escalated, {counts['eased']} eased, {counts['cleared']} cleared", file=out)
    if base.ignored:
        print(f"{base.ignored:,} readings were ignored: their devices are not in the city "
              f"(a scaled recording needs the same SMARTCITY_SCALE, an exhibitor's device its "
              f"profile in the recording)", file=out)
    code = 0
    if base.lost:
        print(f"the recording is damaged: {base.lost} were not judged", file=out)
        code = 1
    if compare_with is not None:
        other = rehearse(recording, load_rules(compare_with), city)
        diff = compare(base.steps, other.steps)
        print(f"\ncompared with {compare_with}: {len(other.steps)} events, "
              f"{len(diff)} difference{'s' if len(diff) != 1 else ''}", file=out)
        for d in diff:
            print(d.line(), file=out)
    return code
