"""The local stack's broker accounts: passwords generated once and kept in accounts.env, the
plugin's file written from them, and on later starts brought up to date (service roles for
the topic root, passwords as the accounts file has them) with the device accounts kept;
proven by logging in to a real secured Mosquitto."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import orjson
import pytest

from broker.dynsec import SERVICES, DynSecAdmin, password_variable, service_roles
from broker.localaccounts import (
    AccountsError,
    BrokerAccounts,
    parse_accounts,
    prepare_broker_accounts,
)
from launcher.servers import Mosquitto, start_with_retry
from smartcity.settings import MqttSettings
from tests.secured_broker import NOT_AUTHORIZED, Session

pytestmark = pytest.mark.servers

ODD_PASSWORD = "p@ss:w/rd #1 with 'quotes' & %41"


def start_broker(workdir: Path, accounts: BrokerAccounts) -> Mosquitto:
    server = start_with_retry(Mosquitto, workdir, dynsec_config=accounts.dynsec_file)
    assert isinstance(server, Mosquitto)
    return server


def login(server: Mosquitto, username: str | None, password: str | None) -> Session:
    return Session(server.port, username, password)


def set_password(accounts_file: Path, service: str, password: str) -> None:
    variable = password_variable(service)
    lines = [f"{variable}={shlex.quote(password)}" if line.startswith(f"{variable}=") else line
             for line in accounts_file.read_text().splitlines()]
    accounts_file.write_text("\n".join(lines) + "\n")


def test_first_start_generates_private_passwords_for_every_service(tmp_path: Path) -> None:
    accounts = prepare_broker_accounts(tmp_path / "broker", "city")
    assert sorted(accounts.passwords) == sorted(SERVICES)
    assert all(len(p) >= 32 for p in accounts.passwords.values())
    assert len(set(accounts.passwords.values())) == len(SERVICES)
    for path in (accounts.accounts_file, accounts.dynsec_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(accounts.directory.stat().st_mode) == 0o700
    text = accounts.accounts_file.read_text()
    assert parse_accounts(text, "accounts.env") == accounts.passwords

    again = prepare_broker_accounts(tmp_path / "broker", "city")
    assert again.passwords == accounts.passwords
    assert accounts.accounts_file.read_text() == text


def test_a_restart_keeps_device_accounts_and_follows_the_accounts_file_and_root(
        tmp_path: Path, root: str) -> None:
    broker_dir = tmp_path / "broker"
    first = prepare_broker_accounts(broker_dir, "old")
    server = start_broker(tmp_path / "run1", first)
    try:
        with DynSecAdmin(MqttSettings(url=first.url("admin", server.port), root="old")) as admin:
            device = admin.add_device("booth-a3", "flood")
    finally:
        server.stop()  # the plugin has saved the device account into the file

    # An engineer sets passwords of their own; the topic root changes.
    set_password(first.accounts_file, "ingest", "a-new-ingest-password")
    set_password(first.accounts_file, "recorder", ODD_PASSWORD)
    second = prepare_broker_accounts(broker_dir, root)
    assert second.passwords["ingest"] == "a-new-ingest-password"
    assert second.passwords["recorder"] == ODD_PASSWORD
    saved = orjson.loads(second.dynsec_file.read_bytes())
    roles = {r["rolename"]: r for r in saved["roles"]}
    assert {a["topic"] for a in roles["ingest"]["acls"]} == \
        {a.topic for a in service_roles(root)["ingest"].acls}
    assert "device-booth-a3" in roles
    unchanged = second.dynsec_file.read_bytes()
    prepare_broker_accounts(broker_dir, root)
    assert second.dynsec_file.read_bytes() == unchanged  # nothing to bring up to date

    server = start_broker(tmp_path / "run2", second)
    try:
        with login(server, "ingest", "a-new-ingest-password") as ingest:
            assert ingest.connected
            assert ingest.subscribe(f"$share/ingest/{root}/+/+/telemetry") == [1]
        with login(server, "ingest", first.passwords["ingest"]) as old:
            assert old.refused == NOT_AUTHORIZED
        recorder = MqttSettings(url=second.url("recorder", server.port))
        assert recorder.password == ODD_PASSWORD
        with login(server, recorder.username, recorder.password) as session:
            assert session.connected
            assert session.subscribe(f"{root}/#") == [1]
        with login(server, device.username, device.password) as booth:
            assert booth.connected
        with login(server, None, None) as anonymous:
            assert anonymous.refused == NOT_AUTHORIZED
    finally:
        server.stop()


def test_an_account_missing_from_the_file_is_generated_and_the_others_kept(
        tmp_path: Path) -> None:
    first = prepare_broker_accounts(tmp_path, "city")
    variable = password_variable("admin")
    first.accounts_file.write_text("".join(
        line + "\n" for line in first.accounts_file.read_text().splitlines()
        if not line.startswith(variable)))
    second = prepare_broker_accounts(tmp_path, "city")
    assert {s: p for s, p in second.passwords.items() if s != "admin"} == \
        {s: p for s, p in first.passwords.items() if s != "admin"}
    assert second.passwords["admin"] != first.passwords["admin"]
    server = start_broker(tmp_path / "run", second)
    try:
        with login(server, "admin", second.passwords["admin"]) as admin:
            assert admin.connected
    finally:
        server.stop()


@pytest.mark.parametrize(("text", "words"), [
    ("SMARTCITY_BROKER_API_PASSWORD=short\n", "accounts.env: SMARTCITY_BROKER_API_PASSWORD is "
                                              "too short (5 characters, at least 16)"),
    ("# comment\n\nexport X=1\n", "accounts.env:3: expected NAME=value"),
    ("SMARTCITY_BROKER_API_PASSWORD='unterminated\n", "accounts.env:1: No closing quotation"),
])
def test_a_bad_accounts_file_is_refused_naming_the_problem(text: str, words: str) -> None:
    with pytest.raises(AccountsError) as refused:
        parse_accounts(text, "accounts.env")
    assert words in str(refused.value)


def test_the_accounts_file_reads_as_a_shell_does() -> None:
    text = ("# the services' passwords\n"
            f"{password_variable('api')}={shlex.quote(ODD_PASSWORD)}\n"
            f"{password_variable('rules')}=0123456789abcdef0123  # trailing comment\n"
            "SOMETHING_ELSE=ignored\n")
    assert parse_accounts(text, "accounts.env") == {"api": ODD_PASSWORD,
                                                    "rules": "0123456789abcdef0123"}


def test_a_broken_plugin_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    accounts = prepare_broker_accounts(tmp_path, "city")
    accounts.dynsec_file.write_text("{not json")
    with pytest.raises(AccountsError, match="cannot read the broker accounts"):
        prepare_broker_accounts(tmp_path, "city")
    assert accounts.dynsec_file.read_text() == "{not json"
