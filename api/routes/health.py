from __future__ import annotations

import logging

import anyio
from fastapi import APIRouter, Response
from influxdb_client.client.influxdb_client import InfluxDBClient

from api.deps import ServicesDep
from api.models.health import Check, Health, Readiness
from storage.influx import AsyncInfluxClient, InfluxError

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Health:
    return Health()


async def check_influx(probe: InfluxDBClient, influx: AsyncInfluxClient) -> Check:
    where = f"InfluxDB at {influx.settings.url}"
    try:
        with anyio.fail_after(PROBE_TIMEOUT_S):
            # /ping through influxdb-client, which speaks it on 1.x, 2.x and 3.x alike.
            version = await anyio.to_thread.run_sync(probe.version, abandon_on_cancel=True)
    except Exception as e:
        return Check(ok=False, detail=f"{where} unreachable: {str(e) or type(e).__name__}")
    db = influx.settings.db
    try:
        with anyio.fail_after(PROBE_TIMEOUT_S):
            # Needs the database; SHOW MEASUREMENTS would answer empty for a missing one.
            await influx.query("SHOW RETENTION POLICIES")
    except TimeoutError:
        return Check(ok=False, detail=f"{where} did not answer a query", version=version)
    except InfluxError as e:
        if "database not found" in str(e):
            return Check(ok=False, detail=f"{where} has no database {db!r}", version=version)
        return Check(ok=False, detail=f"{where} refused a query on {db!r}: {e}", version=version)
    return Check(ok=True, detail=f"{where} answers, database {db!r} exists", version=version)


@router.get("/readyz", summary="Readiness: the MQTT broker and InfluxDB are reachable",
            responses={503: {"model": Readiness, "description": "something is down; the body "
                                                                "says what"}})
async def readyz(services: ServicesDep, response: Response) -> Readiness:
    status = services.link
    mqtt = (Check(ok=True, detail=f"connected to MQTT broker {status.broker}")
            if status.connected else
            Check(ok=False, detail=f"not connected to MQTT broker {status.broker}"
                                   + (f" ({status.last_error})" if status.last_error else "")))
    influx = await check_influx(services.influx_probe, services.influx)
    checks = {"mqtt": mqtt, "influxdb": influx}
    down = [c.detail for c in checks.values() if not c.ok]
    if down:
        response.status_code = 503
        return Readiness(status="unavailable", detail="; ".join(down), checks=checks)
    return Readiness(status="ready", detail="ready", checks=checks)
