"""The ``smartcity`` command: ``up``, ``simulate``, ``ingest``, ``api``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smartcity.control import Clock
from smartcity.errors import ContractError

ENVIRONMENT_HELP = """\
environment (the same variables configure the local stack and docker-compose):
  SMARTCITY_MQTT_URL       broker, mqtt://[user:password@]host:port; when set, `up` uses it
                           instead of starting its own Mosquitto
  SMARTCITY_MQTT_ROOT      first topic level (default: city)
  SMARTCITY_INFLUX_URL     InfluxDB v1-compatible API, http://host:port; when set, `up` uses
                           it instead of starting its own influxd
  SMARTCITY_INFLUX_DB      database, or bucket name on InfluxDB 2.x (default: smartcity)
  SMARTCITY_INFLUX_USERNAME, SMARTCITY_INFLUX_PASSWORD
                           credentials (on InfluxDB 2.x the password is an API token)
  SMARTCITY_API_HOST       api bind address (default: 127.0.0.1)
  SMARTCITY_API_PORT       api port (default: 8000)
  SMARTCITY_DATA_DIR       local state: servers' data, ingest spool (default: ./var)
  SMARTCITY_ADMIN_TOKEN    bearer token for the api's state-changing endpoints (and for
                           `smartcity devices`)
  SMARTCITY_API_URL        where `smartcity devices` finds the api (default:
                           http://127.0.0.1:8000)
  SMARTCITY_API_DEVICE_ACCOUNTS
                           dynsec (default): a broker account per exhibitor device; none: a
                           development broker taking anonymous devices
  SMARTCITY_API_DEVICE_BROKER_URL
                           the broker address told to devices (default: the api's own)
  SMARTCITY_ENV            development (default) or exhibit (refuses default secrets)
  SMARTCITY_CITY_FILE      city description (default: the built-in Ho Chi Minh City)
  SMARTCITY_SIM_INTERVAL_S seconds between a simulated device's readings (default: 2)
  SMARTCITY_SIM_SEED       seed for reproducible simulated readings
  SMARTCITY_SIM_SPEED, SMARTCITY_SIM_START, SMARTCITY_SIM_SCENARIO
                           simulated time factor, start time and scenario
  SMARTCITY_SCALE          copies of every device for load work (same for every service)
  SMARTCITY_INGEST_*       ingest tuning: BATCH_SIZE, BATCH_INTERVAL_S, MAX_PAYLOAD_BYTES,
                           SHARE_GROUP, CLIENT_ID, SESSION_EXPIRY_S, SPOOL_MAX_BYTES
  SMARTCITY_RULES_FILE     warning thresholds (default: the built-in HCMC rules); the api
                           reads it too, for the board's flood colours
  SMARTCITY_RULES_*        rules tuning: CLIENT_ID, SESSION_EXPIRY_S, SAVE_INTERVAL_S
  SMARTCITY_LOG_LEVEL      DEBUG, INFO (default), WARNING
  SMARTCITY_BROKER_<SERVICE>_PASSWORD
                           `smartcity broker init`: the broker password of each service
                           account (INGEST, RULES, API, SIMULATORS, RECORDER, ADMIN), at
                           least 16 characters
"""


def _up(args: argparse.Namespace) -> int:
    from launcher.stack import main

    return main(args)


def _simulate(args: argparse.Namespace) -> int:
    from simulators.clock import parse_speed
    from simulators.runner import main
    from smartcity.settings import SimulatorSettings

    overrides: dict[str, Any] = {}
    for flag, field in (("interval", "interval_s"), ("seed", "seed"), ("city", "city_file"),
                        ("scale", "scale")):
        if getattr(args, flag) is not None:
            overrides[field] = getattr(args, flag)
    settings = SimulatorSettings(**overrides)
    try:
        speed = args.speed if args.speed is not None else parse_speed(settings.speed)
    except ValueError as e:
        raise ContractError(f"SMARTCITY_SIM_SPEED: {e}") from None
    return main(settings, duration_s=args.duration,
                start=args.start if args.start is not None else settings.start,
                speed=speed, scenario=args.scenario or settings.scenario, scale=settings.scale,
                clock=None if args.clock is None else Clock(args.clock))


def _scenarios(args: argparse.Namespace) -> int:
    from simulators.scenarios import list_builtin

    rows = list_builtin()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def workers_arg(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return n


def _ingest(args: argparse.Namespace) -> int:
    from ingest.edgeservice import make_service
    from ingest.service import main
    from smartcity.settings import IngestSettings

    return main(IngestSettings(), make_service)


def _rules(args: argparse.Namespace) -> int:
    if args.rehearse is not None:
        from rules.rehearsal import rehearse_main

        return rehearse_main(args.rehearse, args.rules, args.compare)
    from rules.service import main
    from rules.settings import RulesSettings

    if args.compare is not None:
        print("smartcity rules: --compare goes with --rehearse", file=sys.stderr)
        return 2
    return main(RulesSettings(**({"rules_file": args.rules} if args.rules else {})))


def _record(args: argparse.Namespace) -> int:
    from recorder.commands import record_main

    return record_main(args)


def _replay(args: argparse.Namespace) -> int:
    from recorder.commands import replay_main

    return replay_main(args)


def _api(args: argparse.Namespace) -> int:
    from api.main import main
    from smartcity.settings import ApiSettings

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    return main(ApiSettings(**overrides))


def _asyncapi(args: argparse.Namespace) -> int:
    import orjson

    from smartcity.asyncapi import build

    text = orjson.dumps(build(args.root, args.server), option=orjson.OPT_INDENT_2).decode()
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


def _broker(args: argparse.Namespace) -> int:
    import os

    from broker.dynsec import init_from_env
    from smartcity.topics import DEFAULT_ROOT

    root = args.root or os.environ.get("SMARTCITY_MQTT_ROOT") or DEFAULT_ROOT
    if init_from_env(args.config, root, os.environ, force=args.force):
        print(f"wrote {args.config}: the service accounts and roles for topic root {root!r}")
    else:
        print(f"kept {args.config}: it exists and holds the device accounts issued since "
              "(--force replaces it and drops them)")
    return 0


def _devices(args: argparse.Namespace) -> int:
    from api.client import devices_main

    return devices_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartcity",
        description="The smart-city exhibit backend: simulators, ingest, api.",
        epilog=ENVIRONMENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, help=help, description=help, epilog=ENVIRONMENT_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    up = add("up", _up, "run the whole city: Mosquitto, InfluxDB, ingest, rules, api and "
                        "simulators")
    up.add_argument("--mqtt-port", type=int, default=1883,
                    help="port of the Mosquitto that `up` starts (default: 1883)")
    up.add_argument("--influx-port", type=int, default=8086,
                    help="port of the influxd that `up` starts (default: 8086)")
    up.add_argument("--api-port", type=int, default=None,
                    help="api port (default: SMARTCITY_API_PORT or 8000)")
    up.add_argument("--no-simulators", action="store_true",
                    help="start everything but the simulated city (exhibitor devices only)")
    up.add_argument("--anonymous-broker", action="store_true",
                    help="start the development broker, which takes anonymous clients, instead "
                         "of the exhibit's secured one (an account per service, passwords in "
                         "DATA_DIR/broker/accounts.env, and per exhibitor device)")
    up.add_argument("--scenario", default=None,
                    help="run this scenario in the simulated city (SMARTCITY_SIM_SCENARIO)")
    up.add_argument("--speed", default=None,
                    help="simulated time factor, e.g. 60 or max (SMARTCITY_SIM_SPEED)")
    up.add_argument("--scale", type=int, default=None,
                    help="copies of every device, for load work (SMARTCITY_SCALE)")
    up.add_argument("--ingest-workers", type=workers_arg, default=1, metavar="N",
                    help="ingest processes sharing the stream (one MQTT share group), each "
                         "with its own persistent session (default: 1)")

    from simulators.clock import duration_arg, speed_arg, start_arg

    sim = add("simulate", _simulate, "publish the simulated city's sensor readings")
    sim.add_argument("--interval", type=float, default=None,
                     help="simulated seconds between a device's readings (default: 2)")
    sim.add_argument("--seed", type=int, default=None, help="make the readings reproducible")
    sim.add_argument("--start", type=start_arg, default=None,
                     help="simulated start: RFC 3339, or Ho Chi Minh City local time such as "
                          "2025-10-20T14:00 (default: now)")
    sim.add_argument("--speed", type=speed_arg, default=None,
                     help="time factor: 1 real time (default), 60 a minute per second, max")
    sim.add_argument("--duration", type=duration_arg, default=None,
                     help="simulated time to run, e.g. 3600, 90m, 1h30m (default: until "
                          "stopped)")
    sim.add_argument("--scenario", default=None,
                     help="built-in scenario name (smartcity scenarios list) or a file")
    sim.add_argument("--clock", choices=[c.value for c in Clock], default=None,
                     help="exhibit: readings carry the wall-clock time while a scenario's "
                          "story plays compressed; engineer: readings carry the simulated "
                          "time (byte-identical with --seed). Default: engineer with "
                          "--start or a seed, else exhibit")
    sim.add_argument("--scale", type=int, default=None,
                     help="copies of every device, for load work (give ingest, rules and api "
                          "the same SMARTCITY_SCALE)")
    sim.add_argument("--city", type=Path, default=None, help="city file (TOML)")

    broker = add("broker", _broker, "broker accounts: `broker init` writes the dynamic "
                                    "security file with the service accounts, if absent")
    broker.add_argument("action", choices=["init"], help="write the initial accounts file")
    broker.add_argument("--config", type=Path, required=True,
                        help="the plugin's file, e.g. /mosquitto/data/dynamic-security.json")
    broker.add_argument("--root", default=None,
                        help="topic root the roles are for (default: SMARTCITY_MQTT_ROOT or "
                             "city)")
    broker.add_argument("--force", action="store_true",
                        help="replace an existing file (every device account is lost)")

    scen = add("scenarios", _scenarios, "scenarios")
    scen.add_argument("action", choices=["list"], help="list the built-in scenarios")

    add("ingest", _ingest, "store validated readings from the broker in InfluxDB")

    rules = add("rules", _rules, "raise flood, rain, traffic-jam and home alerts from the "
                                 "readings")
    rules.add_argument("--rules", type=Path, default=None,
                       help="rule file (TOML; default: the built-in HCMC rules)")
    rules.add_argument("--rehearse", type=Path, default=None, metavar="RECORDING",
                       help="run the rules over a recording as fast as possible (no broker, "
                            "no database) and print the alert timeline")
    rules.add_argument("--compare", type=Path, default=None, metavar="OTHER_RULES",
                       help="with --rehearse: show what this rule file adds, drops or moves")

    from recorder.commands import add_record_arguments, add_replay_arguments

    add_record_arguments(add("record", _record, "record what the broker carries into a file"))
    add_replay_arguments(add("replay", _replay, "replay a recording: on schedule, faster, "
                                                "looped, or into InfluxDB"))

    from api.client import add_arguments as add_devices_arguments

    add_devices_arguments(add("devices", _devices, "register exhibitor devices, list them, "
                                                   "rotate or revoke their credentials"))

    spec = add("asyncapi", _asyncapi, "print the AsyncAPI 3 document of the MQTT interface "
                                      "(docs/asyncapi.json is its output)")
    spec.add_argument("--root", default="city", help="topic root (default: city)")
    spec.add_argument("--server", default="exhibit.local:1883",
                      help="the broker address to state (default: exhibit.local:1883)")
    spec.add_argument("--out", type=Path, default=None, help="write to this file")

    api = add("api", _api, "serve the HTTP api (OpenAPI docs at /docs)")
    api.add_argument("--host", default=None, help="bind address (default: 127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="port (default: 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ValidationError as e:
        print(f"smartcity {args.command}: bad configuration:", file=sys.stderr)
        for err in e.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            print(f"  {where}: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except ContractError as e:
        print(f"smartcity {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
