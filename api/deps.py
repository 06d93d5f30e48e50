"""Dependencies with ``Annotated`` aliases, so route signatures read like sentences.

They are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per dependency and request (measured: the read api's largest
cost per request after the InfluxDB queries, bench/api_load.py)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

from fastapi import Depends, Path, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from influxdb_client.client.influxdb_client import InfluxDBClient

from api.accounts import AnonymousBroker, DeviceAccounts
from api.admission import Admission
from api.attract import AttractLoop
from api.latest import LatestStore
from api.link import MqttLink
from api.live import LiveHub
from api.replaying import ReplaySlot
from api.watch import DeviceWatch
from smartcity.errors import ContractError
from smartcity.ids import ID_PATTERN, check_id
from smartcity.registry import DeviceInfo, Registry
from smartcity.settings import ApiSettings
from storage.influx import AsyncInfluxClient


@dataclass
class Services:
    """What the lifespan owns; one per running app."""

    settings: ApiSettings
    registry: Registry
    warning_levels: Mapping[str, float]
    influx: AsyncInfluxClient
    influx_probe: InfluxDBClient
    link: MqttLink
    replays: ReplaySlot = field(default_factory=ReplaySlot)
    accounts: DeviceAccounts = field(default_factory=AnonymousBroker)
    wards: tuple[str, ...] = ()
    live: LiveHub | None = None
    watch: DeviceWatch | None = None
    latest: LatestStore = field(default_factory=LatestStore)

    def memory(self) -> LatestStore | None:
        """The in-memory latest readings, when they are to be used and are seeded."""
        ok = self.settings.reads == "memory" and self.latest.ready
        return self.latest if ok else None
    attract: AttractLoop | None = None
    admission: Admission = field(default_factory=lambda: Admission(500, 30))


async def get_services(request: Request) -> Services:
    services: Services = request.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_influx(services: ServicesDep) -> AsyncInfluxClient:
    return services.influx


async def get_registry(services: ServicesDep) -> Registry:
    return services.registry


async def get_link(services: ServicesDep) -> MqttLink:
    return services.link


InfluxDep = Annotated[AsyncInfluxClient, Depends(get_influx)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
LinkDep = Annotated[MqttLink, Depends(get_link)]


def now_ms() -> int:
    return int(time.time() * 1000)


async def _now_ms() -> int:
    return now_ms()


NowDep = Annotated[int, Depends(_now_ms)]


def invalid(error: ContractError, where: str, inputs: Mapping[str, Any]) -> NoReturn:
    """Raise a 422 shaped like FastAPI's own validation errors, one entry per problem;
    ``inputs`` maps parameter names to what the client sent."""
    raise RequestValidationError([
        {"type": "value_error", "loc": (where, p.field), "msg": p.message,
         "input": inputs.get(p.field)}
        for p in error.problems] or [{"type": "value_error", "loc": (where,), "msg": str(error),
                                      "input": None}])


async def get_device(
    device_id: Annotated[str, Path(description=f"device id, {ID_PATTERN}",
                                   examples=["flood-thao-dien"])],
    registry: RegistryDep,
) -> DeviceInfo:
    try:
        check_id(device_id)
    except ContractError as e:
        invalid(e, "path", {"device_id": device_id})
    device = registry.get(device_id)
    if device is None:
        raise HTTPException(404, f"unknown device {device_id!r}; GET /api/v1/sensors lists the "
                                 "known devices")
    return device


DeviceDep = Annotated[DeviceInfo, Depends(get_device)]


# --- admin -------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="admin token",
                     description="SMARTCITY_ADMIN_TOKEN, as `Authorization: Bearer <token>`")


def admin_refusal(settings: ApiSettings,
                  credentials: HTTPAuthorizationCredentials | None) -> HTTPException | None:
    """Why an admin request is refused, or None: 401 without the admin bearer token or with a
    wrong one; 503 when the api has none configured (the endpoints are off until an operator
    sets SMARTCITY_ADMIN_TOKEN: a server-side condition, not the client's fault)."""
    token = settings.admin_token
    if token is None or not token.get_secret_value():
        return HTTPException(503, "admin endpoints are disabled: set SMARTCITY_ADMIN_TOKEN "
                                  "for the api to enable them")
    given = credentials.credentials if credentials else ""
    # Constant-time, so response timing does not leak how much of a guess was right.
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return HTTPException(401, "missing or wrong admin token: send "
                                  "'Authorization: Bearer <SMARTCITY_ADMIN_TOKEN>'",
                             headers={"WWW-Authenticate": "Bearer"})
    return None


async def require_admin(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """State-changing endpoints. The api's guard (:mod:`api.guard`) refuses before anything
    else runs; this is the same check where the route is declared, and what the OpenAPI
    document shows."""
    if (refusal := admin_refusal(services.settings, credentials)) is not None:
        raise refusal


AdminDep = Annotated[None, Depends(require_admin)]
