"""Broker accounts on Mosquitto's dynamic security plugin: who may publish and read what.

Every service and every exhibitor device connects with its own account. The pure part holds
the roles as data (:func:`device_role`, :func:`service_roles`) and the broker's initial
``dynamic-security.json`` (:func:`initial_config`); :class:`DynSecAdmin` is the edge that
issues, rotates and revokes device accounts on a running broker.

Roles are per device (``device-{id}``), never ``%u``/``%c`` patterns: usernames are issued by
the exhibit (``dev-{id}``), so a device cannot choose the name its permissions follow.
The plugin denies by default (publish, subscribe and receive); a role allows only what its
service does (see each service's subscriptions and publishes).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson
import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field

from broker.mqtt import connect, new_client
from smartcity.errors import ContractError, FieldProblem
from smartcity.ids import check_id
from smartcity.settings import MqttSettings
from smartcity.topics import (
    DEFAULT_ROOT,
    Domain,
    TopicFilter,
    check_domain,
    check_root,
    native_filter,
    native_prefix,
)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
DEVICE_USER_PREFIX = "dev-"
DEVICE_ROLE_PREFIX = "device-"
SERVICES = ("ingest", "rules", "api", "simulators", "recorder", "admin")
"""Service accounts: the username is the service's name, and so is its role."""
MIN_PASSWORD_CHARS = 16

# The plugin's hash: PBKDF2-HMAC-SHA512, 64-byte key, 12-byte salt, each base64 in the file
# (the same as `mosquitto_ctrl dynsec init` writes). The broker computes one on every
# connection, in its only thread, and the simulators open one connection per device: a
# thousand iterations take about 1.4 ms (OpenSSL through hashlib, on the development
# machine). Service passwords have at least 16 characters and device ones 192 random bits,
# so length, not iterations, is the defence.
HASH_ITERATIONS = 1000
SALT_BYTES = 12
HASH_BYTES = 64


class AclType(StrEnum):
    PUBLISH_SEND = "publishClientSend"
    PUBLISH_RECEIVE = "publishClientReceive"
    SUBSCRIBE_LITERAL = "subscribeLiteral"
    SUBSCRIBE_PATTERN = "subscribePattern"
    UNSUBSCRIBE_LITERAL = "unsubscribeLiteral"
    UNSUBSCRIBE_PATTERN = "unsubscribePattern"


class Acl(BaseModel):
    model_config = ConfigDict(frozen=True)

    acltype: AclType
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype.value, "topic": self.topic, "priority": self.priority,
                "allow": self.allow}


class Role(BaseModel):
    model_config = ConfigDict(frozen=True)

    rolename: str
    textname: str = ""
    acls: tuple[Acl, ...]

    def as_json(self) -> dict[str, Any]:
        return {"rolename": self.rolename, "textname": self.textname,
                "acls": [acl.as_json() for acl in self.acls]}

    def permits(self, acltype: AclType, topic: str) -> bool:
        """Whether this role allows ``topic`` (a publish topic, or for subscriptions the filter
        as the client sends it), judged as the plugin does; no ACL means no."""
        for acl in sorted(self.acls, key=lambda a: -a.priority):
            if acl.acltype is not acltype:
                continue
            if acltype is AclType.SUBSCRIBE_LITERAL:
                hit = acl.topic == topic
            elif acltype is AclType.SUBSCRIBE_PATTERN:
                hit = _covers(acl.topic, topic)
            else:
                hit = TopicFilter(acl.topic).matches(topic)
            if hit:
                return acl.allow
        return False


def _covers(pattern: str, subscription: str) -> bool:
    """Whether an ACL pattern covers a whole subscription filter: a ``+`` in the filter is
    covered only by a ``+`` or ``#`` in the pattern, a ``#`` only by a ``#``."""
    want, got = pattern.split("/"), subscription.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(got) or got[i] == "#" or (got[i] == "+" and level != "+"):
            return False
        if level not in ("+", got[i]):
            return False
    return len(want) == len(got)


def _send(*topics: str) -> list[Acl]:
    return [Acl(acltype=AclType.PUBLISH_SEND, topic=t) for t in topics]


def _read(*filters: str) -> list[Acl]:
    """Subscribe to each filter (also as given in a shared subscription) and receive what it
    matches: receiving is denied by default too."""
    acls = []
    for f in filters:
        acls.append(Acl(acltype=AclType.SUBSCRIBE_PATTERN, topic=f))
        plain = f.split("/", 2)[2] if f.startswith("$share/") else f
        receive = Acl(acltype=AclType.PUBLISH_RECEIVE, topic=plain)
        if receive not in acls:
            acls.append(receive)
    return acls


def device_username(device_id: str) -> str:
    return DEVICE_USER_PREFIX + check_id(device_id)


def device_rolename(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + check_id(device_id)


def device_role(device_id: str, domain: Domain | str, root: str = DEFAULT_ROOT) -> Role:
    """An exhibitor device: publishes its readings (also one metric a topic), its retained
    status, which is also its last will, and anything under its own prefix ``{root}/dev/{id}/``
    (where Tasmota, Shelly, zigbee2mqtt and ESPHome publish; ingest reads them through the
    device's format and reports a wrong sub-topic itself); reads its own errors. Nothing
    else."""
    base = f"{check_root(root)}/{check_domain(str(domain)).value}/{check_id(device_id)}"
    errors = f"{root}/devices/{device_id}/errors"
    return Role(rolename=device_rolename(device_id), textname=f"exhibitor device {device_id}",
                acls=(*_send(f"{base}/telemetry", f"{base}/telemetry/+", f"{base}/status",
                             f"{native_prefix(device_id, root)}/#"),
                      Acl(acltype=AclType.SUBSCRIBE_LITERAL, topic=errors),
                      Acl(acltype=AclType.PUBLISH_RECEIVE, topic=errors)))


def _shared(group: str, *filters: str) -> tuple[str, ...]:
    return (*filters, *(f"$share/{group}/{f}" for f in filters))


def service_roles(root: str = DEFAULT_ROOT) -> dict[str, Role]:
    """The role of each service account (and ``admin``, which manages accounts), by name."""
    r = check_root(root)
    telemetry = (f"{r}/+/+/telemetry", f"{r}/+/+/telemetry/+")
    native = str(native_filter(r))  # exhibitor devices' own topics
    status, profiles, everything = f"{r}/+/+/status", f"{r}/devices/+/profile", f"{r}/#"
    acls: dict[str, tuple[list[Acl], str]] = {
        # ingest: readings (one shared-subscription group of workers), profiles; error reports
        "ingest": (_read(*_shared("ingest", *telemetry, native), profiles)
                   + _send(f"{r}/devices/+/errors"), "ingest: store readings, report errors"),
        "rules": (_read(*_shared("rules", *telemetry, native), status, profiles)
                  + _send(f"{r}/alerts/#"), "rules: raise alerts from readings"),
        # api: follows everything for the screens; control commands, profiles of registered
        # devices, and replays of recordings (readings, statuses, alerts)
        "api": (_read(everything)
                + _send(f"{r}/control/#", profiles, *telemetry, status, f"{r}/alerts/#"),
                "api: screens, device registration, control, replays"),
        # simulators: readings and statuses (also wills) of the simulated devices; commands
        # in, retained state out
        "simulators": (_read(f"{r}/control/#")
                       + _send(*telemetry, status, f"{r}/control/state"),
                       "simulators: the simulated city"),
        "recorder": (_read(everything) + _send(everything), "recorder: record and replay"),
        "admin": (_read(f"{CONTROL_TOPIC}/#") + _send(f"{CONTROL_TOPIC}/#"),
                  "manage accounts on the dynamic security plugin"),
    }
    # ingest, rules and the api read the device registry before anything else, and know it
    # is complete when their own marker comes back (broker.registrysync).
    for name in ("ingest", "rules", "api"):
        sync = f"{r}/services/{name}/sync/+"
        acls[name][0].extend(_read(sync) + _send(sync))
    return {name: Role(rolename=name, textname=text, acls=tuple(a))
            for name, (a, text) in acls.items()}


def service_account_roles(service: str) -> tuple[str, ...]:
    """The roles of a service account: the api also manages device accounts."""
    return (service, "admin") if service == "api" else (service,)


# --- the initial configuration file ---------------------------------------------------------

class PasswordHash(BaseModel):
    """A password as the plugin stores it: PBKDF2-HMAC-SHA512, each part base64."""

    model_config = ConfigDict(frozen=True)

    password: str = Field(description="the 64-byte derived key, base64")
    salt: str = Field(description="12 random bytes, base64")
    iterations: int


def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = HASH_ITERATIONS) -> PasswordHash:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"the plugin takes a salt of exactly {SALT_BYTES} bytes")
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return PasswordHash(password=base64.b64encode(key).decode(),
                        salt=base64.b64encode(salt).decode(), iterations=iterations)


def verify_password(password: str, stored: PasswordHash) -> bool:
    salt = base64.b64decode(stored.salt)
    again = hash_password(password, salt, stored.iterations)
    return secrets.compare_digest(again.password, stored.password)


def check_password(name: str, password: str | None) -> str:
    """``password`` if it is long enough for a broker account; else ValueError naming ``name``
    (the variable or field it came from)."""
    if not password:
        raise ValueError(f"{name} is not set")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"{name} is too short ({len(password)} characters, at least "
                         f"{MIN_PASSWORD_CHARS})")
    return password


def initial_config(root: str = DEFAULT_ROOT, accounts: Mapping[str, str] | None = None) -> \
        dict[str, Any]:
    """A complete ``dynamic-security.json``: every service role, an account for each service
    in ``accounts`` (service name -> password), and default access denying publishing,
    subscribing and receiving. Device accounts are added later, on the running broker."""
    accounts = accounts or {}
    unknown = sorted(set(accounts) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service account(s) {', '.join(unknown)}; known: "
                         f"{', '.join(SERVICES)}")
    clients = []
    for service in SERVICES:
        if service not in accounts:
            continue
        hashed = hash_password(check_password(f"the {service} password", accounts[service]))
        clients.append({"username": service, "textname": f"smartcity {service}",
                        **hashed.model_dump(),
                        "roles": [{"rolename": role, "priority": 0}
                                  for role in service_account_roles(service)]})
    return {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                             "subscribe": False, "unsubscribe": True},
        "clients": clients,
        "groups": [],
        "roles": [role.as_json() for role in service_roles(root).values()],
    }


def write_initial_config(path: Path, root: str = DEFAULT_ROOT,
                         accounts: Mapping[str, str] | None = None, *,
                         force: bool = False) -> Path:
    """Write :func:`initial_config` to ``path``, readable by its owner only. An existing file
    holds the accounts issued since (the broker saves every change to it): it is kept, with
    FileExistsError, unless ``force``."""
    body = orjson.dumps(initial_config(root, accounts), option=orjson.OPT_INDENT_2)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not force:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def password_variable(service: str) -> str:
    return f"SMARTCITY_BROKER_{service.upper()}_PASSWORD"


def init_from_env(path: Path, root: str, environ: Mapping[str, str], *,
                  force: bool = False) -> bool:
    """``smartcity broker init``: write the initial file with each service's password from
    ``SMARTCITY_BROKER_<SERVICE>_PASSWORD``; False (and nothing written) if the file exists
    and not ``force``. ContractError naming the variable for a missing or weak password."""
    accounts = {}
    for service in SERVICES:
        variable = password_variable(service)
        try:
            accounts[service] = check_password(variable, environ.get(variable))
        except ValueError as e:
            raise ContractError("cannot create the broker accounts",
                                [FieldProblem(variable, str(e).removeprefix(variable + " "))]
                                ) from None
    try:
        write_initial_config(path, check_root(root), accounts, force=force)
    except FileExistsError:
        return False
    return True


# --- the admin client -----------------------------------------------------------------------

class DynSecError(RuntimeError):
    """The broker refused an account command; the message is the plugin's own error text
    (``Client not found``, ``Role already exists``, ...) or says what was not authorised."""

    def __init__(self, command: str, error: str) -> None:
        self.command = command
        self.error = error
        super().__init__(f"{command}: {error}")


class DynSecUnavailable(RuntimeError):
    """The broker is unreachable, refused the admin account, dropped the connection, or its
    dynamic security plugin did not answer in time: the command may be tried again later."""


class DeviceCredentials(BaseModel):
    """What a device logs in with. The password is shown once: the broker keeps only its
    hash."""

    model_config = ConfigDict(frozen=True)

    username: str
    # The one MQTT client id the broker takes with this account: the username. A device can
    # then never connect as a service, or as another device, and take over its session.
    client_id: str = ""
    password: str = Field(repr=False)


def _created_role(role: Role) -> dict[str, Any]:
    return {"command": "createRole", **role.as_json()}


class DynSecAdmin:
    """Manages exhibitor device accounts on a running broker, through the plugin's control
    topic ``$CONTROL/dynamic-security/v1`` (answers on ``.../v1/response``).

    ``settings.url`` carries an account with the ``admin`` role (the api's, say:
    ``mqtt://api:PASSWORD@broker:1883``); ``settings.root`` is the topic root the device roles
    are built for. Synchronous: every method waits for the broker's answer, at most
    ``timeout_s`` (connecting included), so call it from a worker thread in async code. Use it
    as a context manager (``with DynSecAdmin(settings) as admin: ...``), or call
    :meth:`connect` and :meth:`close`.

    Every method raises :class:`DynSecError` when the broker refuses (with the plugin's text)
    and :class:`DynSecUnavailable` when it cannot be reached or does not answer in time; ids
    are checked with :func:`smartcity.ids.check_id` (InvalidId) before anything is sent.
    """

    def __init__(self, settings: MqttSettings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._client: mqtt.Client | None = None
        self._changed = threading.Condition()
        self._connack: Any = None
        self._dropped: Any = None
        self._subacks: dict[int, list[Any]] = {}
        self._pubacks: dict[int, Any] = {}
        self._responses: dict[str, dict[str, Any]] = {}

    # -- connection ---------------------------------------------------------------------

    def connect(self) -> Self:
        s = self.settings
        client = new_client(s, role="dynsec")
        client.connect_timeout = self.timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        try:
            connect(client, s)
        except OSError as e:
            raise DynSecUnavailable(f"cannot reach the broker at {s.host}:{s.port}: {e}") from None
        self._client = client
        client.loop_start()
        try:
            self._wait(lambda: self._connack is not None, "the broker's answer to connecting")
            if self._connack.is_failure:
                raise DynSecUnavailable(f"the broker refused the account {s.username!r}: "
                                        f"{self._connack}")
            result, mid = client.subscribe(RESPONSE_TOPIC, qos=1)
            self._check_sent(result)
            assert mid is not None
            self._wait(lambda: mid in self._subacks, "the subscription to the answers")
            reason = self._subacks[mid][0]
            if reason.is_failure:
                raise DynSecError("subscribe", f"the account {s.username!r} may not manage "
                                               f"accounts ({reason} on {RESPONSE_TOPIC})")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------

    def execute(self, *commands: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message and return the plugin's responses in order; a
        refused command's response holds ``error`` (nothing is raised for it here)."""
        client = self._client
        if client is None:
            raise DynSecUnavailable("not connected: use DynSecAdmin as a context manager or "
                                    "call connect() first")
        ids = [uuid.uuid4().hex for _ in commands]
        body = {"commands": [{**c, "correlationData": i}
                             for c, i in zip(commands, ids, strict=True)]}
        info = client.publish(CONTROL_TOPIC, orjson.dumps(body), qos=1)
        self._check_sent(info.rc)
        names = ", ".join(str(c.get("command")) for c in commands)
        self._wait(lambda: info.mid in self._pubacks, f"the broker to take {names}")
        reason = self._pubacks.pop(info.mid)
        if reason.is_failure:
            raise DynSecError(names, f"the account {self.settings.username!r} may not manage "
                                     f"accounts ({reason} on {CONTROL_TOPIC})")
        self._wait(lambda: all(i in self._responses for i in ids),
                   f"the dynamic security plugin to answer {names} (is it loaded?)")
        return [self._responses.pop(i) for i in ids]

    def run(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """One command; its ``data`` (empty if none), or :class:`DynSecError`."""
        (response,) = self.execute(command)
        _raise_for(response)
        data: dict[str, Any] = response.get("data") or {}
        return data

    def add_device(self, device_id: str, domain: Domain | str) -> DeviceCredentials:
        """Create the device's role and its account ``dev-{device_id}`` with a fresh random
        password. :class:`DynSecError` if the broker already has either."""
        role = device_role(device_id, domain, self.settings.root)
        username = device_username(device_id)
        credentials = DeviceCredentials(username=username, client_id=username,
                                        password=secrets.token_urlsafe(24))
        made_role, made_client = self.execute(_created_role(role), {
            "command": "createClient", "username": credentials.username,
            "clientid": credentials.client_id,
            "password": credentials.password, "textname": f"exhibitor device {device_id}",
            "roles": [{"rolename": role.rolename, "priority": 0}]})
        if "error" in made_role or "error" in made_client:
            # No half-made account: undo what did get created.
            undo = [{"command": "deleteClient", "username": credentials.username}] \
                if "error" not in made_client else []
            undo += [{"command": "deleteRole", "rolename": role.rolename}] \
                if "error" not in made_role else []
            if undo:
                self.execute(*undo)
            _raise_for(made_role)
            _raise_for(made_client)
        return credentials

    def rotate_device(self, device_id: str) -> DeviceCredentials:
        """A new random password; the broker disconnects the device if it is connected, and
        takes only the new password from then on."""
        username = device_username(device_id)
        credentials = DeviceCredentials(username=username, client_id=username,
                                        password=secrets.token_urlsafe(24))
        self.run({"command": "setClientPassword", "username": credentials.username,
                  "password": credentials.password})
        return credentials

    def remove_device(self, device_id: str) -> bool:
        """Delete the device's account (the broker disconnects it if connected) and its role;
        False if there was neither."""
        responses = self.execute(
            {"command": "deleteClient", "username": device_username(device_id)},
            {"command": "deleteRole", "rolename": device_rolename(device_id)})
        for response in responses:
            if response.get("error") not in (None, "Client not found", "Role not found"):
                _raise_for(response)
        return any("error" not in r for r in responses)

    def list_devices(self) -> list[str]:
        """The ids of the devices that have an account, sorted."""
        data = self.run({"command": "listClients", "verbose": False, "count": -1})
        names: Iterable[str] = data.get("clients") or []
        return sorted(n[len(DEVICE_USER_PREFIX):] for n in names
                      if n.startswith(DEVICE_USER_PREFIX))

    # -- the network thread -------------------------------------------------------------

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: done() or self._dropped is not None,
                                          self.timeout_s):
                raise DynSecUnavailable(f"timed out after {self.timeout_s:g} s waiting for "
                                        f"{what}")
            if not done():
                raise DynSecUnavailable(f"the broker closed the connection ({self._dropped}) "
                                        f"while waiting for {what}")

    def _check_sent(self, result: int) -> None:
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise DynSecUnavailable(f"could not send to the broker: {mqtt.error_string(result)}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        with self._changed:
            self._connack = reason
            self._changed.notify_all()
        if reason.is_failure:
            client.disconnect()  # no retries with an account the broker refuses

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._changed:
            self._dropped = reason
            self._changed.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any],
                      properties: Any) -> None:
        with self._changed:
            self._subacks[mid] = reasons
            self._changed.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        with self._changed:
            self._pubacks[mid] = reason
            self._changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = orjson.loads(msg.payload)["responses"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        with self._changed:
            for response in responses if isinstance(responses, list) else []:
                if isinstance(response, dict) and isinstance(response.get("correlationData"),
                                                             str):
                    self._responses[response["correlationData"]] = response
            self._changed.notify_all()


def _raise_for(response: Mapping[str, Any]) -> None:
    if "error" in response:
        raise DynSecError(str(response.get("command")), str(response["error"]))
