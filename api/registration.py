"""Registering an exhibitor's device: the request, the answer, and the pure rules between them.

An exhibitor gives a display name, a domain, a location and the metrics the device will send;
the api issues the device id, the MQTT account, the topics and a payload ready to paste. No I/O
here: the route does the broker calls (:mod:`api.accounts`) and the publishing.
"""

from __future__ import annotations

import math
import re
import secrets
import shlex
import unicodedata
from collections.abc import Iterable
from typing import Any

import orjson

from api.models.devices import (
    Credentials,
    Device,
    DeviceRequest,
    DeviceTopics,
    PayloadExample,
    Rejected,
)
from api.models.sensors import Location, SensorStatus
from smartcity.errors import Reason
from smartcity.formats import CUSTOM, is_native
from smartcity.formats.mapping import topics_to_use
from smartcity.metrics import CATALOGUE
from smartcity.models import TELEMETRY_MODELS, Source, format_ts
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain, errors_topic, status_topic, telemetry_topic

SLUG_MAX = 40

EXAMPLE_VALUES: dict[str, float] = {name: float(m.example) for name, m in CATALOGUE.items()}
"""A plausible value per metric, for the ready-to-paste payload an exhibitor gets back."""


def metrics_of(domain: Domain) -> tuple[str, ...]:
    return TELEMETRY_MODELS[domain].metric_names()


class RegistrationProblem(ValueError):
    """A request that names something the city does not have; ``field`` is where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def slug(name: str) -> str:
    """An id-shaped slug of a display name: ``Cảm biến ngập Q.7`` -> ``cam-bien-ngap-q-7``."""
    text = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:SLUG_MAX].rstrip("-") or "device"


def new_device_id(name: str, taken: Iterable[str] | Registry) -> str:
    """The name's slug and a short random suffix, unused so far."""
    base = slug(name)
    while True:
        candidate = f"{base}-{secrets.token_hex(2)}"
        if candidate not in taken:
            return candidate


def nearest_ward(registry: Registry, lat: float, lon: float) -> str | None:
    """The ward of the city device nearest to (lat, lon); None in a city with no devices."""
    best: tuple[float, str] | None = None
    k = math.cos(math.radians(lat))
    for d in registry:
        if d.source is Source.LIVE:
            continue
        dist = (d.lat - lat) ** 2 + ((d.lon - lon) * k) ** 2
        if best is None or dist < best[0]:
            best = (dist, d.ward)
    return best[1] if best else None


def build_device(request: DeviceRequest, registry: Registry, wards: Iterable[str]) -> DeviceInfo:
    """The registry entry for a request; :class:`RegistrationProblem` names the field at fault."""
    known = metrics_of(request.domain)
    for i, m in enumerate(request.metrics):
        if m not in known:
            raise RegistrationProblem(f"metrics.{i}", f"{m!r} is not a {request.domain.value} "
                                                      f"metric; use one of {', '.join(known)}")
    ward_ids = set(wards)
    if request.ward is not None and request.ward not in ward_ids:
        raise RegistrationProblem("ward", f"unknown ward {request.ward!r}; the city has "
                                          f"{', '.join(sorted(ward_ids))}")
    if (request.format == CUSTOM) != (request.mapping is not None):
        raise RegistrationProblem("mapping", "the custom format needs a mapping, and only it "
                                             "takes one")
    for i, f in enumerate(request.mapping.metrics if request.mapping else ()):
        if f.metric not in request.metrics:
            raise RegistrationProblem(f"mapping.metrics.{i}", f"{f.metric} is mapped but not "
                                                              "among the device's metrics")
    device_id = request.device_id or new_device_id(request.name, registry)
    ward = request.ward or nearest_ward(registry, request.location.lat, request.location.lon)
    if ward is None:
        raise RegistrationProblem("ward", "the city has no devices to place this one by; "
                                          "give its ward")
    return DeviceInfo(device_id=device_id, domain=request.domain, name=request.name,
                      name_en=request.name_en, ward=ward, site=device_id,
                      lat=request.location.lat, lon=request.location.lon, source=Source.LIVE,
                      metrics=tuple(request.metrics), format=request.format,
                      mapping=request.mapping)


# --- the answer --------------------------------------------------------------------------

def device_out(d: DeviceInfo) -> Device:
    return Device(device_id=d.device_id, domain=d.domain, name=d.name, name_en=d.name_en,
                  ward=d.ward, location=Location(lat=d.lat, lon=d.lon),
                  metrics=list(d.metrics or metrics_of(d.domain)), source=d.source,
                  format=d.format, mapping=d.mapping)


def topics_of(d: DeviceInfo, root: str) -> DeviceTopics:
    telemetry = str(telemetry_topic(d.domain, d.device_id, root))
    return DeviceTopics(telemetry=telemetry, single_value=telemetry + "/{metric}",
                        status=str(status_topic(d.domain, d.device_id, root)),
                        errors=str(errors_topic(d.device_id, root)),
                        native=topics_to_use(d, root))


def example_of(d: DeviceInfo, root: str, now_ms: int,
               credentials: Credentials | None, broker: str) -> PayloadExample:
    metrics = list(d.metrics or metrics_of(d.domain))
    values = {m: EXAMPLE_VALUES.get(m, 1.0) for m in metrics}
    payload: dict[str, Any] = {"ts": format_ts(now_ms), "seq": 1, **values}
    senml: list[dict[str, Any]] = [{"bn": f"{d.device_id}:", "bt": now_ms / 1000,
                                    "n": metrics[0], "v": values[metrics[0]]}]
    senml += [{"n": m, "v": values[m]} for m in metrics[1:]]
    topics = topics_of(d, root)
    host, _, port = broker.removeprefix("mqtt://").rpartition(":")
    command = ["mosquitto_pub", "-V", "mqttv5", "-h", host or "127.0.0.1", "-p", port or "1883"]
    if credentials is not None:
        command += ["-i", credentials.client_id, "-u", credentials.username, "-P",
                    credentials.password]
    command += ["-q", "1", "-t", topics.telemetry, "-m", orjson.dumps(payload).decode()]
    return PayloadExample(
        topic=topics.telemetry, payload=payload, senml=senml,
        single_value_topic=topics.single_value.replace("{metric}", metrics[0]),
        single_value_payload=f"{values[metrics[0]]:g}",
        mosquitto_pub=shlex.join(command))


def hints(report_seen: str | None, rejected: int, last_rejected_at: str | None,
          status: SensorStatus, device: DeviceInfo | None = None, root: str = "city",
          last: Rejected | None = None) -> list[str]:
    """Plain-words next steps for an exhibitor, from what the exhibit has seen of the device."""
    out = []
    if report_seen is None and rejected == 0:
        where = "its telemetry topic"
        if device is not None:
            where = ", ".join(topics_to_use(device, root)) if is_native(device.format) else \
                str(telemetry_topic(device.domain, device.device_id, root))
        out.append("Nothing received yet: check the broker address, the username and password, "
                   f"and that the device publishes on {where}.")
    if device is not None and (report_seen is None or rejected):
        metrics = ", ".join(device.metrics or metrics_of(device.domain))
        out.append(f"This device stores {metrics}; other fields are left out.")
    if rejected and (report_seen is None or (last_rejected_at or "") > report_seen):
        out.append("Its latest messages were rejected: see last_rejected for the reason, or "
                   "subscribe to the errors topic to see each one as it happens.")
        if last is not None and last.reason in (Reason.BROKER_REFUSED, Reason.NATIVE_TOPIC):
            out.append(f"It published on {last.topic}, a topic it may not use: "
                       f"{last.problems.removeprefix('topic: ')}")
    if status is SensorStatus.OFFLINE:
        out.append("The device said it is offline (its status or last will).")
    if not out:
        out.append("Readings are arriving and stored.")
    return out


# The newest rejection first; the api keeps no copy, InfluxDB is the record.
REJECTIONS_MEASUREMENT = "device_rejections"


def utc(ms: int | None) -> str | None:
    return format_ts(ms) if ms is not None else None
