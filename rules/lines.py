"""Alert events as InfluxDB line protocol: measurement ``alerts``. Pure.

Tags: alert_id, device_id, domain, level, rule, site, source, state, ward (all ids or enum
values). Fields: value and threshold (floats), metric and unit, the four texts, and
raised_at_ms (integer), and for an active alert silent_since_ms (integer epoch ms; 0 while
its sensor reports). The point's time is the event time (``updated_at``), so the identity
(measurement, tags, time) of an event is fixed by the readings behind it and a re-emitted
event overwrites its own point instead of adding one.
"""

from __future__ import annotations

from ingest.lineprotocol import escape_measurement, escape_string_field, escape_tag, format_value
from smartcity.alerts import Alert
from smartcity.models import parse_ts

MEASUREMENT = "alerts"

TAGS = ("alert_id", "device_id", "domain", "level", "rule", "site", "source", "state", "ward")
TEXT_FIELDS = ("metric", "unit", "title_vi", "title_en", "message_vi", "message_en")


def alert_line(alert: Alert) -> str:
    data = alert.model_dump(mode="json")
    tags = ",".join(f"{k}={escape_tag(str(data[k]))}" for k in TAGS)
    fields = [f"value={format_value(float(alert.value))}",
              f"threshold={format_value(float(alert.threshold))}",
              f"raised_at_ms={format_value(alert.raised_ms)}"]
    fields += [f"{k}={escape_string_field(data[k])}" for k in TEXT_FIELDS]
    if alert.active:
        # always written, 0 when heard: an event republished on its own point must overwrite
        # the field, never leave an old value behind
        silent = parse_ts(alert.silent_since) if alert.silent_since is not None else 0
        fields.append(f"silent_since_ms={format_value(silent)}")
    return f"{escape_measurement(MEASUREMENT)},{tags} {','.join(fields)} {alert.updated_ms}"
