"""Shifting the timestamps inside payloads, so a recording from last week plays as now.

Pure functions. What moves:

- a JSON object's top-level ``ts``: RFC 3339 (the offset, separator and fraction style are
  kept, with at least millisecond precision once the shift needs it) or epoch milliseconds;
- SenML (RFC 8428) packs: ``bt`` when it is absolute, and ``t`` when the record's resolved time
  (base time + ``t``) is absolute and the base time did not already carry the shift. Times
  at or above 2**28 seconds are absolute; smaller ones are relative to "now" and stay.

Anything else (binary payloads, JSON we cannot parse, numbers too small to be epoch
milliseconds) comes back byte for byte: a replay must not invent data.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import orjson

from smartcity.models import parse_ts

SENML_ABSOLUTE_S = 2**28
# Below this a number is not epoch milliseconds (it would be before 1973): most likely epoch
# seconds, which the contract refuses. Guessing its unit could turn a rejected reading into a
# wrong stored one, so it is left as recorded.
MIN_EPOCH_MS = 10**11

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})([Tt ])(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                      r"([Zz]|[+-]\d{2}:\d{2})")


def rebase_payload(payload: bytes, delta_ms: int, *, mark_source: bool = False) -> bytes:
    """``payload`` with its timestamps moved by ``delta_ms`` and, if ``mark_source`` and it is
    a JSON object, ``"source": "replayed"``. Returns ``payload`` itself when nothing changes."""
    if not delta_ms and not mark_source:
        return payload
    head = payload.lstrip()[:1]
    if head not in (b"{", b"["):
        return payload
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    changed = False
    if isinstance(doc, dict):
        if delta_ms and "ts" in doc:
            new = shift_ts(doc["ts"], delta_ms)
            changed = new is not doc["ts"]
            doc["ts"] = new
        if mark_source and doc.get("source") != "replayed":
            doc["source"] = "replayed"
            changed = True
    elif isinstance(doc, list) and delta_ms:
        changed = rebase_senml(doc, delta_ms)
    return orjson.dumps(doc) if changed else payload


def payload_time_ms(payload: bytes) -> int | None:
    """The time a payload says it is from: a top-level ``ts`` (epoch ms or RFC 3339), or a
    SenML pack's first absolute ``bt``; None when it says nothing recognisable."""
    if payload.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict):
        value = doc.get("ts")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value) if abs(value) >= MIN_EPOCH_MS else None
        if isinstance(value, str) and _RFC3339.fullmatch(value.strip()):
            try:
                return parse_ts(value.strip())
            except ValueError:
                return None
        return None
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        bt = doc[0].get("bt")
        if _is_number(bt) and bt >= 2**28:
            return round(bt * 1000)
    return None


def shift_ts(value: Any, delta_ms: int) -> Any:
    """A ``ts`` value moved by ``delta_ms``, in the same form; unrecognised values unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value + delta_ms if abs(value) >= MIN_EPOCH_MS else value
    if isinstance(value, str):
        return shift_rfc3339(value, delta_ms)
    return value


def shift_rfc3339(value: str, delta_ms: int) -> str:
    m = _RFC3339.fullmatch(value)
    if not m:
        return value
    year, month, day, sep, hh, mm, ss, frac, offset = m.groups()
    frac = frac or ""
    try:
        # Work in the timestamp's own offset: a fixed offset has no DST, so adding the delta
        # to the wall-clock fields is exact and the offset text can be kept as written.
        local = datetime(int(year), int(month), int(day), int(hh), int(mm), int(ss),
                         int((frac + "000")[:3]) * 1000)
        moved = local + timedelta(milliseconds=delta_ms)
    except (ValueError, OverflowError):  # 23:59:60, year 9999 + delta, ...
        return value
    ms = moved.microsecond // 1000
    if len(frac) >= 3:
        # Digits past the millisecond cannot change with a whole-millisecond delta.
        new_frac = f"{ms:03d}{frac[3:]}"
    else:
        needed = 3 if ms % 10 else 2 if ms % 100 else 1 if ms else 0
        new_frac = f"{ms:03d}"[:max(len(frac), needed)]
    return (moved.strftime("%Y-%m-%d") + sep + moved.strftime("%H:%M:%S")
            + ("." + new_frac if new_frac else "") + offset)


def rebase_senml(pack: list[Any], delta_ms: int) -> bool:
    """Shift a SenML pack in place; True if anything moved."""
    changed = False
    base = 0.0
    base_absolute = False
    for record in pack:
        if not isinstance(record, dict):
            continue
        bt = record.get("bt")
        if _is_number(bt):
            base = float(bt)
            base_absolute = base >= SENML_ABSOLUTE_S
            if base_absolute:
                record["bt"] = _add_seconds(bt, delta_ms)
                changed = True
        t = record.get("t")
        if _is_number(t) and not base_absolute and base + float(t) >= SENML_ABSOLUTE_S:
            record["t"] = _add_seconds(t, delta_ms)
            changed = True
    return changed


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _add_seconds(value: float, delta_ms: int) -> float:
    if isinstance(value, int) and delta_ms % 1000 == 0:
        return value + delta_ms // 1000
    # SenML times are float seconds; round to the microsecond so 0.1 + 0.2 stays readable.
    return round(value + delta_ms / 1000, 6)
