"""Exhibitor devices registered at run time, as the api announces them on the broker.

The api publishes a registered device's :class:`~smartcity.registry.DeviceInfo` retained on
``{root}/devices/{id}/profile`` and an empty retained message when the device is removed.
Every service that judges readings (ingest, the rules) subscribes to ``profile_filter`` and
applies what arrives to its own registry, so a device is taken at once, without a restart.
The city's own devices come from the city file and are never replaced or removed this way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from smartcity.codec import problems_of
from smartcity.errors import ContractError, FieldProblem, InvalidPayload
from smartcity.models import Source
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import DEFAULT_ROOT, parse_profile_topic

log = logging.getLogger(__name__)


class Change(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"
    UNCHANGED = "unchanged"  # already so: a retained profile seen again, a repeated removal
    REFUSED = "refused"  # would replace or remove one of the city's own devices


@dataclass(frozen=True)
class Profile:
    device_id: str
    device: DeviceInfo | None  # None: the device was removed


def decode_profile(topic: str, payload: bytes, root: str = DEFAULT_ROOT) -> Profile:
    """A profile message; raise a ContractError naming the field at fault."""
    device_id = parse_profile_topic(topic, root)
    if not payload:
        return Profile(device_id, None)
    try:
        device = DeviceInfo.model_validate_json(payload)
    except ValidationError as e:
        raise InvalidPayload("profile does not match the contract", problems_of(e)) from None
    if device.device_id != device_id:
        raise InvalidPayload("profile of another device", [FieldProblem(
            "device_id", f"{device.device_id!r} published on the profile topic of "
                         f"{device_id!r}")])
    return Profile(device_id, device)


def apply_profile(registry: Registry, profile: Profile) -> Change:
    """Put or remove an exhibitor device; the city's own devices stay as the city file says."""
    known = registry.get(profile.device_id)
    if known is not None and known.source is not Source.LIVE:
        return Change.REFUSED
    if profile.device is None:
        return Change.REMOVED if registry.remove(profile.device_id) else Change.UNCHANGED
    if profile.device.source is not Source.LIVE:
        return Change.REFUSED
    if known == profile.device:
        return Change.UNCHANGED  # the retained profile again, after a reconnect
    registry.put(profile.device)
    return Change.ADDED if known is None else Change.UPDATED


def take_profile(registry: Registry, topic: str, payload: bytes, root: str) -> Change | None:
    """Apply one profile message to ``registry`` and log what changed; None if it was bad.
    Shared by every service's registry read and live profile handler, and by a rehearsal."""
    try:
        profile = decode_profile(topic, payload, root)
        change = apply_profile(registry, profile)
    except ContractError as e:
        log.error("ignored a profile on %s: %s", topic, e)
        return None
    except Exception:  # one bad profile must never stop a service
        log.exception("could not apply a profile on %s", topic)
        return None
    if change is Change.REFUSED:
        log.error("ignored a profile on %s: %r is one of the city's own devices", topic,
                  profile.device_id)
    elif change is not Change.UNCHANGED:
        log.info("exhibitor device %s %s", profile.device_id, change.value)
    return change
