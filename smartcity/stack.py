"""``smartcity up``: the whole city on one machine, from one command.

Starts Mosquitto and InfluxDB as managed children (unless SMARTCITY_MQTT_URL /
SMARTCITY_INFLUX_URL point at running ones, as in docker-compose), creates the database, then
ingest, rules, api and simulators, each its own process configured by the same SMARTCITY_* variables
docker-compose sets. Ctrl-C or SIGTERM stops everything it started, newest first; a child that
dies takes the stack down with a message naming it, rather than leaving a half-working city.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx

from smartcity import logs
from smartcity.influx import InfluxClient, InfluxError
from smartcity.servers import (
    Influxd,
    ManagedServer,
    Mosquitto,
    ServerError,
    kill_on_parent_death,
    port_in_use,
)
from smartcity.settings import ApiSettings, CommonSettings, InfluxSettings

log = logging.getLogger("smartcity.up")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_service(name: str, env: dict[str, str]) -> Service:
    proc = subprocess.Popen([sys.executable, "-m", "smartcity.cli", name], env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=kill_on_parent_death)
    log.info("started %s (pid %d)", name, proc.pid)
    return Service(name, proc)


def wait_ready(url: str, timeout: float, services: list[Service]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in services:
            if s.proc.poll() is not None:
                return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def taken_ports(ports: dict[str, int]) -> list[str]:
    return [f"{what} port {port} on 127.0.0.1 is already taken"
            for what, port in ports.items() if port_in_use(port)]


def main(args: argparse.Namespace) -> int:
    common = CommonSettings()
    logs.setup("up", common.log_level)
    api = ApiSettings()
    api_port = args.api_port or api.port
    data_dir = common.data_dir.resolve()
    own_broker = "SMARTCITY_MQTT_URL" not in os.environ
    own_influx = "SMARTCITY_INFLUX_URL" not in os.environ

    wanted = {"api": api_port}
    if own_broker:
        wanted["Mosquitto"] = args.mqtt_port
    if own_influx:
        wanted["InfluxDB"] = args.influx_port
    if problems := taken_ports(wanted):
        for p in problems:
            print(f"smartcity up: {p}", file=sys.stderr)
        print("smartcity up: stop whatever holds it, choose other ports (--mqtt-port, "
              "--influx-port, --api-port) or point SMARTCITY_MQTT_URL / SMARTCITY_INFLUX_URL "
              "at servers that are already running", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    servers: list[ManagedServer] = []
    services: list[Service] = []
    env = dict(os.environ, SMARTCITY_DATA_DIR=str(data_dir), SMARTCITY_API_PORT=str(api_port),
               PYTHONUNBUFFERED="1")
    for flag, name in (("scenario", "SMARTCITY_SIM_SCENARIO"), ("speed", "SMARTCITY_SIM_SPEED"),
                       ("scale", "SMARTCITY_SCALE")):
        if getattr(args, flag, None) is not None:
            env[name] = str(getattr(args, flag))
    code = 0
    try:
        if own_broker:
            broker = Mosquitto(workdir=data_dir / "mosquitto", port=args.mqtt_port).start()
            servers.append(broker)
            env["SMARTCITY_MQTT_URL"] = broker.url
            log.info("Mosquitto on %s (log %s)", broker.url, broker.log_path)
        if own_influx:
            influxd = Influxd(workdir=data_dir / "influxdb", port=args.influx_port).start()
            servers.append(influxd)
            env["SMARTCITY_INFLUX_URL"] = influxd.url
            log.info("InfluxDB on %s (log %s)", influxd.url, influxd.log_path)
        influx = InfluxSettings(url=env["SMARTCITY_INFLUX_URL"])
        ensure_database(influx, created_by_us=own_influx)

        for name in ("ingest", "rules", "api") + (() if args.no_simulators else ("simulate",)):
            services.append(start_service(name, env))
        host = api.host if api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        api_url = f"http://{host}:{api_port}"
        if not wait_ready(f"{api_url}/healthz", 30, services):
            raise ServerError("the api did not come up; see its log lines above")
        print(f"""
smartcity is up
  api        {api_url}   (docs {api_url}/docs, readiness {api_url}/readyz)
  broker     {env['SMARTCITY_MQTT_URL']}   (topics under {common.mqtt.root}/)
  influxdb   {influx.url}   (database {influx.db})
  data       {data_dir}
Ctrl-C stops everything.
""", flush=True)
        while not stop.wait(0.5):
            if dead := next((s for s in services if s.proc.poll() is not None), None):
                log.error("%s exited with code %s; stopping the city", dead.name,
                          dead.proc.returncode)
                code = 1
                break
            if dead_server := next((s for s in servers if not s.running()), None):
                log.error("%s exited; its log %s ends:\n%s", dead_server.name,
                          dead_server.log_path, dead_server.log_tail())
                code = 1
                break
    except ServerError as e:
        log.error("%s", e)
        code = 1
    finally:
        log.info("stopping")
        # Newest first: simulators say goodbye, the api closes, rules and ingest store what
        # they hold, then the database and the broker go.
        for service in reversed(services):
            service.stop()
        for server in reversed(servers):
            server.stop()
        log.info("stopped")
    return code


def ensure_database(settings: InfluxSettings, created_by_us: bool) -> None:
    client = InfluxClient(settings)
    try:
        deadline = time.monotonic() + 30
        while not client.ping():
            if time.monotonic() > deadline:
                raise ServerError(f"InfluxDB at {settings.url} does not answer /ping")
            time.sleep(0.2)
        try:
            client.create_database()
        except InfluxError as e:
            # InfluxDB 2.x refuses CREATE DATABASE: the bucket must exist ahead of time.
            if created_by_us:
                raise ServerError(f"cannot create database {settings.db!r}: {e}") from e
            log.info("could not create database %r (%s); assuming it exists", settings.db, e)
    finally:
        client.close()


__all__ = ["main"]
