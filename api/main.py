"""The app factory and the ``smartcity api`` entry point."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from influxdb_client.client.influxdb_client import InfluxDBClient

from api.accounts import device_accounts
from api.admission import Admission
from api.attract import AttractLoop, run_attract
from api.deps import Services
from api.guard import Guard, document_refusals, short_validation_errors
from api.latest import LatestStore, keep_merged
from api.link import MqttLink
from api.live import LiveHub, shutdown_streams
from api.routes import (
    alerts,
    board,
    city,
    exhibitors,
    health,
    metrics,
    rehearsals,
    replays,
    scenarios,
    sensors,
)
from api.routes import devices as device_routes
from api.routes import live as live_routes
from api.routes.docs import add_docs
from api.routes.phone import router as phone_router
from api.watch import DeviceWatch
from broker.registrysync import RegistryUnavailable, sync_registry
from smartcity import logs
from smartcity.city import load_city
from smartcity.registry import Registry
from smartcity.settings import ApiSettings, InfluxSettings
from storage.influx import AsyncInfluxClient, InfluxRejected, InfluxUnavailable

log = logging.getLogger(__name__)

REGISTRY_TIMEOUT_S = 5.0

DESCRIPTION = """\
Read api of the smart-city exhibit (Ho Chi Minh City): the devices, their latest readings,
their history in time buckets, and a city summary for the overview screen.

Times are RFC 3339 in UTC. Errors: 422 names the parameter at fault and the rule it broke;
404 an unknown device; 503 a database or broker that is down (retry later).
"""

TAGS = [
    {"name": "sensors", "description": "devices of the city and their readings"},
    {"name": "city", "description": "figures for the whole city"},
    {"name": "alerts", "description": "flood, rain, traffic-jam and home alerts"},
    {"name": "replays", "description": "replays of the built-in recordings"},
    {"name": "live", "description": "the live stream of readings, statuses, alerts and the "
                                    "simulation, over WebSocket or Server-Sent Events"},
    {"name": "health", "description": "liveness and readiness probes"},
    {"name": "devices", "description": "exhibitors' devices: registration, credentials, and "
                                       "what the exhibit saw of each (changes need the admin "
                                       "token)"},
    {"name": "scenarios", "description": "scenarios and the running simulation; commands "
                                         "need the admin token"},
]


def _version() -> str:
    try:
        return version("smartcity")
    except PackageNotFoundError:
        return "0"


def _influx_probe(settings: InfluxSettings) -> InfluxDBClient:
    token = ""
    if settings.password is not None:
        token = f"{settings.username or 'smartcity'}:{settings.password.get_secret_value()}"
    # One try, short timeout: a readiness probe must answer fast, not retry.
    return InfluxDBClient(url=settings.url, token=token, org="-", timeout=2000, retries=False)


async def _influx_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"InfluxDB is unavailable, try again later: {exc}"},
                        status_code=503, headers={"Retry-After": "5"})


async def _missing_database(influx: AsyncInfluxClient) -> bool:
    try:
        await influx.query("SHOW RETENTION POLICIES")
    except InfluxRejected as e:
        return "database not found" in str(e)
    except InfluxUnavailable:
        pass
    return False


async def _influx_rejected(request: Request, exc: Exception) -> JSONResponse:
    influx: AsyncInfluxClient = request.state.services.influx
    # InfluxDB 1.6 answers a multi-statement query on a missing database with only
    # "not executed", so ask a single statement what is wrong.
    if ("database not found" in str(exc) or "not executed" in str(exc)) and \
            await _missing_database(influx):
        return JSONResponse({"detail": f"InfluxDB has no database {influx.settings.db!r} yet"},
                            status_code=503, headers={"Retry-After": "5"})
    log.error("InfluxDB refused a query of ours: %s", exc)
    return JSONResponse({"detail": f"InfluxDB refused the query: {exc}"}, status_code=502)


def create_app(settings: ApiSettings, registry: Registry | None = None, *,
               warning_levels: Mapping[str, float] | None = None) -> FastAPI:
    """The api. ``registry`` defaults to the city file's devices; ``warning_levels`` (flood
    device id -> warning depth in cm) then default to its flood sites' levels."""
    city_ = load_city(settings.city_file, scale=settings.scale)
    wards = tuple(w.id for w in city_.wards)
    if registry is None:
        registry = city_.registry()
        if warning_levels is None:
            warning_levels = {site.device_id: site.warning_cm for site in city_.flood_sites}
    levels = dict(warning_levels or {})
    devices = registry

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await anyio.to_thread.run_sync(read_registry, settings, devices)
        link = MqttLink(settings.mqtt)
        hub = LiveHub(settings.live, devices, link)  # on the link's connection: one, not two
        watch = DeviceWatch(devices, settings.mqtt.root)
        link.follow(watch.filters(), watch.receive)
        latest = LatestStore()
        hub.on_reading = latest.add
        link.start()
        await hub.start()
        app.state.live = hub
        influx = AsyncInfluxClient(settings.influx)
        probe = _influx_probe(settings.influx)
        try:
            services = Services(settings, devices, levels, influx, probe, link,
                                accounts=device_accounts(settings), wards=wards, latest=latest,
                                admission=Admission(settings.max_devices,
                                                    settings.registrations_per_minute))
            services.live = hub
            services.watch = watch
            services.attract = AttractLoop(settings.attract_idle_s)
            merging = asyncio.create_task(keep_merged(latest, influx, settings.latest_refresh_s))
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run_attract, services.attract, link, settings.mqtt.root)
                yield {"services": services}
                tasks.cancel_scope.cancel()
            merging.cancel()
            await anyio.to_thread.run_sync(services.replays.stop)
        finally:
            await hub.aclose()
            await anyio.to_thread.run_sync(link.stop)
            await influx.aclose()
            probe.close()  # type: ignore[no-untyped-call]  # unannotated upstream

    app = FastAPI(title="smartcity api", version=_version(), description=DESCRIPTION,
                  openapi_tags=TAGS, lifespan=lifespan, docs_url=None, redoc_url=None)
    add_docs(app)
    app.include_router(sensors.router)
    app.include_router(metrics.router)
    app.include_router(city.router)
    app.include_router(alerts.router)
    app.include_router(replays.router)
    app.include_router(rehearsals.router)
    app.include_router(health.router)
    app.include_router(scenarios.router)
    app.include_router(live_routes.router)
    app.include_router(board.router)
    app.include_router(phone_router)
    app.include_router(device_routes.router)
    app.include_router(exhibitors.router)
    app.include_router(exhibitors.page)
    app.include_router(device_routes.contract)
    app.add_middleware(Guard, settings=settings, max_body_bytes=settings.max_body_bytes)
    document_refusals(app)
    app.add_exception_handler(RequestValidationError, short_validation_errors)
    app.add_exception_handler(InfluxUnavailable, _influx_unavailable)
    app.add_exception_handler(InfluxRejected, _influx_rejected)
    return app


def read_registry(settings: ApiSettings, registry: Registry) -> None:
    """The exhibitor devices registered so far, before the screens and the registration
    route judge anything by the registry; the api acknowledges no readings, so if the broker
    is down it starts without them and takes their profiles when the broker is back."""
    try:
        sync_registry(settings.mqtt, registry, "api", REGISTRY_TIMEOUT_S)
    except RegistryUnavailable as e:
        log.warning("starting without the exhibitor devices for now: %s", e)


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after a graceful shutdown, which would turn SIGTERM
        # into exit code 143; a requested stop is a clean exit here.
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host = self.config.host
            shown = f"[{host}]" if ":" in host else host
            log.info("api serving on http://%s:%d (OpenAPI docs at /docs)", shown,
                     self.config.port)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        shutdown_streams(self.config.app)
        await super().shutdown(sockets)


def main(settings: ApiSettings) -> int:
    """Serve until SIGINT or SIGTERM; 0 after a requested stop, 1 if it could not start."""
    logs.setup("api", settings.log_level)
    # `smartcity up` asks /healthz every few seconds; the access log keeps to real traffic.
    logging.getLogger("uvicorn.access").addFilter(
        lambda record: "/healthz " not in record.getMessage())
    app = create_app(settings)
    server = _Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                    log_config=None, lifespan="on"))
    try:
        server.run()
    except SystemExit as e:  # uvicorn exits this way when it cannot bind
        return e.code if isinstance(e.code, int) and e.code else 1
    return 0 if server.started else 1
