"""``smartcity up``: the whole city on one machine, from one command.

Starts Mosquitto and InfluxDB as managed children (unless SMARTCITY_MQTT_URL /
SMARTCITY_INFLUX_URL point at running ones, as in docker-compose), creates the database, then
ingest, rules, api and simulators, each its own process configured by the same SMARTCITY_* variables
docker-compose sets. Ctrl-C or SIGTERM stops everything it started, newest first; a child that
dies takes the stack down with a message naming it, rather than leaving a half-working city.

The broker it starts is the exhibit's secured one: every service logs in with its own account
on the dynamic security plugin, and exhibitors' devices get theirs from the api. The service
passwords are generated on the first start and kept in ``DATA_DIR/broker/accounts.env``
(see :mod:`broker.localaccounts`); ``--anonymous-broker`` runs the development broker that
takes anonymous clients instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from broker.dynsec import password_variable
from broker.localaccounts import AccountsError, BrokerAccounts, prepare_broker_accounts
from launcher.servers import (
    Influxd,
    ManagedServer,
    Mosquitto,
    ServerError,
    kill_on_parent_death,
    port_in_use,
)
from smartcity import logs
from smartcity.settings import ApiSettings, CommonSettings, InfluxSettings
from storage.influx import InfluxClient, InfluxError

log = logging.getLogger("smartcity.up")

BROKER_DIR = "broker"
SERVICE_ACCOUNTS = {"ingest": "ingest", "rules": "rules", "api": "api", "simulate": "simulators"}
"""The broker account each service `up` starts logs in with."""


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
    proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", name], env=env,
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


def service_env(env: Mapping[str, str], name: str, accounts: BrokerAccounts | None,
                port: int) -> dict[str, str]:
    """The environment of the service ``name``: on the secured broker, its own account."""
    child = dict(env)
    if accounts is not None and name in SERVICE_ACCOUNTS:
        child["SMARTCITY_MQTT_URL"] = accounts.url(SERVICE_ACCOUNTS[name], port)
    return child


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + parts.netloc.rpartition("@")[2]).geturl()


def broker_lines(url: str, root: str, accounts: BrokerAccounts | None, anonymous: bool) -> str:
    """The broker's lines of the summary `up` prints; secrets stay in the accounts file."""
    if anonymous:
        return f"  broker     {url}   (topics under {root}/; anonymous clients, development)\n"
    if accounts is None:
        return f"  broker     {without_password(url)}   (topics under {root}/)\n"
    port = urlsplit(url).port
    file = shlex.quote(str(accounts.accounts_file))
    variable = password_variable("recorder")
    return (f"  broker     {url}   (topics under {root}/; an account per service and device)\n"
            f"  accounts   {accounts.accounts_file}   (the services' broker passwords)\n"
            f"  watch      (. {file} && mosquitto_sub -h 127.0.0.1 -p {port} -u recorder "
            f"-P \"${variable}\" -t {shlex.quote(root + '/#')} -v)\n")


def main(args: argparse.Namespace) -> int:
    common = CommonSettings()
    logs.setup("up", common.log_level)
    api = ApiSettings()
    api_port = args.api_port or api.port
    data_dir = common.data_dir.resolve()
    own_broker = "SMARTCITY_MQTT_URL" not in os.environ
    own_influx = "SMARTCITY_INFLUX_URL" not in os.environ
    anonymous = bool(getattr(args, "anonymous_broker", False))
    if anonymous and not own_broker:
        print("smartcity up: --anonymous-broker is for the broker `up` starts, and "
              "SMARTCITY_MQTT_URL names one to use instead; leave one of them out",
              file=sys.stderr)
        return 2

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
    # Each service gets its own broker account, never another's password.
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("SMARTCITY_BROKER_") and k.endswith("_PASSWORD"))}
    env.update(SMARTCITY_DATA_DIR=str(data_dir), SMARTCITY_API_PORT=str(api_port),
               PYTHONUNBUFFERED="1")
    for flag, name in (("scenario", "SMARTCITY_SIM_SCENARIO"), ("speed", "SMARTCITY_SIM_SPEED"),
                       ("scale", "SMARTCITY_SCALE")):
        if getattr(args, flag, None) is not None:
            env[name] = str(getattr(args, flag))
    accounts: BrokerAccounts | None = None
    code = 0
    try:
        if own_broker:
            if not anonymous:
                accounts = prepare_broker_accounts(data_dir / BROKER_DIR, common.mqtt.root)
            broker = Mosquitto(workdir=data_dir / "mosquitto", port=args.mqtt_port,
                               dynsec_config=accounts.dynsec_file if accounts else None).start()
            servers.append(broker)
            env["SMARTCITY_MQTT_URL"] = broker.url
            # The api issues device accounts on the secured broker, none on the anonymous one.
            env["SMARTCITY_API_DEVICE_ACCOUNTS"] = "none" if anonymous else "dynsec"
            log.info("Mosquitto on %s (log %s)", broker.url, broker.log_path)
        if own_influx:
            influxd = Influxd(workdir=data_dir / "influxdb", port=args.influx_port).start()
            servers.append(influxd)
            env["SMARTCITY_INFLUX_URL"] = influxd.url
            log.info("InfluxDB on %s (log %s)", influxd.url, influxd.log_path)
        influx = InfluxSettings(url=env["SMARTCITY_INFLUX_URL"])
        ensure_database(influx, created_by_us=own_influx)

        for name in ("ingest", "rules", "api") + (() if args.no_simulators else ("simulate",)):
            services.append(start_service(name, service_env(env, name, accounts,
                                                            args.mqtt_port)))
        host = api.host if api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        api_url = f"http://{host}:{api_port}"
        if not wait_ready(f"{api_url}/healthz", 30, services):
            raise ServerError("the api did not come up; see its log lines above")
        broker_summary = broker_lines(env["SMARTCITY_MQTT_URL"], common.mqtt.root, accounts,
                                      anonymous)
        print(f"""
smartcity is up
  board      {api_url}/board   (the visitors' live city map)
  api        {api_url}   (docs {api_url}/docs, readiness {api_url}/readyz)
{broker_summary}  influxdb   {influx.url}   (database {influx.db})
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
    except (ServerError, AccountsError) as e:
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
