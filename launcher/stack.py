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
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

from broker.dynsec import password_variable
from broker.localaccounts import AccountsError, BrokerAccounts, prepare_broker_accounts
from launcher.servers import Influxd, ManagedServer, Mosquitto, ServerError, port_in_use
from launcher.supervisor import (
    Probe,
    Reporter,
    ServerChild,
    ServiceChild,
    Supervisor,
    SupervisorSettings,
    broker_probe,
    heartbeat_probe,
    http_probe,
)
from smartcity import logs
from smartcity.settings import ApiSettings, CommonSettings, InfluxSettings, IngestSettings
from storage.influx import InfluxClient, InfluxError

log = logging.getLogger("smartcity.up")

BROKER_DIR = "broker"
SERVICE_ACCOUNTS = {"ingest": "ingest", "rules": "rules", "api": "api", "simulate": "simulators"}
"""The broker account each service `up` starts logs in with."""


def wait_ready(url: str, timeout: float, services: list[ServiceChild]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in services:
            if s.poll() is not None:
                return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def wait_subscribed(state_dir: Path, since: float, timeout: float,
                    services: list[ServiceChild]) -> bool:
    """Until ingest's heartbeat, written after ``since`` (wall clock), says its session has
    subscribed (a heartbeat of an earlier run says nothing)."""
    deadline = time.monotonic() + timeout
    heartbeat = state_dir / "heartbeat.json"
    while time.monotonic() < deadline:
        if any(s.poll() is not None for s in services):
            return False
        try:
            if heartbeat.stat().st_mtime >= since and \
                    orjson.loads(heartbeat.read_bytes()).get("subscribed"):
                return True
        except (OSError, ValueError):
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


def ingest_worker_envs(env: Mapping[str, str], workers: int) -> list[dict[str, str]]:
    """Each ingest worker's environment: one share group, and a client id of its own that is
    the same on every start (the broker keeps each worker's session and queue under it). The
    first worker keeps the plain id, so a city that grows from one worker keeps its session."""
    base = env.get("SMARTCITY_INGEST_CLIENT_ID") or IngestSettings.model_fields["client_id"].default
    return [dict(env, SMARTCITY_INGEST_CLIENT_ID=base if k == 1 else f"{base}-{k}")
            for k in range(1, workers + 1)]


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
    services: list[ServiceChild] = []
    supervisor: Supervisor | None = None
    supervision = SupervisorSettings()
    status_file = data_dir / "up" / "status.json"
    # Each service gets its own broker account, never another's password.
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("SMARTCITY_BROKER_") and k.endswith("_PASSWORD"))}
    env.update(SMARTCITY_DATA_DIR=str(data_dir), SMARTCITY_API_PORT=str(api_port),
               PYTHONUNBUFFERED="1", SMARTCITY_UP_STATUS_FILE=str(status_file))
    # One ingest worker subscribes plainly, not through a shared subscription: Mosquitto 2.0
    # does not restore shared subscriptions from its persistence file, so after a broker
    # restart the readings published before the worker is back would have no subscriber.
    # Several workers must share (README, "What survives a crash").
    workers = getattr(args, "ingest_workers", 1)
    if workers == 1:
        env.setdefault("SMARTCITY_INGEST_SHARE_GROUP", "")
    # Beat often enough that a hang is told from a slow beat well inside hang_after_s.
    env.setdefault("SMARTCITY_RULES_HEARTBEAT_INTERVAL_S",
                   str(min(10.0, supervision.hang_after_s / 4)))
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
            # The secured broker's log tells ingest which publishes it refused to devices.
            events = data_dir / "mosquitto" / "events.log" if accounts else None
            broker = Mosquitto(workdir=data_dir / "mosquitto", port=args.mqtt_port,
                               dynsec_config=accounts.dynsec_file if accounts else None,
                               event_log=events).start()
            if events is not None:
                env["SMARTCITY_INGEST_BROKER_LOG"] = str(events)
            servers.append(broker)
            log.info("started %s (pid %d)", broker.name, broker.proc.pid if broker.proc else 0)
            env["SMARTCITY_MQTT_URL"] = broker.url
            # The api issues device accounts on the secured broker, none on the anonymous one.
            env["SMARTCITY_API_DEVICE_ACCOUNTS"] = "none" if anonymous else "dynsec"
            log.info("Mosquitto on %s (log %s)", broker.url, broker.event_log or broker.log_path)
        if own_influx:
            influxd = Influxd(workdir=data_dir / "influxdb", port=args.influx_port).start()
            servers.append(influxd)
            log.info("started %s (pid %d)", influxd.name,
                     influxd.proc.pid if influxd.proc else 0)
            env["SMARTCITY_INFLUX_URL"] = influxd.url
            log.info("InfluxDB on %s (log %s)", influxd.url, influxd.log_path)
        influx = InfluxSettings(url=env["SMARTCITY_INFLUX_URL"])
        ensure_database(influx, created_by_us=own_influx)

        started = time.time()
        for name in ("ingest", "rules", "api") + (() if args.no_simulators else ("simulate",)):
            child_env = service_env(env, name, accounts, args.mqtt_port)
            envs = ingest_worker_envs(child_env, workers) if name == "ingest" else [child_env]
            for k, one in enumerate(envs, 1):
                child = ServiceChild(SERVICE_NAMES[name] + (f"-{k}" if k > 1 else ""), name, one)
                child.start()
                services.append(child)
        host = api.host if api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        api_url = f"http://{host}:{api_port}"
        if not wait_ready(f"{api_url}/healthz", 30, services):
            raise ServerError("the api did not come up; see its log lines above")
        # Readings sent before ingest's session first subscribes would reach no one: the
        # city is up once ingest takes them.
        if not wait_subscribed(data_dir / "ingest" / env.get("SMARTCITY_INGEST_CLIENT_ID",
                                                             "smartcity-ingest"),
                               started, 60, services):
            raise ServerError("ingest did not subscribe; see its log lines above")
        broker_summary = broker_lines(env["SMARTCITY_MQTT_URL"], common.mqtt.root, accounts,
                                      anonymous)
        print(f"""
smartcity is up
  board      {api_url}/board   (the visitors' live city map)
  exhibitors {api_url}/exhibitors   (the desk: register devices; log in with the admin token)
  api        {api_url}   (docs {api_url}/docs, readiness {api_url}/readyz)
{broker_summary}  influxdb   {influx.url}   (database {influx.db})
  data       {data_dir}
Ctrl-C stops everything.
""", flush=True)
        supervisor = Supervisor(supervision, Reporter(status_file, influx))
        for server in servers:
            supervisor.add(ServerChild(server, server.proc),
                           server_probe(server, supervision.hang_after_s), started=True)
        for child in services:
            supervisor.add(child, service_probe(child.command, child.env, data_dir, api_url),
                           started=True)
        supervisor.run(stop)
    except (ServerError, AccountsError) as e:
        log.error("%s", e)
        code = 1
    finally:
        log.info("stopping")
        if supervisor is not None:
            supervisor.stop()
        else:
            # Newest first: the services store what they hold, then the servers go.
            for service in reversed(services):
                service.stop()
            for server in reversed(servers):
                server.stop()
        log.info("stopped")
    return code


SERVICE_NAMES = {"simulate": "simulators"}
SERVICE_NAMES.update((n, n) for n in ("ingest", "rules", "api"))


def server_probe(server: ManagedServer, hang_after_s: float) -> Probe:
    if isinstance(server, Mosquitto):
        return broker_probe(server.port, every_s=hang_after_s / 4)
    return http_probe(f"{server.url}/ping", frozenset({204})) if isinstance(server, Influxd) \
        else http_probe(f"http://127.0.0.1:{server.port}/")


def service_probe(command: str, env: Mapping[str, str], data_dir: Path,
                  api_url: str) -> Probe:
    """Each service's sign of life: the api answers /healthz, the others beat a file (an
    ingest worker's is under its own client id)."""
    if command == "api":
        return http_probe(f"{api_url}/healthz")
    if command == "simulate":
        return heartbeat_probe(data_dir / "simulators" / "heartbeat.json")
    client_id = env.get(f"SMARTCITY_{command.upper()}_CLIENT_ID") or f"smartcity-{command}"
    return heartbeat_probe(data_dir / command / client_id / "heartbeat.json")


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
