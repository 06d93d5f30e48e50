"""InfluxDB line protocol, formatted directly from validated readings.

Formatting by hand costs under 2 µs a point against about 15 µs for influxdb-client's
``Point`` (DESIGN.md), and a Python ingest has a few tens of µs per message in all.
Ids are already held to the id rule, so escaping here is the second line of defence:
anything that could still break a line (a newline) is refused, not escaped. The one place
untrusted text is stored, a device's rejected message (``device_rejections``), first goes
through :func:`printable`, so it holds no line break to refuse.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping

from smartcity.codec import Reading
from smartcity.ids import is_valid_id
from smartcity.models import TELEMETRY_MODELS, Source
from smartcity.registry import DeviceInfo

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\"})


class LineProtocolError(ValueError):
    pass


def _no_newlines(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"{what} {value[:40]!r} holds a line break")
    return value


def escape_tag(value: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _no_newlines(value, "tag").translate(_TAG_ESCAPES)


def escape_measurement(value: str) -> str:
    return _no_newlines(value, "measurement").translate(_MEASUREMENT_ESCAPES)


def escape_string_field(value: str) -> str:
    return '"' + _no_newlines(value, "string field").replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_value(value: float | int | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        # Metrics are always floats, so a field never changes type between points
        # (InfluxDB refuses a point whose field type differs from the stored one).
        return repr(value)
    return escape_string_field(value)


def point_line(measurement: str, tags: Mapping[str, str],
               fields: Mapping[str, float | int | bool | str], ts_ms: int) -> str:
    """One point from its parts, every key and value escaped: the builder for points whose
    tags may hold text from outside (a client id, an alert's site)."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in tags.items())
    field_part = ",".join(f"{escape_tag(k)}={format_value(v)}" for k, v in fields.items())
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {ts_ms}"


def series_key(reading: Reading, device: DeviceInfo) -> str:
    """Measurement and tags: measurement = domain; tags device_id, site, source, ward (sorted,
    as InfluxDB prefers)."""
    return (f"{escape_measurement(reading.domain.value)},device_id={escape_tag(reading.device_id)},"
            f"site={escape_tag(device.site)},source={escape_tag(reading.source.value)},"
            f"ward={escape_tag(device.ward)}")


# Metric names come from the contract models and all follow the id rule, so they need no
# escaping; checked here once rather than per point.
if not all(is_valid_id(name) for m in TELEMETRY_MODELS.values() for name in m.metric_names()):
    raise RuntimeError("every metric name must follow the id rule")


def to_line(reading: Reading, device: DeviceInfo, key: str | None = None) -> str:
    """One point: the series key, metrics as floats plus ``seq`` as an integer when the
    reading has one, time in ms.

    ``key`` is ``series_key(reading, device)``, passed in by callers that cache it."""
    fields = ",".join([f"{k}={float(v)!r}" for k, v in reading.metrics.items()])
    seq = f",seq={reading.seq}i" if reading.seq is not None else ""
    return f"{key or series_key(reading, device)} {fields}{seq} {reading.ts_ms}"


class LineFormatter:
    """``to_line`` with the series key cached per (device, source, registry entry)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, DeviceInfo], str] = {}

    def __call__(self, reading: Reading, device: DeviceInfo) -> str:
        cache_key = (reading.device_id, reading.source, device)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            key = self._keys[cache_key] = series_key(reading, device)
        return to_line(reading, device, key)


# -- rejections, stored for exhibitors --------------------------------------------------------

REJECTIONS_MEASUREMENT = "device_rejections"
PAYLOAD_FIELD_BYTES = 256

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def printable(data: bytes | str, limit_bytes: int) -> str:
    """The start of untrusted text, made printable for a string field: at most ``limit_bytes``
    of UTF-8, with backslashes and non-printable characters (control characters, line breaks,
    NUL, U+2028) written as JSON string escapes, invalid UTF-8 as U+FFFD, quotes kept. So no
    line break or control character reaches line protocol, and ``'"' + text + '"'`` parses as
    the JSON string of what was shown."""
    if isinstance(data, bytes):
        # Incremental: a character the limit cuts in two is left out, not replaced.
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(data[:limit_bytes])
    else:
        text = data
    out: list[str] = []
    size = 0
    for ch in text:
        piece = _ESCAPES.get(ch) or (ch if ch.isprintable() else _unicode_escape(ch))
        size += len(piece.encode())
        if size > limit_bytes:
            break
        out.append(piece)
    return "".join(out)


def _unicode_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def rejection_line(device_id: str, reason: str, reason_code: int, topic: str, problems: str,
                   payload: bytes, suppressed: int, ts_ms: int,
                   source: Source | None = None) -> str:
    """A ``device_rejections`` point: tags device_id, reason and source (the registered
    device's: ``live`` for an exhibitor's, so the exhibitor board finds a device whose every
    message was refused; ``unknown`` for an unregistered id); fields reason_code, topic,
    problems, payload (its start, :func:`printable`) and suppressed. Everything a device sent
    goes through :func:`printable` and the string-field escaping."""
    return (f"{REJECTIONS_MEASUREMENT},device_id={escape_tag(device_id)},"
            f"reason={escape_tag(printable(reason, 200))},"
            f"source={source.value if source else 'unknown'} "
            f"reason_code={format_value(int(reason_code))},"
            f"topic={format_value(printable(topic, 512))},"
            f"problems={format_value(printable(problems, 2048))},"
            f"payload={format_value(printable(payload, PAYLOAD_FIELD_BYTES))},"
            f"suppressed={format_value(int(suppressed))} {ts_ms}")
