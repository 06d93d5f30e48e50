"""The AsyncAPI 3 document of the whole MQTT interface, generated from the contract models.

Written from the exhibit backend's side: ``receive`` is what smartcity takes from devices and
operators, ``send`` what it publishes. Message payload schemas are the pydantic models' own
JSON schemas, so the document cannot drift from what ingest, rules and the api enforce;
``docs/asyncapi.json`` is this output, and a test keeps the two equal.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from smartcity.alerts import Alert
from smartcity.control import BODIES, Command, SimulatorState
from smartcity.ids import ID_PATTERN
from smartcity.models import TELEMETRY_MODELS, DeviceError, DeviceStatus
from smartcity.registry import DeviceInfo
from smartcity.topics import DEFAULT_ROOT, Domain

REF = "#/components/schemas/{model}"

# RFC 8428 records as devices send them; ingest maps names and units to our metrics.
SENML_RECORD: dict[str, Any] = {
    "type": "object",
    "description": "A SenML (RFC 8428) record. Names are a metric of the device's domain "
                   "(water_level_cm) or a plain name with a SenML unit (temperature + Cel); a "
                   "name that is neither (a URN) is recognised by its unit when one of the "
                   "device's metrics comes in it. Any base name is taken: the topic and the "
                   "account identify the device. Records of quantities the city does not "
                   "measure (V, A, lat, lon) are left out. Times are seconds, absolute or "
                   "relative to now.",
    "properties": {
        "bn": {"type": "string", "description": "base name, such as the device's URN"},
        "bt": {"type": "number", "description": "base time, seconds"},
        "bu": {"type": "string", "description": "base unit"},
        "bv": {"type": "number", "description": "base value"},
        "bver": {"type": "integer"},
        "n": {"type": "string", "description": "name"},
        "u": {"type": "string", "description": "unit, from the SenML units registry"},
        "v": {"type": "number", "description": "value"},
        "t": {"type": "number", "description": "time, seconds"},
        "ut": {"type": "number", "description": "update time, seconds"},
    },
}


def _message(name: str, title: str, schema: dict[str, Any], summary: str,
             content_type: str = "application/json") -> dict[str, Any]:
    return {"name": name, "title": title, "summary": summary, "contentType": content_type,
            "payload": schema}


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": REF.format(model=name)}


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*TELEMETRY_MODELS.values(), DeviceStatus, DeviceError,
                                     DeviceInfo, Alert, SimulatorState, *BODIES.values()]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["SenMLPack"] = {"type": "array", "minItems": 1, "items": SENML_RECORD,
                            "description": "SenML (RFC 8428) pack"}
    schemas["SingleValue"] = {"type": "number", "description": "one bare number, in the unit "
                                                               "the metric's name carries"}
    return schemas


DEVICE_ID = {"description": f"device id, {ID_PATTERN}"}


def build(root: str = DEFAULT_ROOT, server: str = "exhibit.local:1883") -> dict[str, Any]:
    """The document for topic root ``root``."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def channel(key: str, address: str, description: str, msgs: dict[str, str],
                params: dict[str, Any]) -> None:
        channels[key] = {"address": address, "description": description,
                         "messages": {k: {"$ref": f"#/components/messages/{m}"}
                                      for k, m in msgs.items()},
                         "parameters": params}

    def operation(key: str, action: str, chan: str, summary: str) -> None:
        operations[key] = {"action": action, "channel": {"$ref": f"#/channels/{chan}"},
                           "summary": summary,
                           "messages": [{"$ref": f"#/channels/{chan}/messages/{m}"}
                                        for m in channels[chan]["messages"]]}

    for domain in Domain:
        model = TELEMETRY_MODELS[domain]
        d = domain.value
        messages[f"{d}Telemetry"] = _message(
            f"{d}Telemetry", f"{d} reading", _ref(model),
            f"A {d} reading in smartcity's JSON: metrics named with their unit; ts and seq "
            "are optional (without ts the reading is stamped on arrival; without seq nothing "
            "is deduplicated or counted as a gap).")
        messages[f"{d}SenML"] = _message(f"{d}SenML", f"{d} reading as SenML", _ref("SenMLPack"),
                                         f"The same {d} reading as SenML records.",
                                         "application/senml+json")
        channel(f"{d}Telemetry", f"{root}/{d}/{{deviceId}}/telemetry",
                f"Readings of {d} devices; QoS 1. Rejections are explained on the device's "
                "errors channel.",
                {"json": f"{d}Telemetry", "senml": f"{d}SenML"}, {"deviceId": DEVICE_ID})
        operation(f"receive{d.title()}Telemetry", "receive", f"{d}Telemetry",
                  f"ingest validates and stores {d} readings")
        messages[f"{d}SingleValue"] = _message(
            f"{d}SingleValue", f"one {d} metric", _ref("SingleValue"),
            "One metric as a bare number, the way Tasmota-style gadgets publish; the time "
            "is when it arrives.", "text/plain")
        metric_names = list(model.metric_names())
        channel(f"{d}SingleValue", f"{root}/{d}/{{deviceId}}/telemetry/{{metric}}",
                f"One {d} metric per topic level.", {"value": f"{d}SingleValue"},
                {"deviceId": DEVICE_ID, "metric": {"enum": metric_names,
                                                   "description": "a metric of the domain"}})
        operation(f"receive{d.title()}SingleValue", "receive", f"{d}SingleValue",
                  f"ingest takes single {d} values")
        messages[f"{d}Status"] = _message(f"{d}Status", "device status", _ref(DeviceStatus),
                                          "Retained online/offline; also the device's last "
                                          "will.")
        channel(f"{d}Status", f"{root}/{d}/{{deviceId}}/status",
                "Retained device status.", {"status": f"{d}Status"}, {"deviceId": DEVICE_ID})
        operation(f"receive{d.title()}Status", "receive", f"{d}Status",
                  "screens show devices offline")

    messages["nativeMessage"] = _message(
        "nativeMessage", "a vendor's own message", {"description": (
            "Whatever the device's firmware sends: Tasmota's SENSOR JSON, Shelly's status and "
            "NotifyStatus, zigbee2mqtt's JSON, ESPHome's bare values, or JSON mapped field by "
            "field (custom). The format chosen at registration maps it to readings.")},
        "Mapped to contract readings by the device's format; other topics are refused.",
        "application/octet-stream")
    channel("native", f"{root}/dev/{{deviceId}}/{{subtopic}}",
            "An exhibitor device's own topics, where its firmware publishes (the subtopic may "
            "span several levels: tele/booth/SENSOR). Only the device's account may publish "
            "here.", {"native": "nativeMessage"},
            {"deviceId": DEVICE_ID, "subtopic": {"description": "the firmware's own topic "
                                                                "under the prefix"}})
    operation("receiveNative", "receive", "native",
              "ingest maps a vendor's messages through the device's format")

    messages["deviceError"] = _message("deviceError", "rejection", _ref(DeviceError),
                                       "Why a message was rejected: reason, MQTT 5 reason "
                                       "code, the fields at fault and the start of the payload.")
    channel("deviceErrors", f"{root}/devices/{{deviceId}}/errors",
            "Subscribe with the device's own account: every rejection of its messages "
            "(rate-limited, with a count of those not reported).", {"error": "deviceError"},
            {"deviceId": DEVICE_ID})
    operation("sendDeviceErrors", "send", "deviceErrors", "ingest explains each rejection")

    messages["deviceProfile"] = _message("deviceProfile", "registered device", _ref(DeviceInfo),
                                         "Retained: an exhibitor device registered through "
                                         "the api; empty when removed.")
    channel("deviceProfiles", f"{root}/devices/{{deviceId}}/profile",
            "Registered exhibitor devices, retained.", {"profile": "deviceProfile"},
            {"deviceId": DEVICE_ID})
    operation("sendDeviceProfiles", "send", "deviceProfiles",
              "the api announces registered devices to ingest, rules and screens")

    messages["alert"] = _message("alert", "alert event", _ref(Alert),
                                 "Raised, updated or cleared; the whole alert every time, "
                                 "bilingual.")
    channel("alerts", f"{root}/alerts/{{domain}}/{{alertId}}",
            "Retained alerts; cleared by a final event, then an empty retained message.",
            {"alert": "alert"}, {"domain": {"enum": [d.value for d in Domain]},
                                 "alertId": {"description": "one alert episode"}})
    operation("sendAlerts", "send", "alerts", "the rules service warns the city")

    for command in Command:
        body = BODIES[command]
        key = "control" + "".join(p.title() for p in command.value.split("/"))
        messages[key] = _message(key, f"{command.value} command", _ref(body),
                                 f"Scenario control: {command.value}.")
        channel(key, f"{root}/control/{command.value}", f"Operators' {command.value} command "
                "(the api publishes it for the admin).", {"command": key}, {})
        operation(f"receive{key[0].upper()}{key[1:]}", "receive", key,
                  "the simulator obeys operators' commands")
    messages["simulatorState"] = _message("simulatorState", "simulation state",
                                          _ref(SimulatorState),
                                          "Retained: the running scenario, simulated time and "
                                          "speed.")
    channel("controlState", f"{root}/control/state", "The simulation's state, retained.",
            {"state": "simulatorState"}, {})
    operation("sendSimulatorState", "send", "controlState", "screens show the scenario")

    for c in channels.values():
        if not c["parameters"]:
            del c["parameters"]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "smartcity MQTT interface",
            "version": "1.0.0",
            "description": "The MQTT topics of the smart-city exhibit (Ho Chi Minh City): "
                           "what devices send, what smartcity answers and announces. Ids match "
                           f"{ID_PATTERN}; every publish uses QoS 1.",
        },
        "defaultContentType": "application/json",
        "servers": {"exhibit": {
            "host": server, "protocol": "mqtt", "protocolVersion": "5.0",
            "description": "The exhibit broker (Mosquitto 2 with per-device accounts).",
            "security": [{"$ref": "#/components/securitySchemes/deviceAccount"}]}},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _schemas(),
            "messages": messages,
            "securitySchemes": {"deviceAccount": {
                "type": "userPassword",
                "description": "Issued per device by POST /api/v1/devices (shown once); a "
                               "device may publish only under its own topics and read only "
                               "its own errors."}},
        },
    }
