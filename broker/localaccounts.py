"""The accounts of the secured broker ``smartcity up`` runs: one per service, as on the exhibit.

On the first start the service passwords are generated and kept in ``accounts.env`` (mode
0600, ``SMARTCITY_BROKER_<SERVICE>_PASSWORD=`` lines, the variables docker-compose's broker
init reads), and the dynamic security plugin's file is written from them beside it. The broker
saves every device account the api issues into that file, so later starts keep it and only
bring the service accounts up to date: the roles as this smartcity defines them for the topic
root, the passwords as the accounts file has them.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from broker.dynsec import (
    SERVICES,
    PasswordHash,
    check_password,
    hash_password,
    password_variable,
    service_account_roles,
    service_roles,
    verify_password,
    write_initial_config,
)

log = logging.getLogger(__name__)

ACCOUNTS_FILE = "accounts.env"
DYNSEC_FILE = "dynamic-security.json"


class AccountsError(RuntimeError):
    """The broker's accounts (its file or the plugin's store) cannot be read or used."""


@dataclass(frozen=True)
class BrokerAccounts:
    """The secured broker's files under the data dir, and each service account's password."""

    directory: Path
    passwords: Mapping[str, str]

    @property
    def accounts_file(self) -> Path:
        return self.directory / ACCOUNTS_FILE

    @property
    def dynsec_file(self) -> Path:
        return self.directory / DYNSEC_FILE

    def url(self, account: str, port: int) -> str:
        return f"mqtt://{account}:{quote(self.passwords[account], safe='')}@127.0.0.1:{port}"


def parse_accounts(text: str, where: str) -> dict[str, str]:
    """The service passwords an accounts file holds (``SMARTCITY_BROKER_<SERVICE>_PASSWORD=``
    lines, quoted as a shell reads them), by service; AccountsError naming the file, and the
    line or variable, for anything else."""
    values: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise AccountsError(f"{where}:{n}: {e}") from None
        if not words:
            continue
        name, sep, value = words[0].partition("=")
        if len(words) != 1 or not sep:
            raise AccountsError(f"{where}:{n}: expected NAME=value")
        values[name] = value
    passwords = {}
    for service in SERVICES:
        variable = password_variable(service)
        if variable in values:
            try:
                passwords[service] = check_password(variable, values[variable])
            except ValueError as e:
                raise AccountsError(f"{where}: {e}") from None
    return passwords


def format_accounts(passwords: Mapping[str, str]) -> str:
    lines = [
        "# The broker accounts of the services `smartcity up` runs: generated on its first start,",
        "# kept private (mode 0600). The broker keeps their hashes, and the device accounts",
        f"# issued since, in {DYNSEC_FILE} beside this file. Record or watch the city as the",
        "# recorder account, e.g.:",
        "#   SMARTCITY_MQTT_URL=mqtt://recorder:$SMARTCITY_BROKER_RECORDER_PASSWORD@127.0.0.1:1883",
    ]
    lines += [f"{password_variable(s)}={shlex.quote(passwords[s])}" for s in SERVICES
              if s in passwords]
    return "\n".join(lines) + "\n"


def _same(a: list[Any], b: list[Any]) -> bool:
    """Equal as sets of JSON objects: the plugin saves lists in an order of its own."""
    def key(items: list[Any]) -> list[bytes]:
        return sorted(orjson.dumps(i, option=orjson.OPT_SORT_KEYS) for i in items)
    return key(a) == key(b)


def _password_matches(password: str, saved: Mapping[str, Any]) -> bool:
    try:
        return verify_password(password, PasswordHash.model_validate(saved))
    except ValueError:  # no hash, or a malformed one
        return False


def _service_client(service: str, password: str, saved: Mapping[str, Any] | None) -> \
        dict[str, Any]:
    client = dict(saved or {"username": service, "textname": f"smartcity {service}"})
    roles = [{"rolename": r, "priority": 0} for r in service_account_roles(service)]
    if not _same(client.get("roles") or [], roles):
        client["roles"] = roles
    if not _password_matches(password, client):
        client.update(hash_password(password).model_dump())
    return client


def refresh_service_accounts(config: Mapping[str, Any], root: str,
                             passwords: Mapping[str, str]) -> dict[str, Any]:
    """The plugin's saved file with every service role as this smartcity defines it for
    ``root``, and every service account logging in with its password from the accounts file;
    the device accounts and roles issued since are kept as they are."""
    wanted = {name: role.as_json() for name, role in service_roles(root).items()}
    roles = []
    for role in config.get("roles") or []:
        fresh = wanted.pop(role.get("rolename"), None)
        same = fresh is None or (role.get("textname") == fresh["textname"]
                                 and _same(role.get("acls") or [], fresh["acls"]))
        roles.append(role if same else {**role, **(fresh or {})})
    roles += wanted.values()
    missing = dict(passwords)
    clients = []
    for client in config.get("clients") or []:
        name = client.get("username")
        clients.append(_service_client(name, missing.pop(name), client) if name in missing
                       else client)
    clients += [_service_client(s, p, None) for s, p in missing.items()]
    return {**config, "roles": roles, "clients": clients}


def _write_private(path: Path, body: bytes) -> None:
    """Replace ``path`` in one step with a file only its owner can read."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_broker_accounts(directory: Path, root: str) -> BrokerAccounts:
    """The service accounts of the secured broker, before it starts: passwords generated on
    the first start and kept in the accounts file, the plugin's file written from them, and
    on later starts that file brought up to date (service roles for ``root``, passwords as
    the accounts file has them) with the device accounts it holds kept."""
    accounts = BrokerAccounts(directory, {})
    accounts_file, dynsec_file = accounts.accounts_file, accounts.dynsec_file
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    passwords: dict[str, str] = {}
    if accounts_file.exists():
        if accounts_file.stat().st_mode & 0o077:
            log.warning("%s was readable by others; making it private", accounts_file)
            accounts_file.chmod(0o600)
        passwords = parse_accounts(accounts_file.read_text(encoding="utf-8"),
                                   str(accounts_file))
    elif dynsec_file.exists():
        raise AccountsError(f"{dynsec_file} holds the broker accounts, but {accounts_file} with "
                          f"the services' passwords is missing: restore it, or remove "
                          f"{dynsec_file} to start over (every device account is lost)")
    if missing := [s for s in SERVICES if s not in passwords]:
        passwords |= {s: secrets.token_hex(16) for s in missing}
        _write_private(accounts_file, format_accounts(passwords).encode())
        log.info("generated broker passwords for %s in %s", ", ".join(missing), accounts_file)
    if not dynsec_file.exists():
        write_initial_config(dynsec_file, root, passwords)
        log.info("wrote the broker accounts in %s", dynsec_file)
    else:
        try:
            config = orjson.loads(dynsec_file.read_bytes())
            refreshed = refresh_service_accounts(config, root, passwords)
        except (orjson.JSONDecodeError, AttributeError, TypeError) as e:
            raise AccountsError(f"cannot read the broker accounts in {dynsec_file}: {e}; remove "
                              "it to start over (every device account is lost)") from None
        if refreshed != config:
            _write_private(dynsec_file, orjson.dumps(refreshed, option=orjson.OPT_INDENT_2))
            log.info("brought the service accounts in %s up to date", dynsec_file)
    return BrokerAccounts(directory, passwords)


__all__ = [
    "ACCOUNTS_FILE",
    "DYNSEC_FILE",
    "AccountsError",
    "BrokerAccounts",
    "format_accounts",
    "parse_accounts",
    "prepare_broker_accounts",
    "refresh_service_accounts",
]
