"""What a screen asks of the live stream: ``domain``, ``device`` and ``topic`` query
parameters, each repeatable. Pure.

A parameter given several times matches any of its values; different parameters must all
match. ``domain`` and ``device`` narrow what belongs to a device (readings, statuses, alerts,
device registrations); the simulation state belongs to none and passes them. ``topic`` (MQTT
filters with ``+`` and ``#``) narrows every event by the topic it came on; a device matches
when any of its topics does (telemetry, status, profile). Pings always pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from api.live.wire import Event, EventType
from smartcity.errors import ContractError, FieldProblem
from smartcity.ids import check_id
from smartcity.topics import TopicFilter, check_domain

MAX_VALUES = 256
"""Values per parameter: every event is checked against each of them, for every screen."""


@dataclass(frozen=True)
class LiveFilter:
    domains: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    topics: tuple[TopicFilter, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.domains or self.devices or self.topics)

    def accepts(self, event: Event) -> bool:
        if event.kind is EventType.PING:
            return True
        if event.device_id is not None:
            if self.domains and event.domain not in self.domains:
                return False
            if self.devices and event.device_id not in self.devices:
                return False
        return not self.topics or any(f.matches(t) for f in self.topics for t in event.topics)

    def accepts_device(self, domain: str, device_id: str, topics: Sequence[str]) -> bool:
        if self.domains and domain not in self.domains:
            return False
        if self.devices and device_id not in self.devices:
            return False
        return not self.topics or any(f.matches(t) for f in self.topics for t in topics)


def parse_filter(domains: Sequence[str] = (), devices: Sequence[str] = (),
                 topics: Sequence[str] = ()) -> LiveFilter:
    """The filter the query parameters describe; :class:`ContractError` naming every value at
    fault, by parameter (``domain``, ``device``, ``topic``)."""
    problems: list[FieldProblem] = []
    for name, values in (("domain", domains), ("device", devices), ("topic", topics)):
        if len(values) > MAX_VALUES:
            problems.append(FieldProblem(name, f"given {len(values)} times; at most "
                                               f"{MAX_VALUES}"))
    good_domains: set[str] = set()
    for d in domains:
        try:
            good_domains.add(check_domain(d, "domain").value)
        except ContractError as e:
            problems.extend(e.problems)
    for d in devices:
        try:
            check_id(d, "device")
        except ContractError as e:
            problems.extend(e.problems)
    good_topics: list[TopicFilter] = []
    for t in topics:
        if t.startswith("$share/"):
            problems.append(FieldProblem("topic", f"{t[:80]!r}: a shared subscription is not "
                                                  "a filter of the live stream"))
            continue
        try:
            good_topics.append(TopicFilter(t))
        except ContractError as e:
            problems.extend(e.problems)
    if problems:
        raise ContractError("invalid live stream filter", problems)
    return LiveFilter(frozenset(good_domains), frozenset(devices), tuple(good_topics))
