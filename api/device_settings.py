"""What an exhibitor sets on a device, ready to paste: the profile's template filled with the
device's broker, account and prefix, and a QR code of the same text (drawn here, so the desk
page needs nothing from outside).

Pure: the route passes the credentials it just issued; nothing is stored.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import segno

from api.models.devices import DeviceSettings
from smartcity.formats import CONTRACT_FORMATS, CUSTOM, catalogue
from smartcity.formats.mapping import topics_to_use
from smartcity.registry import DeviceInfo
from smartcity.topics import native_prefix


def _escaped(kind: str, value: str) -> str:
    # JSON and double-quoted YAML share their escapes.
    return orjson.dumps(value).decode()[1:-1] if kind in ("json", "yaml") else value


def _qr(text: str) -> str:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False,
                                     svgns=True, title="device settings")
    return out.getvalue().decode()


def settings_for(device: DeviceInfo, root: str, broker: str, username: str | None,
                 password: str | None, contract_example: str) -> DeviceSettings:
    """The settings of ``device``; ``contract_example`` is what our own formats paste (the
    ready mosquitto_pub line)."""
    host, _, port = broker.removeprefix("mqtt://").rpartition(":")
    values: dict[str, Any] = {
        "host": host or "127.0.0.1", "port": port or "1883",
        "username": username or "", "password": password or "",
        "client_id": username or device.device_id, "device_id": device.device_id,
        "prefix": native_prefix(device.device_id, root)}
    profile = catalogue().get(device.format)
    if profile is not None:
        kind = profile.settings.kind
        text = profile.settings.template.format_map(
            {k: _escaped(kind, str(v)) for k, v in values.items()})
        title, where = profile.title, profile.settings.where
    elif device.format == CUSTOM:
        kind, title = "text", "Custom JSON"
        where = "the device's MQTT settings"
        text = "\n".join([f"broker: {values['host']}:{values['port']}",
                          f"username: {values['username']}", f"password: {values['password']}",
                          f"client id: {values['client_id']}",
                          f"publish JSON on: {topics_to_use(device, root)[0]}"])
    else:
        kind, title, text = "text", CONTRACT_FORMATS.get(device.format, "our JSON"), \
            contract_example
        where = "a terminal with mosquitto-clients, or the device's MQTT client"
    return DeviceSettings(
        format=device.format, title=title, where=where, kind=kind, text=text,
        publishes_on=topics_to_use(device, root) or [], qr_svg=_qr(text),
        prefix=values["prefix"] if profile is not None or device.format == CUSTOM else None)
