"""Topic builders, parsers and filters for ``{root}/...``.

Scheme (``root`` defaults to ``city`` and is configurable so tests and exhibits can share a
broker without seeing each other's traffic):

- ``{root}/{domain}/{device_id}/telemetry``   readings, QoS 1 (a JSON object or a SenML pack)
- ``{root}/{domain}/{device_id}/telemetry/{metric}``   one bare number (single-value devices)
- ``{root}/{domain}/{device_id}/status``      retained online/offline, also the last will
- ``{root}/dev/{device_id}/...``              an exhibitor device's own topics, as its firmware
  publishes them (Tasmota, Shelly, zigbee2mqtt, ESPHome, a custom mapping), read through its
  format (:mod:`smartcity.formats`)
- ``{root}/devices/{device_id}/errors``       why a message from that device was rejected
- ``{root}/devices/{device_id}/profile``      retained: a registered exhibitor device
- ``{root}/alerts/{domain}/{alert_id}``       retained alerts
- ``{root}/control/...``                      scenario commands
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from smartcity.errors import FieldProblem, InvalidTopic, Reason
from smartcity.ids import check_id, is_valid_id

DEFAULT_ROOT = "city"
MAX_TOPIC_BYTES = 65535


class Domain(StrEnum):
    HOME = "home"
    TRAFFIC = "traffic"
    FLOOD = "flood"
    WEATHER = "weather"


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    STATUS = "status"
    ERRORS = "errors"
    ALERT = "alert"


def check_root(root: str) -> str:
    """A root is one or more id-like levels (``city``, ``test-1/city``)."""
    levels = root.split("/")
    if not root or not all(is_valid_id(level) for level in levels):
        raise InvalidTopic("invalid topic root", [FieldProblem("root", f"{root!r} must be "
                                                               "'/'-separated id-like levels")])
    return root


def check_domain(value: str, field: str = "domain") -> Domain:
    try:
        return Domain(value)
    except ValueError:
        known = ", ".join(d.value for d in Domain)
        raise InvalidTopic(Reason.UNKNOWN_DOMAIN,
                           [FieldProblem(field, f"{value!r} is not one of: {known}")]) from None


@dataclass(frozen=True)
class Topic:
    """A concrete topic to publish on: no wildcards, validated on creation."""

    value: str

    def __post_init__(self) -> None:
        check_publish_topic(self.value)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TopicFilter:
    """A subscription filter; may hold ``+`` and a trailing ``#``."""

    value: str

    def __post_init__(self) -> None:
        check_filter(self.value)

    def __str__(self) -> str:
        return self.value

    def matches(self, topic: str | Topic) -> bool:
        levels = str(topic).split("/")
        pattern = self.value
        if pattern.startswith("$share/"):
            pattern = pattern.split("/", 2)[2]
        for i, want in enumerate(pattern.split("/")):
            if want == "#":
                # "#" does not match topics starting with "$" at the first level.
                return not (i == 0 and levels[0].startswith("$"))
            if i >= len(levels):
                return False
            if want == "+":
                if i == 0 and levels[0].startswith("$"):
                    return False
                continue
            if want != levels[i]:
                return False
        return len(levels) == len(pattern.split("/"))


def check_publish_topic(topic: str) -> str:
    problems = []
    if not topic:
        problems.append("is empty")
    if "+" in topic or "#" in topic:
        problems.append("holds an MQTT wildcard ('+' or '#'), which is only allowed in filters")
    if "\x00" in topic:
        problems.append("holds a NUL character")
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        problems.append("is longer than 65535 bytes")
    if problems:
        raise InvalidTopic("invalid publish topic",
                           [FieldProblem("topic", f"{topic[:80]!r} " + p) for p in problems])
    return topic


def check_filter(value: str) -> str:
    problem = None
    if not value or "\x00" in value:
        problem = "is empty or holds a NUL character"
    else:
        body = value.split("/", 2)[2] if value.startswith("$share/") else value
        if value.startswith("$share/") and value.count("/") < 2:
            problem = "a shared subscription needs $share/{group}/{filter}"
        levels = body.split("/")
        for i, level in enumerate(levels):
            if level == "#" and i != len(levels) - 1:
                problem = "'#' must be the last level"
            elif level not in ("+", "#") and ("+" in level or "#" in level):
                problem = "a wildcard must fill a whole level"
    if problem:
        raise InvalidTopic("invalid topic filter", [FieldProblem("topic", f"{value!r}: {problem}")])
    return value


def telemetry_topic(domain: Domain | str, device_id: str, root: str = DEFAULT_ROOT) -> Topic:
    return Topic(f"{root}/{check_domain(str(domain)).value}/{check_id(device_id)}/telemetry")


def status_topic(domain: Domain | str, device_id: str, root: str = DEFAULT_ROOT) -> Topic:
    return Topic(f"{root}/{check_domain(str(domain)).value}/{check_id(device_id)}/status")


def errors_topic(device_id: str, root: str = DEFAULT_ROOT) -> Topic:
    return Topic(f"{root}/devices/{check_id(device_id)}/errors")


def profile_topic(device_id: str, root: str = DEFAULT_ROOT) -> Topic:
    """Retained: a registered exhibitor device's :class:`~smartcity.registry.DeviceInfo` as
    JSON, published by the api; an empty retained message means the device was removed."""
    return Topic(f"{root}/devices/{check_id(device_id)}/profile")


def profile_filter(root: str = DEFAULT_ROOT) -> TopicFilter:
    return TopicFilter(f"{root}/devices/+/profile")


def alert_topic(domain: Domain | str, alert_id: str, root: str = DEFAULT_ROOT) -> Topic:
    domain_level = check_domain(str(domain)).value
    return Topic(f"{root}/alerts/{domain_level}/{check_id(alert_id, 'alert_id')}")


def control_topic(*levels: str, root: str = DEFAULT_ROOT) -> Topic:
    return Topic("/".join([root, "control", *(check_id(lv, "control") for lv in levels)]))


def value_topic(domain: Domain | str, device_id: str, metric: str,
                root: str = DEFAULT_ROOT) -> Topic:
    """A single-value topic: one metric, the payload a bare number (``21.5``)."""
    return Topic(f"{telemetry_topic(domain, device_id, root)}/{check_id(metric, 'metric')}")


def _shared(plain: str, share_group: str | None) -> TopicFilter:
    return TopicFilter(f"$share/{check_id(share_group, 'share_group')}/{plain}" if share_group
                       else plain)


def telemetry_filter(root: str = DEFAULT_ROOT, share_group: str | None = None) -> TopicFilter:
    return _shared(f"{root}/+/+/telemetry", share_group)


def value_filter(root: str = DEFAULT_ROOT, share_group: str | None = None) -> TopicFilter:
    """Every single-value topic, ``{root}/+/+/telemetry/+``."""
    return _shared(f"{root}/+/+/telemetry/+", share_group)


NATIVE_LEVEL = "dev"


def native_prefix(device_id: str, root: str = DEFAULT_ROOT) -> str:
    """Where a device of a vendor format publishes: its firmware's topics go under this."""
    return f"{root}/{NATIVE_LEVEL}/{check_id(device_id)}"


def native_filter(root: str = DEFAULT_ROOT, share_group: str | None = None) -> TopicFilter:
    """Every device's own topics, ``{root}/dev/+/#``."""
    return _shared(f"{root}/{NATIVE_LEVEL}/+/#", share_group)


def parse_native_topic(topic: str, root: str = DEFAULT_ROOT) -> tuple[str, str] | None:
    """(device id, the topic under its prefix) of ``{root}/dev/{id}/...``; None for any other
    topic. The id is validated; the rest is the device's format's to judge."""
    prefix = f"{root}/{NATIVE_LEVEL}/"
    if not topic.startswith(prefix):
        return None
    device_id, _, sub = topic[len(prefix):].partition("/")
    check_id(device_id)
    return device_id, sub


def status_filter(root: str = DEFAULT_ROOT) -> TopicFilter:
    return TopicFilter(f"{root}/+/+/status")


@dataclass(frozen=True)
class DeviceTopic:
    """A parsed ``{root}/{domain}/{device_id}/{telemetry|status}`` topic, or a single-value
    ``{root}/{domain}/{device_id}/telemetry/{metric}`` one (``metric`` set)."""

    root: str
    domain: Domain
    device_id: str
    kind: Kind
    metric: str | None = None


@lru_cache(maxsize=65536)
def parse_device_topic(topic: str, root: str = DEFAULT_ROOT) -> DeviceTopic:
    """Parse a telemetry, single-value telemetry or status topic under ``root``; raise
    :class:`InvalidTopic` naming the level at fault.

    A fourth level is taken only after ``telemetry`` and only if it has the shape of a metric
    name (the id rule); whether the domain has that metric is the codec's to say."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise InvalidTopic(Reason.OUTSIDE_ROOT, [
            FieldProblem("topic", f"{topic[:80]!r} does not start with {prefix!r}")])
    levels = topic[len(prefix):].split("/")
    if len(levels) != 3 and not (len(levels) == 4 and levels[2] == Kind.TELEMETRY):
        raise InvalidTopic(Reason.TOPIC_LEVELS,
                           [FieldProblem("topic", f"{topic[:80]!r} is not "
                                                  f"{root}/{{domain}}/{{device_id}}/{{kind}} or "
                                                  f"{root}/{{domain}}/{{device_id}}/telemetry/"
                                                  "{metric}")])
    domain_s, device_id, kind_s = levels[:3]
    domain = check_domain(domain_s)
    check_id(device_id)
    if kind_s not in (Kind.TELEMETRY, Kind.STATUS):
        raise InvalidTopic(Reason.TOPIC_KIND,
                           [FieldProblem("kind", f"{kind_s[:40]!r} is not telemetry or status")])
    metric = None
    if len(levels) == 4:
        metric = levels[3]
        if not is_valid_id(metric):
            raise InvalidTopic(Reason.UNKNOWN_TOPIC_METRIC, [FieldProblem(
                "metric", f"{metric[:40]!r} is not a metric name (such as water_level_cm)")])
    return DeviceTopic(root, domain, device_id, Kind(kind_s), metric)


def parse_profile_topic(topic: str, root: str = DEFAULT_ROOT) -> str:
    """The device id of a ``{root}/devices/{device_id}/profile`` topic."""
    prefix, suffix = f"{root}/devices/", "/profile"
    if not (topic.startswith(prefix) and topic.endswith(suffix)):
        raise InvalidTopic("not a profile topic", [FieldProblem("topic", f"{topic[:80]!r} is "
                                                                f"not {prefix}{{id}}{suffix}")])
    return check_id(topic[len(prefix):-len(suffix)])


def device_id_from_topic(topic: str, root: str = DEFAULT_ROOT) -> str | None:
    """Best-effort device id of a device topic, or None if the id level is not a valid id.

    Used to route a rejection to ``{root}/devices/{id}/errors`` even when the rest of the topic
    is wrong (an unknown domain, say)."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return None
    levels = topic[len(prefix):].split("/")
    if levels[0] == NATIVE_LEVEL and len(levels) > 1:
        return levels[1] if is_valid_id(levels[1]) else None
    if (len(levels) == 3 or (len(levels) == 4 and levels[2] == Kind.TELEMETRY)) \
            and is_valid_id(levels[1]):
        return levels[1]
    return None
