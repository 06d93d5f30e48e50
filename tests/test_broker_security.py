"""Broker accounts on Mosquitto's dynamic security plugin: the roles as data, the initial
accounts file and ``smartcity broker init``, and then, on a real secured Mosquitto, what a
device and each service may and may not do, rotation and revocation."""

from __future__ import annotations

import base64
import json
import os
import pwd
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from broker.dynsec import (
    HASH_BYTES,
    HASH_ITERATIONS,
    SALT_BYTES,
    SERVICES,
    AclType,
    DeviceCredentials,
    DynSecAdmin,
    DynSecError,
    DynSecUnavailable,
    PasswordHash,
    device_role,
    hash_password,
    init_from_env,
    initial_config,
    password_variable,
    service_roles,
    verify_password,
    write_initial_config,
)
from ingest.edgeservice import make_service
from launcher.servers import (
    Influxd,
    Mosquitto,
    ServerError,
    find_binary,
    find_dynsec_plugin,
    free_port,
    tcp_answers,
)
from simulators.runner import run as run_simulator
from smartcity.city import load_city
from smartcity.control import command_topics, state_topic
from smartcity.errors import ContractError, InvalidId, InvalidTopic
from smartcity.settings import MqttSettings, SimulatorSettings
from smartcity.topics import (
    profile_filter,
    status_filter,
    status_topic,
    telemetry_filter,
    telemetry_topic,
    value_filter,
    value_topic,
)
from storage.influx import InfluxClient
from tests.ingest_helpers import flood, fresh_database, ingest_settings
from tests.mqtt import wait_for
from tests.secured_broker import NOT_AUTHORIZED, SecuredBroker, Session, start_secured

PUB = AclType.PUBLISH_SEND
RECV = AclType.PUBLISH_RECEIVE
SUB = AclType.SUBSCRIBE_PATTERN
SUB_LITERAL = AclType.SUBSCRIBE_LITERAL
PASSWORDS = {s: f"{s}-password-of-16+" for s in SERVICES}

# --- pure: the roles ------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


DEVICE = device_role("flood-d1", "flood", "city")


@pytest.mark.parametrize(("acltype", "topic", "allowed"), [
    (PUB, "city/flood/flood-d1/telemetry", True),
    (PUB, "city/flood/flood-d1/telemetry/water_level_cm", True),
    (PUB, "city/flood/flood-d1/status", True),
    (PUB, "city/flood/flood-d2/telemetry", False),          # another device
    (PUB, "city/home/flood-d1/telemetry", False),           # another domain
    (PUB, "city/flood/flood-d1/telemetry/a/b", False),
    (PUB, "city/flood/flood-d1/other", False),
    (PUB, "city/devices/flood-d1/errors", False),           # its errors come from ingest
    (PUB, "city/devices/flood-d1/profile", False),          # its profile comes from the api
    (PUB, "city/alerts/flood/flood-d1", False),
    (PUB, "city/control/scenario/start", False),
    (PUB, "other/flood/flood-d1/telemetry", False),         # another root
    (PUB, "$CONTROL/dynamic-security/v1", False),
    (SUB_LITERAL, "city/devices/flood-d1/errors", True),
    (SUB_LITERAL, "city/devices/flood-d2/errors", False),
    (SUB_LITERAL, "city/devices/+/errors", False),
    (SUB, "city/devices/flood-d1/errors", False),           # literal only: no patterns at all
    (SUB, "city/#", False),
    (SUB_LITERAL, "city/flood/flood-d1/telemetry", False),
    (RECV, "city/devices/flood-d1/errors", True),
    (RECV, "city/devices/flood-d2/errors", False),
    (RECV, "city/flood/flood-d2/telemetry", False),
])
def test_a_device_role_publishes_its_own_topics_and_reads_its_own_errors_only(
        acltype: AclType, topic: str, allowed: bool) -> None:
    assert DEVICE.permits(acltype, topic) is allowed


def test_a_device_role_is_one_role_per_device_without_username_patterns() -> None:
    assert DEVICE.rolename == "device-flood-d1"
    assert all("%" not in acl.topic and acl.allow for acl in DEVICE.acls)
    assert {(a.acltype, a.topic) for a in DEVICE.acls} == {
        (PUB, "city/flood/flood-d1/telemetry"), (PUB, "city/flood/flood-d1/telemetry/+"),
        (PUB, "city/flood/flood-d1/status"), (PUB, "city/dev/flood-d1/#"),
        (SUB_LITERAL, "city/devices/flood-d1/errors"),
        (RECV, "city/devices/flood-d1/errors")}
    assert device_role("x", "home", "test-1/city").permits(PUB, "test-1/city/home/x/status")
    # its own prefix, for firmware that publishes where it publishes; nobody else's
    assert DEVICE.permits(PUB, "city/dev/flood-d1/tele/booth/SENSOR")
    assert not DEVICE.permits(PUB, "city/dev/flood-d2/tele/booth/SENSOR")
    assert not DEVICE.permits(PUB, "tele/booth/SENSOR")


@pytest.mark.parametrize("device_id", ["+", "#", "a/b", "A1", "", "x" * 65, "a\n", "$share"])
def test_a_device_id_that_could_widen_a_role_is_refused(device_id: str) -> None:
    with pytest.raises(InvalidId):
        device_role(device_id, "flood")


def test_an_unknown_domain_or_bad_root_is_refused() -> None:
    with pytest.raises(InvalidTopic):
        device_role("d1", "sewer")
    with pytest.raises(InvalidTopic):
        device_role("d1", "flood", "city/#")


ROOT = "city"
ROLES = service_roles(ROOT)


def test_every_service_may_subscribe_to_what_its_code_subscribes_to() -> None:
    ingest, rules, api = ROLES["ingest"], ROLES["rules"], ROLES["api"]
    simulators, recorder = ROLES["simulators"], ROLES["recorder"]
    for f in (telemetry_filter(ROOT, "ingest"), value_filter(ROOT, "ingest"),
              telemetry_filter(ROOT), value_filter(ROOT), profile_filter(ROOT)):
        assert ingest.permits(SUB, str(f)), f
    for f in (telemetry_filter(ROOT), value_filter(ROOT), telemetry_filter(ROOT, "rules"),
              value_filter(ROOT, "rules"), status_filter(ROOT), profile_filter(ROOT)):
        assert rules.permits(SUB, str(f)), f
    for read in (status_filter(ROOT), state_topic(ROOT), f"{ROOT}/+/+/telemetry",
                 f"{ROOT}/alerts/+/+", profile_filter(ROOT), f"{ROOT}/#"):
        assert api.permits(SUB, str(read)) and recorder.permits(SUB, str(read)), read
    for topic in command_topics(ROOT):
        assert simulators.permits(SUB, topic) and simulators.permits(RECV, topic)
    # What they subscribe to, they also receive (receiving is denied by default too).
    assert ingest.permits(RECV, "city/flood/x/telemetry")
    assert ingest.permits(RECV, "city/flood/x/telemetry/water_level_cm")
    assert ingest.permits(RECV, "city/devices/x/profile")
    assert rules.permits(RECV, "city/flood/x/status")
    assert api.permits(RECV, "city/alerts/flood/a1")


def test_every_service_may_publish_what_its_code_publishes_and_no_more() -> None:
    ingest, rules, api = ROLES["ingest"], ROLES["rules"], ROLES["api"]
    simulators, recorder = ROLES["simulators"], ROLES["recorder"]
    reading, status = "city/flood/x/telemetry", "city/flood/x/status"
    assert ingest.permits(PUB, "city/devices/x/errors")
    assert rules.permits(PUB, "city/alerts/flood/a1")
    assert simulators.permits(PUB, str(telemetry_topic("flood", "x", ROOT)))
    assert simulators.permits(PUB, str(status_topic("flood", "x", ROOT)))
    assert simulators.permits(PUB, str(state_topic(ROOT)))
    for topic in ("city/control/scenario/start", "city/devices/x/profile", reading,
                  str(value_topic("flood", "x", "water_level_cm", ROOT)), status,
                  "city/alerts/flood/a1"):
        assert api.permits(PUB, topic), topic
    assert recorder.permits(PUB, reading) and recorder.permits(PUB, "city/alerts/flood/a1")

    assert not ingest.permits(PUB, reading) and not ingest.permits(PUB, "city/alerts/flood/a")
    assert not rules.permits(PUB, reading) and not rules.permits(PUB, "city/control/pause")
    assert not simulators.permits(PUB, "city/alerts/flood/a1")
    assert not simulators.permits(PUB, "city/control/pause")
    assert not simulators.permits(PUB, "city/devices/x/errors")
    assert not ingest.permits(SUB, "city/#") and not simulators.permits(SUB, "city/#")
    assert not ingest.permits(SUB, "$share/other/city/+/+/telemetry")
    for name, role in ROLES.items():
        assert role.permits(PUB, "$CONTROL/dynamic-security/v1") is (name == "admin"), name
        assert not role.permits(PUB, "other/flood/x/telemetry"), name


# --- pure: the accounts file ------------------------------------------------------------------


def test_the_password_hash_is_the_one_the_plugin_makes() -> None:
    # Made by `mosquitto_ctrl dynsec init` (Mosquitto 2.0.11) for the password
    # "secretpassword1234": PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key, base64.
    salt = base64.b64decode("OLoIhOs47SHH2gZ7")
    made = hash_password("secretpassword1234", salt, 101)
    assert made.password == ("GnSbmVlC9wrydzN2L3hXWNpQWWUqfp1uXF2NuwIYQn6OcuM4x/nmFvaBZVkAGSxZ"
                             "Qhw9jkJ1rZBah2l41AUqcQ==")
    assert made.salt == "OLoIhOs47SHH2gZ7" and made.iterations == 101

    fresh = hash_password("another-password-1")
    assert len(base64.b64decode(fresh.salt)) == SALT_BYTES
    assert len(base64.b64decode(fresh.password)) == HASH_BYTES
    assert fresh.iterations == HASH_ITERATIONS
    assert fresh.salt != hash_password("another-password-1").salt
    assert verify_password("another-password-1", fresh)
    assert not verify_password("another-password-2", fresh)
    with pytest.raises(ValueError, match="12 bytes"):
        hash_password("x", b"short")


def test_the_initial_config_holds_every_service_account_and_denies_by_default() -> None:
    config = initial_config("city", PASSWORDS)
    assert config["defaultACLAccess"] == {"publishClientSend": False,
                                          "publishClientReceive": False,
                                          "subscribe": False, "unsubscribe": True}
    clients = {c["username"]: c for c in config["clients"]}
    assert set(clients) == set(SERVICES)
    assert {r["rolename"] for r in clients["api"]["roles"]} == {"api", "admin"}
    for name in ("ingest", "rules", "simulators", "recorder", "admin"):
        assert [r["rolename"] for r in clients[name]["roles"]] == [name]
    for name, client in clients.items():
        stored = PasswordHash(password=client["password"], salt=client["salt"],
                              iterations=client["iterations"])
        assert verify_password(PASSWORDS[name], stored)
    assert {r["rolename"] for r in config["roles"]} == set(SERVICES)
    text = json.dumps(config)
    assert not any(pw in text for pw in PASSWORDS.values())


def test_the_initial_config_refuses_unknown_accounts_and_weak_passwords() -> None:
    with pytest.raises(ValueError, match="unknown service account"):
        initial_config("city", {"mallory": "x" * 20})
    with pytest.raises(ValueError, match="rules password is too short"):
        initial_config("city", {**PASSWORDS, "rules": "short"})


def test_the_file_is_owner_only_and_not_overwritten_unless_forced(tmp_path: Path) -> None:
    path = write_initial_config(tmp_path / "data" / "dynamic-security.json", "city", PASSWORDS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_initial_config(path, "city", PASSWORDS)
    assert path.read_bytes() == first
    write_initial_config(path, "exhibit", PASSWORDS, force=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b'"exhibit/#"' in path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["dynamic-security.json"]


def env_passwords(**changes: str | None) -> dict[str, str]:
    env = {password_variable(s): pw for s, pw in PASSWORDS.items()}
    for key, value in changes.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    return env


@pytest.mark.parametrize(("changes", "variable", "problem"), [
    ({"SMARTCITY_BROKER_ADMIN_PASSWORD": None}, "SMARTCITY_BROKER_ADMIN_PASSWORD", "not set"),
    ({"SMARTCITY_BROKER_INGEST_PASSWORD": ""}, "SMARTCITY_BROKER_INGEST_PASSWORD", "not set"),
    ({"SMARTCITY_BROKER_RECORDER_PASSWORD": "fifteen-chars.."},
     "SMARTCITY_BROKER_RECORDER_PASSWORD", "too short (15 characters, at least 16)"),
])
def test_broker_init_refuses_a_missing_or_weak_password_naming_the_variable(
        tmp_path: Path, changes: dict[str, str | None], variable: str, problem: str) -> None:
    path = tmp_path / "dynamic-security.json"
    with pytest.raises(ContractError) as refused:
        init_from_env(path, "city", env_passwords(**changes))
    assert refused.value.problems[0].field == variable
    assert problem in refused.value.problems[0].message
    assert not path.exists()


def test_smartcity_broker_init_writes_once_and_keeps_the_file(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    path = tmp_path / "data" / "dynamic-security.json"
    command = [sys.executable, "-m", "launcher.cli", "broker", "init", "--config", str(path)]
    env = {**subprocess_env, **env_passwords()}

    made = subprocess.run([*command, "--root", "exhibit"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "exhibit" in made.stdout
    written = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {c["username"] for c in orjson.loads(written)["clients"]} == set(SERVICES)

    kept = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert kept.returncode == 0 and "kept" in kept.stdout
    assert path.read_bytes() == written

    weak = {**env, "SMARTCITY_BROKER_API_PASSWORD": "short"}
    refused = subprocess.run([*command, "--force"], env=weak, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2
    assert "SMARTCITY_BROKER_API_PASSWORD" in refused.stderr
    assert path.read_bytes() == written


# --- on a real secured Mosquitto ------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    broker = start_secured(tmp_path_factory.mktemp("secured"), f"sec-{uuid.uuid4().hex[:8]}")
    yield broker
    broker.server.stop()


@pytest.fixture
def admin(secured: SecuredBroker) -> Iterator[DynSecAdmin]:
    """The api's account, which manages device accounts."""
    with DynSecAdmin(secured.settings("api")) as a:
        yield a


@pytest.fixture
def device_id() -> str:
    return f"dev-{uuid.uuid4().hex[:8]}"


def device_session(secured: SecuredBroker, credentials: DeviceCredentials,
                   **options: object) -> Session:
    """The device's session, under the one client id its account is bound to."""
    return secured.session(credentials.username, credentials.password,
                           client_id=credentials.client_id, **options)


@pytest.mark.servers
def test_the_secured_profile_loads_the_plugin_and_takes_no_anonymous_client(
        secured: SecuredBroker) -> None:
    config = secured.server.config_path.read_text()
    assert "allow_anonymous false" in config
    assert f"plugin {find_dynsec_plugin()}" in config
    assert "max_packet_size 262144" in config  # broker/conf.d, shared by every profile
    with secured.session() as anonymous:
        assert anonymous.refused == NOT_AUTHORIZED
    with secured.session("ingest", "not-the-password-at-all") as wrong:
        assert wrong.refused == NOT_AUTHORIZED
    with secured.session("nobody", "some-password-1234567") as unknown:
        assert unknown.refused == NOT_AUTHORIZED
    with secured.session("ingest") as right:
        assert right.refused is None and right.connected


@pytest.mark.servers
def test_the_secured_profile_refuses_to_start_without_its_accounts_file(tmp_path: Path) -> None:
    server = Mosquitto(workdir=tmp_path, port=free_port(), dynsec_config=tmp_path / "none.json")
    with pytest.raises(ServerError, match="smartcity broker init --config"):
        server.start()
    assert not server.running()


@pytest.mark.servers
def test_a_device_publishes_its_readings_and_status_and_a_service_receives_them(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    root = secured.root
    credentials = admin.add_device(device_id, "flood")
    assert credentials.username == f"dev-{device_id}" and len(credentials.password) >= 32
    assert credentials.password not in repr(credentials)
    assert device_id in admin.list_devices()
    own = f"{root}/flood/{device_id}"
    with secured.session("ingest") as ingest, secured.session("rules") as rules:
        assert ingest.subscribe(str(telemetry_filter(root, "ingest")),
                                str(value_filter(root, "ingest"))) == [1, 1]
        assert rules.subscribe(str(status_filter(root))) == [1]
        with device_session(secured, credentials) as device:
            assert device.publish(f"{own}/telemetry", flood(1)) == 0
            assert device.publish(f"{own}/telemetry/water_level_cm", b"12.5") == 0
            assert device.publish(f"{own}/status", b'{"state":"online"}', retain=True) == 0
        wait_for(lambda: len(ingest.messages) == 2, what="both readings at ingest")
        wait_for(lambda: rules.on(f"{own}/status"), what="the status at rules")
    assert [m.topic for m in ingest.messages] == [f"{own}/telemetry",
                                                  f"{own}/telemetry/water_level_cm"]


@pytest.mark.servers
def test_a_device_cannot_publish_as_another_device_or_anywhere_else(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    root = secured.root
    other = f"other-{device_id}"
    admin.add_device(other, "flood")
    credentials = admin.add_device(device_id, "flood")
    forbidden = [f"{root}/flood/{other}/telemetry", f"{root}/flood/{other}/status",
                 f"{root}/home/{device_id}/telemetry", f"{root}/flood/{device_id}/telemetry/a/b",
                 f"{root}/devices/{device_id}/errors", f"{root}/devices/{device_id}/profile",
                 f"{root}/devices/{other}/errors", f"{root}/alerts/flood/{device_id}",
                 f"{root}/control/scenario/start", f"{root}/control/state",
                 "$CONTROL/dynamic-security/v1"]
    marker = f"{root}/flood/{device_id}/telemetry"
    with secured.session("api") as watcher:
        assert watcher.subscribe(f"{root}/#") == [1]
        with device_session(secured, credentials) as device:
            # MQTT 5 tells the device: Mosquitto 2.0.11 answers 0x87 Not authorized.
            assert {t: device.publish(t, flood(1)) for t in forbidden} == \
                {t: NOT_AUTHORIZED for t in forbidden}
            assert device.publish(marker, flood(2)) == 0
            assert device.connected  # refused messages do not cost the connection
        wait_for(lambda: watcher.on(marker), what="the device's own reading")
    # (Retained messages of earlier tests arrive at the subscription, flagged as retained.)
    assert [m.topic for m in watcher.messages if not m.retain] == [marker]


@pytest.mark.servers
def test_a_device_reads_its_own_errors_and_nothing_else(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    root = secured.root
    other = f"other-{device_id}"
    credentials = admin.add_device(device_id, "home")
    own_errors = f"{root}/devices/{device_id}/errors"
    refused = [f"{root}/devices/{other}/errors", f"{root}/devices/+/errors", f"{root}/#",
               f"{root}/+/+/telemetry", f"{root}/home/{other}/telemetry",
               f"{root}/home/{device_id}/telemetry", f"{root}/alerts/#", f"{root}/control/#",
               f"$share/g/{own_errors}", "$CONTROL/dynamic-security/#", "#"]
    with device_session(secured, credentials) as device, secured.session("ingest") as ingest:
        assert device.subscribe(*refused) == [NOT_AUTHORIZED] * len(refused)
        assert device.subscribe(own_errors) == [1]
        assert ingest.publish(f"{root}/devices/{other}/errors", b'{"reason": "theirs"}') != \
            NOT_AUTHORIZED
        assert ingest.publish(own_errors, b'{"reason": "yours"}') == 0
        wait_for(lambda: device.messages, what="the device's own error report")
    assert [(m.topic, m.payload) for m in device.messages] == [(own_errors, b'{"reason": "yours"}')]


@pytest.mark.servers
def test_a_device_last_will_counts_only_on_its_own_status(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    root = secured.root
    other = f"other-{device_id}"
    credentials = admin.add_device(device_id, "traffic")
    own, theirs = f"{root}/traffic/{device_id}/status", f"{root}/traffic/{other}/status"
    with secured.session("rules") as rules:
        assert rules.subscribe(f"{root}/+/+/status") == [1]
        # A will naming another device: the broker takes the connection, drops the will.
        liar = device_session(secured, credentials, will=(theirs, b'{"state":"offline"}'))
        assert liar.connected
        liar.drop()
        honest = device_session(secured, credentials, will=(own, b'{"state":"offline"}'))
        honest.drop()
        wait_for(lambda: rules.on(own), what="the device's own last will")
    assert [m.topic for m in rules.messages if not m.retain] == [own]


@pytest.mark.servers
def test_rotation_disconnects_the_device_and_only_the_new_password_works(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    old = admin.add_device(device_id, "weather")
    device = device_session(secured, old)
    try:
        assert device.connected
        new = admin.rotate_device(device_id)
        assert new.username == old.username and new.password != old.password
        wait_for(lambda: device.disconnects, what="the device to be disconnected")
        # It tries again on its own with the password it has, and is refused.
        wait_for(lambda: len(device.connacks) == 2, what="the device's reconnection")
        assert device.connacks[1].value == NOT_AUTHORIZED
    finally:
        device.close()
    with device_session(secured, old) as again:
        assert again.refused == NOT_AUTHORIZED
    with device_session(secured, new) as renewed:
        assert renewed.connected
        own = f"{secured.root}/weather/{device_id}/telemetry"
        assert renewed.publish(own, b"{}") != NOT_AUTHORIZED


@pytest.mark.servers
def test_revocation_disconnects_the_device_and_refuses_it_afterwards(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    credentials = admin.add_device(device_id, "home")
    device = device_session(secured, credentials)
    try:
        assert admin.remove_device(device_id) is True
        wait_for(lambda: device.disconnects, what="the device to be disconnected")
        wait_for(lambda: len(device.connacks) == 2, what="the device's reconnection")
        assert device.connacks[1].value == NOT_AUTHORIZED
    finally:
        device.close()
    with device_session(secured, credentials) as again:
        assert again.refused == NOT_AUTHORIZED
    assert device_id not in admin.list_devices()
    assert admin.remove_device(device_id) is False
    # Its role went with it: the id can be registered again, in another domain.
    again_credentials = admin.add_device(device_id, "flood")
    with device_session(secured, again_credentials) as back:
        assert back.publish(f"{secured.root}/home/{device_id}/telemetry") == NOT_AUTHORIZED
        assert back.publish(f"{secured.root}/flood/{device_id}/telemetry") != NOT_AUTHORIZED


@pytest.mark.servers
def test_the_broker_refusals_come_back_as_dynsec_errors_and_leave_nothing_half_made(
        secured: SecuredBroker, admin: DynSecAdmin, device_id: str) -> None:
    first = admin.add_device(device_id, "flood")
    with pytest.raises(DynSecError, match="already exists"):
        admin.add_device(device_id, "home")
    with device_session(secured, first) as still:  # the existing account is untouched
        assert still.publish(f"{secured.root}/flood/{device_id}/status") != NOT_AUTHORIZED

    # A role left over with no account: refused, and no account is left behind either.
    leftover = f"left-{device_id}"
    admin.run({"command": "createRole", "rolename": f"device-{leftover}", "acls": []})
    with pytest.raises(DynSecError, match="Role already exists") as refused:
        admin.add_device(leftover, "flood")
    assert refused.value.command == "createRole"
    assert leftover not in admin.list_devices()
    assert admin.remove_device(leftover) is True  # clears the role; then it can be added
    admin.add_device(leftover, "flood")

    with pytest.raises(DynSecError, match="Client not found"):
        admin.rotate_device(f"never-{device_id}")
    before = admin.list_devices()
    for bad in ("+", "a/#", "Dev", "x" * 65):
        with pytest.raises(InvalidId):
            admin.add_device(bad, "flood")
        with pytest.raises(InvalidId):
            admin.rotate_device(bad)
        with pytest.raises(InvalidId):
            admin.remove_device(bad)
    with pytest.raises(InvalidTopic):
        admin.add_device(f"new-{device_id}", "sewer")
    assert admin.list_devices() == before


@pytest.mark.servers
def test_device_accounts_are_saved_to_the_owner_only_file_and_survive_a_restart(
        tmp_path: Path) -> None:
    broker = start_secured(tmp_path, "city")
    try:
        with DynSecAdmin(broker.settings("api")) as admin:
            credentials = admin.add_device("flood-kept", "flood")
        config = broker.server.dynsec_config
        assert config is not None and stat.S_IMODE(config.stat().st_mode) == 0o600
        saved = {c["username"] for c in orjson.loads(config.read_bytes())["clients"]}
        assert saved == {*SERVICES, "dev-flood-kept"}
        broker.server.stop()
        broker.server.start()
        with device_session(broker, credentials) as device:
            assert device.publish("city/flood/flood-kept/telemetry") != NOT_AUTHORIZED
            assert device.publish("city/home/flood-kept/telemetry") == NOT_AUTHORIZED
    finally:
        broker.server.stop()


@pytest.mark.servers
def test_the_admin_account_manages_devices_too(secured: SecuredBroker, device_id: str) -> None:
    with DynSecAdmin(secured.settings("admin")) as admin:
        admin.add_device(device_id, "flood")
        assert device_id in admin.list_devices()
        assert admin.remove_device(device_id)


@pytest.mark.servers
@pytest.mark.parametrize("service", ["ingest", "rules", "simulators", "recorder"])
def test_other_service_accounts_cannot_manage_accounts(secured: SecuredBroker,
                                                       service: str) -> None:
    with pytest.raises(DynSecError, match="may not manage accounts"):
        DynSecAdmin(secured.settings(service), timeout_s=5).connect()
    # Nor by publishing a command blind: the broker refuses it with 0x87.
    with secured.session(service) as session:
        command = orjson.dumps({"commands": [{"command": "listClients"}]})
        assert session.publish("$CONTROL/dynamic-security/v1", command) == NOT_AUTHORIZED


@pytest.mark.servers
def test_an_unreachable_or_unanswering_broker_is_unavailable(
        secured: SecuredBroker, mosquitto: Mosquitto) -> None:
    closed = MqttSettings(url=f"mqtt://api:pw@127.0.0.1:{free_port()}")
    with pytest.raises(DynSecUnavailable, match="cannot reach the broker"):
        DynSecAdmin(closed, timeout_s=2).connect()
    with pytest.raises(DynSecUnavailable, match="refused the account 'api'"):
        DynSecAdmin(secured.settings("api", "wrong-password-0000"), timeout_s=5).connect()
    # The development broker has no plugin: nobody answers the command.
    with DynSecAdmin(MqttSettings(url=mosquitto.url), timeout_s=1) as no_plugin, \
            pytest.raises(DynSecUnavailable, match="is it loaded"):
        no_plugin.list_devices()


@pytest.mark.servers
def test_service_accounts_cannot_publish_beyond_their_service(secured: SecuredBroker) -> None:
    root = secured.root
    refused = {
        "ingest": [f"{root}/flood/x/telemetry", f"{root}/alerts/flood/a1",
                   f"{root}/control/pause"],
        "rules": [f"{root}/flood/x/telemetry", f"{root}/control/pause",
                  f"{root}/devices/x/errors"],
        "simulators": [f"{root}/alerts/flood/a1", f"{root}/control/pause",
                       f"{root}/devices/x/errors", f"{root}/devices/x/profile"],
    }
    for service, topics in refused.items():
        with secured.session(service) as session:
            assert [session.publish(t) for t in topics] == [NOT_AUTHORIZED] * len(topics)
    with secured.session("ingest") as ingest, secured.session("simulators") as simulators:
        assert ingest.subscribe(f"{root}/#", f"{root}/alerts/#") == [NOT_AUTHORIZED] * 2
        assert simulators.subscribe(f"{root}/+/+/telemetry") == [NOT_AUTHORIZED]


# --- services under their own accounts --------------------------------------------------------


@pytest.fixture
def influx_db(influxd: Influxd, secured: SecuredBroker) -> Iterator[InfluxClient]:
    with fresh_database(influxd.url, f"db-{secured.root}") as client:
        yield client


@pytest.mark.servers
@pytest.mark.parametrize(("edge", "device_id"), [("asyncio", "flood-thao-dien"),
                                                  ("paho", "flood-nguyen-huu-canh")])
def test_ingest_stores_a_device_reading_and_reports_its_errors_under_its_account(
        secured: SecuredBroker, admin: DynSecAdmin, influx_db: InfluxClient,
        tmp_path: Path, edge: str, device_id: str) -> None:
    root = secured.root  # device_id: a city device, ingest knows it
    credentials = admin.add_device(device_id, "flood")
    settings = ingest_settings(secured.settings("ingest"), influx_db.settings, tmp_path,
                               edge=edge)
    assert settings.share_group == "ingest"
    service = make_service(settings, load_city().registry())
    service.start()
    try:
        assert service.subscribed.wait(10)
        with device_session(secured, credentials) as device:
            assert device.subscribe(f"{root}/devices/{device_id}/errors") == [1]
            own = f"{root}/flood/{device_id}/telemetry"
            assert device.publish(own, flood(1, level=23.5)) == 0
            assert device.publish(own, b'{"ts": 1, "seq": 2, "water_level": 3}') == 0
            wait_for(lambda: service.stats.stored == 1, what="the reading stored")
            report = wait_for(lambda: device.messages, what="the error report")[0]
    finally:
        service.stop()
    series = influx_db.query('SELECT "water_level_cm", "device_id" FROM "flood"')
    assert [row[1:] for row in series[0].values] == [[23.5, device_id]]
    assert report.topic == f"{root}/devices/{device_id}/errors"
    assert orjson.loads(report.payload)["topic"] == own


@pytest.mark.servers
def test_the_simulators_publish_and_obey_control_under_their_account(
        secured: SecuredBroker) -> None:
    root = secured.root
    devices = {d.device_id for d in load_city().registry()}
    settings = SimulatorSettings(mqtt=secured.settings("simulators"), interval_s=0.5, seed=3)
    stop, result = threading.Event(), []
    with secured.session("api") as api:
        assert api.subscribe(f"{root}/+/+/telemetry", f"{root}/+/+/status",
                             str(state_topic(root))) == [1, 1, 1]
        thread = threading.Thread(target=lambda: result.append(
            run_simulator(settings, stop=stop, speed=10)))
        thread.start()
        try:
            def seen(kind: str) -> set[str]:
                return {m.topic.split("/")[-2] for m in list(api.messages)
                        if m.topic.endswith(kind)}

            wait_for(lambda: devices <= seen("/telemetry"), what="a reading of every device")
            wait_for(lambda: devices <= seen("/status"), what="every device online")
            # The api's account sends a command; the simulators' account receives it.
            assert api.publish(f"{root}/control/pause", b'{"id": "hold"}') == 0
            wait_for(lambda: any(b'"hold"' in m.payload and b'"paused":true' in m.payload
                                 for m in api.on(str(state_topic(root)))),
                     what="the simulator paused by the api's command")
        finally:
            stop.set()
            thread.join(15)
    assert result == [0]


@pytest.mark.servers
def test_the_exhibit_broker_profile_runs_secured_on_this_mosquitto(tmp_path: Path) -> None:
    """broker/mosquitto.conf as docker-compose uses it, with its container paths pointed here
    and its network listener on a loopback port."""
    port = free_port()
    data = tmp_path / "data"
    write_initial_config(data / "dynamic-security.json", "city", PASSWORDS)
    text = (REPO / "broker" / "mosquitto.conf").read_text()
    assert "listener 1883 0.0.0.0\nallow_anonymous false\n" in text
    assert "plugin_opt_config_file /mosquitto/data/dynamic-security.json" in text
    text = (text.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
            .replace("/usr/lib/mosquitto_dynamic_security.so", find_dynsec_plugin())
            .replace("/mosquitto/data/", f"{data}/")
            .replace("/mosquitto/config/conf.d", str(REPO / "broker" / "conf.d")))
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text + f"\nuser {pwd.getpwuid(os.getuid()).pw_name}\n")
    proc = subprocess.Popen([find_binary("mosquitto"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: tcp_answers(port), what="the exhibit broker")
        with Session(port) as anonymous:
            assert anonymous.refused == NOT_AUTHORIZED
        with Session(port, "simulators", PASSWORDS["simulators"]) as simulators:
            assert simulators.connected
            assert simulators.publish("city/alerts/flood/a1") == NOT_AUTHORIZED
    finally:
        proc.terminate()
        proc.wait(10)
