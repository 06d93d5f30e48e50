"""The codec's entry point for a device message on any of its topics: the contract's
(:func:`smartcity.codec.decode_message`) or its own under ``{root}/dev/{id}/`` (through its
format, :mod:`smartcity.formats.mapping`). Ingest, the rules, the live stream and the
exhibitor desk call this, so all of them see contract readings only.
"""

from __future__ import annotations

from smartcity.codec import decode_message
from smartcity.errors import FieldProblem, InvalidPayload, Reason
from smartcity.formats.mapping import Mapped, map_message
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import DEFAULT_ROOT, device_id_from_topic, parse_native_topic


def unknown_device(device_id: str) -> InvalidPayload:
    return InvalidPayload(Reason.UNKNOWN_DEVICE, [FieldProblem(
        "device_id", f"{device_id!r} is not registered; register the device before it "
                     "publishes")])


def decode_device_message(topic: str, payload: bytes, registry: Registry,
                          root: str = DEFAULT_ROOT, *, now_ms: int) -> Mapped:
    """The readings of a telemetry message, and notes on what was left out; raise a
    ContractError naming the field at fault. A message on a device's own topics needs the
    device registered (its format says how to read it); a contract message is decoded first
    and its device judged by the caller, as before."""
    native = parse_native_topic(topic, root)
    if native is not None:
        device_id, sub = native
        device = registry.get(device_id)
        if device is None:
            raise unknown_device(device_id)
        return map_message(device, sub, payload, now_ms, root)
    owner = device_id_from_topic(topic, root)
    known = registry.get(owner) if owner is not None else None
    notes: list[str] = []
    readings = decode_message(topic, payload, root, now_ms=now_ms,
                              metrics=known.metrics if known else (), notes=notes)
    return Mapped(readings, notes)


def preview(device: DeviceInfo, topic: str, payload: bytes, root: str, now_ms: int) -> Mapped:
    """What the exhibit would make of ``payload`` on ``topic`` from a device not yet saved:
    the same code as for a registered one."""
    return decode_device_message(topic, payload, Registry([device]), root, now_ms=now_ms)
