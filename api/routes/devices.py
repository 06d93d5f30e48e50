"""Exhibitor devices: register, look up, rotate credentials, remove.

Registering issues the device's own broker account and publishes its profile, retained, on
``{root}/devices/{id}/profile``; ingest, rules and the live screens take it from there, so a
new device is live at once without restarting anything.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Response

from api import device_report, registration
from api.deps import AdminDep, DeviceDep, InfluxDep, NowDep, ServicesDep, invalid
from api.device_settings import settings_for
from api.link import NotPublished
from api.models.base import Problem
from api.models.devices import (
    Credentials,
    Device,
    DeviceReport,
    DeviceRequest,
    MessageCounts,
    Registration,
    Rotation,
)
from api.models.sensors import SensorStatus
from api.registration import RegistrationProblem
from broker.dynsec import DeviceCredentials, DynSecError, DynSecUnavailable
from smartcity.asyncapi import build as asyncapi_document
from smartcity.errors import ContractError, FieldProblem
from smartcity.models import Source, format_ts
from smartcity.registry import DeviceInfo
from smartcity.topics import profile_topic

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
contract = APIRouter(tags=["devices"])

ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong admin token"},
    503: {"model": Problem, "description": "the broker is unavailable, or admin endpoints are "
                                           "off (no SMARTCITY_ADMIN_TOKEN)"},
}
ONE: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown device"},
    409: {"model": Problem, "description": "a device of the city itself, not an exhibitor's"},
}

ADMISSION: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "the id is taken, or the exhibit holds its maximum "
                                           "of exhibitor devices (SMARTCITY_API_MAX_DEVICES)"},
    429: {"model": Problem, "description": "too many registrations a minute; Retry-After says "
                                           "when to try again"},
}

SHOWN_ONCE = ("Keep the password now: the exhibit stores only its hash and cannot show it "
              "again (rotate to get a new one).")


def _credentials(issued: DeviceCredentials | None, broker: str) -> Credentials | None:
    if issued is None:
        return None
    return Credentials(username=issued.username, password=issued.password, broker=broker,
                       client_id=issued.client_id or issued.username)


def _broker_down(e: Exception) -> HTTPException:
    return HTTPException(503, f"the MQTT broker did not complete the request, try again: {e}",
                         headers={"Retry-After": "5"})


async def publish_profile(services: ServicesDep, device_id: str, payload: bytes) -> None:
    topic = str(profile_topic(device_id, services.settings.mqtt.root))
    await anyio.to_thread.run_sync(lambda: services.link.publish(topic, payload, retain=True))


def _exhibitor(device: DeviceInfo) -> DeviceInfo:
    if device.source is not Source.LIVE:
        raise HTTPException(409, f"{device.device_id!r} is one of the city's own devices; only "
                                 "exhibitor devices have accounts to rotate or remove")
    return device


@router.post("", status_code=201, summary="Register an exhibitor device (admin)",
             responses={**ADMIN, **ADMISSION})
async def register(services: ServicesDep, _: AdminDep, now: NowDep,
                   request: Annotated[DeviceRequest, Body()]) -> Registration:
    registry = services.registry
    # Before anything that costs: the broker account, the retained profile.
    services.admission.admit(sum(1 for d in registry if d.source is Source.LIVE),
                             time.monotonic())
    if request.device_id is not None and request.device_id in registry:
        raise HTTPException(409, f"device id {request.device_id!r} is taken; leave device_id "
                                 "out to get a fresh one")
    try:
        device = registration.build_device(request, registry, services.wards)
    except RegistrationProblem as e:
        invalid(ContractError("invalid device", [FieldProblem(e.field, str(e))]), "body",
                request.model_dump())
    accounts = services.accounts
    try:
        issued = await anyio.to_thread.run_sync(accounts.add, device.device_id, device.domain)
    except DynSecUnavailable as e:
        raise _broker_down(e) from None
    except DynSecError as e:
        raise HTTPException(409, f"the broker refused the account: {e}") from None
    try:
        await publish_profile(services, device.device_id, device.model_dump_json().encode())
    except NotPublished as e:
        # No half-registered device: without its profile ingest would refuse its data.
        await anyio.to_thread.run_sync(accounts.remove, device.device_id)
        raise _broker_down(e) from None
    registry.put(device)
    log.info("registered exhibitor device %s (%s)", device.device_id, device.domain.value)
    broker = services.settings.device_broker
    credentials = _credentials(issued, broker)
    root = services.settings.mqtt.root
    return Registration(
        device=registration.device_out(device), credentials=credentials,
        topics=registration.topics_of(device, root),
        example=(example := registration.example_of(device, root, now, credentials, broker)),
        settings=settings_for(device, root, broker, issued.username if issued else None,
                              issued.password if issued else None, example.mosquitto_pub),
        note=SHOWN_ONCE if credentials else "This broker takes anonymous devices "
                                            "(development): connect without credentials.")


@router.get("", summary="The exhibitors' devices")
async def list_devices(services: ServicesDep) -> list[Device]:
    return [registration.device_out(d) for d in services.registry if d.source is Source.LIVE]


@router.get("/{device_id}", summary="What the exhibit has seen of a device: last seen, message "
                                    "counts, the last rejected payloads and why",
            responses={404: ONE[404], 503: {"model": Problem, "description": "InfluxDB down"}})
async def get_device_report(device: DeviceDep, services: ServicesDep,
                        influx: InfluxDep) -> DeviceReport:
    facts = await device_report.fetch(influx, device)
    state = services.link.state(device.device_id)
    status = SensorStatus(state.state.value) if state else SensorStatus.UNKNOWN
    last_seen = registration.utc(facts.last_seen_ms)
    last_rejected_at = registration.utc(facts.last_rejected_ms)
    return DeviceReport(
        device=registration.device_out(device), status=status,
        status_since=format_ts(state.ts) if state and state.ts is not None else None,
        last_seen=last_seen, last_rejected_at=last_rejected_at,
        messages=MessageCounts(stored=facts.stored, rejected=facts.rejected),
        last_rejected=facts.last_rejected,
        topics=registration.topics_of(device, services.settings.mqtt.root),
        hints=registration.hints(last_seen, facts.rejected, last_rejected_at, status, device,
                                 services.settings.mqtt.root,
                                 facts.last_rejected[0] if facts.last_rejected else None))


@router.post("/{device_id}/rotate", summary="New credentials for a device (admin); a connected "
                                            "device is disconnected",
             responses={**ADMIN, **ONE})
async def rotate(device: DeviceDep, services: ServicesDep, _: AdminDep, now: NowDep) -> Rotation:
    _exhibitor(device)
    try:
        issued = await anyio.to_thread.run_sync(services.accounts.rotate, device.device_id)
    except DynSecUnavailable as e:
        raise _broker_down(e) from None
    except DynSecError as e:
        raise HTTPException(409, f"the broker refused: {e}") from None
    credentials = _credentials(issued, services.settings.device_broker)
    if credentials is None:
        raise HTTPException(409, "this broker takes anonymous devices (development): there are "
                                 "no credentials to rotate")
    root, broker = services.settings.mqtt.root, services.settings.device_broker
    example = registration.example_of(device, root, now, credentials, broker)
    return Rotation(device_id=device.device_id, credentials=credentials, note=SHOWN_ONCE,
                    settings=settings_for(device, root, broker, credentials.username,
                                          credentials.password, example.mosquitto_pub))


@router.delete("/{device_id}", status_code=204, summary="Remove a device and revoke its account "
                                                       "(admin); a connected device is "
                                                       "disconnected",
               responses={**ADMIN, **ONE})
async def remove(device: DeviceDep, services: ServicesDep, _: AdminDep) -> Response:
    _exhibitor(device)
    try:
        # Account first: once it is gone the device can send nothing more.
        await anyio.to_thread.run_sync(services.accounts.remove, device.device_id)
        await publish_profile(services, device.device_id, b"")
    except (DynSecUnavailable, NotPublished) as e:
        raise _broker_down(e) from None
    except DynSecError as e:
        raise HTTPException(409, f"the broker refused: {e}") from None
    services.registry.remove(device.device_id)
    log.info("removed exhibitor device %s", device.device_id)
    return Response(status_code=204)


@contract.get("/api/v1/asyncapi.json", summary="The AsyncAPI 3 document of the MQTT interface: "
                                               "topics, payload schemas, formats")
async def asyncapi(services: ServicesDep) -> dict[str, Any]:
    return asyncapi_document(services.settings.mqtt.root,
                             services.settings.device_broker.removeprefix("mqtt://"))
