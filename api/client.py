"""``smartcity devices``: register and manage exhibitor devices from the command line, through
the api (the same endpoints as ``/api/v1/devices``, with the admin token).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import Field, SecretStr

from smartcity.settings import Settings

DEFAULT_API = "http://127.0.0.1:8000"


class ClientSettings(Settings):
    """What ``smartcity devices`` reads: where the api is and the admin token."""

    api_url: str = Field(default=DEFAULT_API, alias="SMARTCITY_API_URL")
    admin_token: SecretStr | None = Field(default=None, alias="SMARTCITY_ADMIN_TOKEN")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default=None,
                   help=f"api address (default: SMARTCITY_API_URL or {DEFAULT_API})")
    p.add_argument("--json", action="store_true", help="print the api's JSON answer")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a device and print its credentials (once)")
    add.add_argument("--name", required=True, help="display name (Vietnamese welcome)")
    add.add_argument("--name-en", default=None, help="English display name")
    add.add_argument("--domain", required=True, choices=["home", "traffic", "flood", "weather"])
    add.add_argument("--lat", type=float, required=True)
    add.add_argument("--lon", type=float, required=True)
    add.add_argument("--metric", action="append", required=True, dest="metrics",
                     help="a metric it sends, e.g. water_level_cm (repeat for more)")
    add.add_argument("--ward", default=None, help="its ward (default: nearest)")
    add.add_argument("--id", default=None, dest="device_id", help="a wished-for device id")
    add.add_argument("--format", default=None, help="how it speaks: json (default), senml, "
                     "value, tasmota, shelly, zigbee2mqtt, esphome or custom")
    add.add_argument("--mapping", default=None, type=Path, help="the custom format's mapping, "
                     "a JSON file (docs/profiles/custom.md)")
    actions.add_parser("list", help="list the exhibitors' devices")
    for name, text in (("show", "last seen, message counts and the last rejected payloads"),
                       ("rotate", "issue a new password (a connected device is disconnected)"),
                       ("remove", "remove the device and revoke its account")):
        actions.add_parser(name, help=text).add_argument("device_id")


def _token(settings: ClientSettings) -> dict[str, str]:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _base(args: argparse.Namespace, settings: ClientSettings) -> str:
    return str(args.api or settings.api_url or DEFAULT_API).rstrip("/")


def _call(args: argparse.Namespace, settings: ClientSettings) -> httpx.Response:
    with httpx.Client(base_url=_base(args, settings), headers=_token(settings),
                      timeout=15.0) as http:
        if args.action == "add":
            body = {"name": args.name, "name_en": args.name_en, "domain": args.domain,
                    "location": {"lat": args.lat, "lon": args.lon}, "metrics": args.metrics,
                    "ward": args.ward, "device_id": args.device_id, "format": args.format,
                    "mapping": orjson.loads(args.mapping.read_bytes()) if args.mapping
                    else None}
            return http.post("/api/v1/devices",
                             json={k: v for k, v in body.items() if v is not None})
        if args.action == "list":
            return http.get("/api/v1/devices")
        if args.action == "show":
            return http.get(f"/api/v1/devices/{args.device_id}")
        if args.action == "rotate":
            return http.post(f"/api/v1/devices/{args.device_id}/rotate")
        return http.delete(f"/api/v1/devices/{args.device_id}")


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text
    if isinstance(detail, list):  # a 422: one line per problem
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                         for d in detail)
    return str(detail)


def _print_credentials(c: dict[str, Any] | None) -> None:
    if c is None:
        print("  credentials: none (this broker takes anonymous devices)")
        return
    print(f"  broker:   {c['broker']}\n  client id: {c.get('client_id', c['username'])}\n"
          f"  username: {c['username']}\n  password: {c['password']}")


def _print(args: argparse.Namespace, data: Any) -> None:
    if args.action == "add":
        d = data["device"]
        print(f"registered {d['device_id']} ({d['domain']}, ward {d['ward']})")
        _print_credentials(data["credentials"])
        t, s = data["topics"], data["settings"]
        print(f"  publish:  {', '.join(t['native']) or t['telemetry']}\n  errors:   "
              f"{t['errors']}  (subscribe: why a message was rejected)")
        print(f"  set on the device ({s['title']}: {s['where']}):\n{s['text']}")
        print(data["note"])
    elif args.action == "list":
        for d in data:
            print(f"{d['device_id']:<32} {d['domain']:<8} {d['ward']:<16} {d['name']}")
        if not data:
            print("no exhibitor devices yet: smartcity devices add --help")
    elif args.action == "show":
        d, m = data["device"], data["messages"]
        print(f"{d['device_id']} ({d['domain']}) {d['name']}: {data['status']}, last seen "
              f"{data['last_seen'] or 'never'}; {m['stored']} stored, {m['rejected']} rejected")
        for r in data["last_rejected"]:
            print(f"  {r['time']} {r['reason']}: {r['problems']}\n      payload {r['payload']}")
        for hint in data["hints"]:
            print(f"  - {hint}")
    elif args.action == "rotate":
        print(f"new credentials for {data['device_id']}")
        _print_credentials(data["credentials"])
        print(data["note"])
    else:
        print(f"removed {args.device_id}; its account is revoked")


def devices_main(args: argparse.Namespace, settings: ClientSettings | None = None) -> int:
    """0 on success; 1 when the api refused (its reason printed); 2 when the mapping file
    cannot be read; 3 when the api is unreachable."""
    settings = settings or ClientSettings()
    try:
        response = _call(args, settings)
    except OSError as e:  # the mapping file
        print(f"smartcity devices: {e}", file=sys.stderr)
        return 2
    except httpx.HTTPError as e:
        print(f"smartcity devices: cannot reach the api at {_base(args, settings)} ({e}); "
              "start it with `smartcity up`, or say where it runs with --api URL or "
              "SMARTCITY_API_URL=URL", file=sys.stderr)
        return 3
    if response.status_code >= 400:
        print(f"smartcity devices {args.action}: {response.status_code}: {_problem(response)}",
              file=sys.stderr)
        return 1
    data = response.json() if response.content else None
    if args.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print(args, data)
    return 0
