"""The exhibitor desk: its page under ``/exhibitors``, the formats a device can speak, a preview
of a sample payload through the mapping before the device is saved, and the live view of a
registered device's messages. Everything but the page itself needs the admin token; the page
does nothing until staff log in with it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import ValidationError

from api.deps import AdminDep, DeviceDep, NowDep, ServicesDep, invalid
from api.link import NotPublished
from api.models.devices import Device, DeviceRequest
from api.models.formats import FormatChange, FormatOut, PreviewRequest
from api.models.sensors import Location
from api.registration import RegistrationProblem, build_device, device_out
from api.routes.devices import ADMIN, ONE, publish_profile
from api.static import serve_file
from smartcity.codec import problems_of
from smartcity.errors import ContractError, FieldProblem, reason_code
from smartcity.formats import CONTRACT_FORMATS, CUSTOM, catalogue, is_native
from smartcity.formats.decoding import preview as preview_message
from smartcity.formats.units import UNITS
from smartcity.models import TELEMETRY_MODELS, Source, format_ts
from smartcity.topics import native_prefix, telemetry_topic

router = APIRouter(tags=["devices"])
page = APIRouter(include_in_schema=False)

DESK_DIR = Path(str(resources.files("api") / "desk"))


@page.get("/exhibitors")
def desk() -> FileResponse:
    return _file("index.html")


@page.get("/exhibitors/{name}")
def desk_file(name: str) -> FileResponse:
    return _file(name)


def _file(name: str) -> FileResponse:
    return serve_file(DESK_DIR, name, "the desk")


@router.get("/api/v1/formats", summary="The formats a device can be registered with, and the "
                                        "units each metric may come in")
async def formats() -> dict[str, Any]:
    out = [FormatOut(name=n, title=n, summary=s, native=False, publishes=[], docs=None)
           for n, s in CONTRACT_FORMATS.items()]
    out += [FormatOut(name=p.name, title=p.title, summary=p.summary, native=True,
                      publishes=list(p.publishes), docs=p.docs) for p in catalogue().values()]
    out.append(FormatOut(name=CUSTOM, title="Custom JSON", summary="your own JSON: say where "
                         "each metric is, its unit and where the time is", native=True,
                         publishes=[], docs=None))
    return {"formats": out, "units": {m: list(u) for m, u in UNITS.items()},
            "metrics": {d.value: list(m.metric_names()) for d, m in TELEMETRY_MODELS.items()}}


@router.get("/api/v1/exhibitors/session", summary="Whether the admin token is right, and the "
                                                  "broker devices connect to (admin)",
            responses=ADMIN)
async def session(services: ServicesDep, _: AdminDep) -> dict[str, str]:
    return {"broker": services.settings.device_broker, "root": services.settings.mqtt.root}


@router.post("/api/v1/formats/preview", summary="What the exhibit would store from a sample "
                                                "payload, before the device is saved (admin)",
             responses=ADMIN)
async def preview(services: ServicesDep, _: AdminDep, now: NowDep,
                  request: Annotated[PreviewRequest, Body()]) -> dict[str, Any]:
    root = services.settings.mqtt.root
    try:
        device = build_device(request.device.model_copy(
            update={"device_id": request.device.device_id or "preview-device"}),
            services.registry, services.wards)
    except RegistrationProblem as e:
        invalid(ContractError("invalid device", [FieldProblem(f"device.{e.field}", str(e))]),
                "body", {})
    if is_native(device.format):
        topic = f"{native_prefix(device.device_id, root)}/{request.topic.strip('/')}"
    else:
        topic = str(telemetry_topic(device.domain, device.device_id, root))
        if request.topic.strip("/"):
            topic += "/" + request.topic.strip("/")
    try:
        mapped = preview_message(device, topic, request.payload.encode(), root, now)
    except ContractError as e:
        return {"topic": topic, "readings": [], "notes": [], "refused": {
            "reason": str(e.reason), "reason_code": int(reason_code(str(e.reason))),
            "problems": [{"field": p.field, "message": p.message} for p in e.problems]}}
    return {"topic": topic, "notes": mapped.notes, "refused": None,
            "readings": [{"time": format_ts(r.ts_ms), "metrics": r.metrics}
                         for r in mapped.readings]}


@router.put("/api/v1/devices/{device_id}/format", summary="Change how a device speaks (admin); "
                                                         "applies to its next message",
            responses={**ADMIN, **ONE})
async def change_format(device: DeviceDep, services: ServicesDep, _: AdminDep,
                        change: Annotated[FormatChange, Body()]) -> Device:
    if device.source is not Source.LIVE:
        raise HTTPException(409, f"{device.device_id!r} is one of the city's own devices")
    try:
        request = DeviceRequest(
            name=device.name, name_en=device.name_en, domain=device.domain,
            location=Location(lat=device.lat, lon=device.lon), ward=device.ward,
            metrics=change.metrics or list(device.metrics), device_id=device.device_id,
            format=change.format, mapping=change.mapping)
        changed = build_device(request, services.registry, services.wards).model_copy(
            update={"site": device.site})
    except ValidationError as e:
        invalid(ContractError("invalid change", problems_of(e)), "body", change.model_dump())
    except RegistrationProblem as e:
        invalid(ContractError("invalid change", [FieldProblem(e.field, str(e))]), "body",
                change.model_dump())
    # The retained profile: ingest, the rules and the live stream take the new format before
    # the device's next message.
    try:
        await publish_profile(services, device.device_id, changed.model_dump_json().encode())
    except NotPublished as e:
        raise HTTPException(503, f"the MQTT broker did not take the change, try again: {e}",
                            headers={"Retry-After": "5"}) from None
    services.registry.put(changed)
    return device_out(changed)


@router.get("/api/v1/devices/{device_id}/watch", summary="A device's latest raw messages, "
                                                         "what the mapping made of each, and "
                                                         "its refusals (admin)",
            responses={**ADMIN, 404: ONE[404]})
async def watch(device: DeviceDep, services: ServicesDep, _: AdminDep,
                after: Annotated[int, Query(ge=0, description="only entries after this n")] = 0
                ) -> dict[str, Any]:
    if services.watch is None:
        raise HTTPException(503, "the desk's watch is not running")
    return {"device_id": device.device_id, "entries": services.watch.since(device.device_id,
                                                                           after)}
