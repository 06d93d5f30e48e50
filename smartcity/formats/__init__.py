"""Device formats: how an exhibitor's device speaks, chosen at registration.

Our own formats (``json``, ``senml``, ``value``) go to the contract's topics and need no
mapping. Every other format is a :class:`~smartcity.formats.profile.Profile` read from a file
in ``profiles/`` (``tasmota``, ``shelly``, ``zigbee2mqtt``, ``esphome``), or ``custom``: the
exhibitor's own field mapping. Their devices publish where their firmware publishes, under
the device's own prefix ``{root}/dev/{device_id}/``; :mod:`smartcity.formats.mapping` turns
what arrives there into contract readings at the edge.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from smartcity.formats.profile import Profile

CONTRACT_FORMATS = {
    "json": "our JSON object on the telemetry topic",
    "senml": "a SenML pack (RFC 8428) on the telemetry topic",
    "value": "one bare number per metric on its single-value topic",
}
CUSTOM = "custom"


@cache
def catalogue() -> dict[str, Profile]:
    """The built-in vendor profiles by name, read once from the package's data files; a
    broken file stops the service at start-up, not at the first message."""
    out = {}
    for entry in sorted(resources.files(__package__).joinpath("profiles").iterdir(),
                        key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            profile = Profile.model_validate(tomllib.loads(entry.read_text("utf-8")))
            if profile.name != entry.name.removesuffix(".toml"):
                raise ValueError(f"profile {entry.name} names itself {profile.name!r}")
            out[profile.name] = profile
    return out


def format_names() -> list[str]:
    return [*CONTRACT_FORMATS, *catalogue(), CUSTOM]


def is_native(fmt: str) -> bool:
    """Whether devices of this format publish under their own prefix (not the contract's
    telemetry topics)."""
    return fmt not in CONTRACT_FORMATS
