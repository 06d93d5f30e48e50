"""The id rule: device, site and ward ids are short lowercase ASCII slugs.

They travel in topic levels, InfluxDB tags and URL paths, so the allowlist is what keeps
MQTT wildcards, line-protocol syntax and path tricks out of all three.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from smartcity.errors import FieldProblem, InvalidId

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    # fullmatch, not match: "$" would accept a trailing newline.
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def check_id(value: object, field: str = "device_id") -> str:
    """``value`` if it follows the id rule; else :class:`InvalidId` naming ``field``."""
    if is_valid_id(value):
        return value  # type: ignore[return-value]
    shown = repr(value)[:80]
    raise InvalidId(
        "invalid id",
        [FieldProblem(field, f"{shown} must match {ID_PATTERN} (lowercase ASCII letters, "
                             "digits, '-' and '_', at most 64 characters)")],
    )


def _validate(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"must match {ID_PATTERN}")
    return value


Id = Annotated[str, AfterValidator(_validate)]
"""A pydantic field type for ids."""
