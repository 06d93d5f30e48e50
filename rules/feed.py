"""What the rules do with one message, without the I/O around it.

The live service (:mod:`rules.service`) and a rehearsal over a recording
(:mod:`rules.rehearsal`) both take messages through these functions into the same
:class:`~rules.engine.Engine`, so they cannot judge a message differently: a registered
exhibitor device's profile changes the registry, a reading is decoded by the contract's own
decoder, and every reading goes through the engine in arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NamedTuple

from rules.engine import Engine
from smartcity import control, logs
from smartcity.alerts import Alert
from smartcity.codec import Reading
from smartcity.errors import ContractError
from smartcity.formats.decoding import decode_device_message
from smartcity.profiles import Change, take_profile
from smartcity.registry import Registry
from smartcity.topics import TopicFilter, parse_profile_topic

log = logging.getLogger("rules.service")


def readings_of(topic: str, payload: bytes, registry: Registry, root: str,
                now_ms: int) -> list[Reading] | None:
    """The readings a telemetry message holds, read through its device's format; None when
    it cannot be decoded (ingest tells the device why; the rules have nothing to judge).
    Never raises: one bad message must never stop the rules."""
    try:
        return decode_device_message(topic, payload, registry, root, now_ms=now_ms).readings
    except ContractError:
        return None
    except Exception:
        log.exception("could not decode a message on %s: %s", topic, logs.truncate(payload))
        return None


class ProfileChange(NamedTuple):
    device_id: str
    change: Change


def profile_change(registry: Registry, topic: str, payload: bytes,
                   root: str) -> ProfileChange | None:
    """Apply an exhibitor device's retained profile to ``registry``; None if it is not
    valid (logged). Never raises."""
    change = take_profile(registry, topic, payload, root)
    if change is None:
        return None
    return ProfileChange(parse_profile_topic(topic, root), change)


def story_speed(payload: bytes) -> float | None:
    """How many times as fast as the wall clock simulated readings tell their story, from the
    simulator's retained state: a story played compressed on the exhibit clock compresses the
    rules' hold times alike. None when the state cannot be read (logged)."""
    try:
        state = control.decode_state(payload)
    except ContractError as e:
        log.warning("ignored a simulator state: %s", e)
        return None
    exhibit = state.running and state.clock is control.Clock.EXHIBIT
    return float(state.speed) if exhibit and state.speed and not state.paused else 1.0


def follow_story(engine: Engine, payload: bytes) -> None:
    speed = story_speed(payload)
    if speed is not None and speed != engine.story_speed:
        log.info("simulated readings now count %gx: the story plays at that speed", speed)
        engine.story_speed = speed


def judge(engine: Engine, readings: Iterable[Reading],
          removed: str | None = None) -> list[Alert]:
    """The alert events of ``readings`` (after withdrawing the alerts of a device whose
    profile was ``removed``), in order."""
    events = engine.forget(removed) if removed is not None else []
    for reading in readings:
        try:
            events.extend(engine.evaluate(reading))
        except Exception:  # a bug for one reading must not stop the others
            log.exception("could not judge %s", reading)
    return events


def is_profile(topic: str, profiles: TopicFilter) -> bool:
    return topic.endswith("/profile") and profiles.matches(topic)
