"""docker-compose.yml runs the whole exhibit. No container engine runs here, so this checks its
structure against the code: the services and their healthchecks, the image built from the
repo's Dockerfile, that every variable it sets is one a service reads (and the settings accept
the exhibit's values), each service's own broker account, the ports, and that every file it
mounts exists and matches what the code writes and reads."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from broker.dynsec import SERVICES, password_variable, service_roles
from launcher.cli import build_parser
from rules.settings import RulesSettings
from smartcity.settings import (
    ApiSettings,
    CommonSettings,
    InfluxSettings,
    IngestSettings,
    LiveSettings,
    MqttSettings,
    SimulatorSettings,
)

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES_ = COMPOSE["services"]
OURS = {"broker-init": None, "ingest": IngestSettings, "rules": RulesSettings,
        "api": ApiSettings, "simulators": SimulatorSettings}
SETTINGS: list[type[BaseSettings]] = [MqttSettings, InfluxSettings, CommonSettings,
                                      IngestSettings, RulesSettings, ApiSettings,
                                      SimulatorSettings, LiveSettings]
SECRET = "0123456789abcdef0123456789abcdef"


def variables_read(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {(f.alias or f"{prefix}{name}").upper() for name, f in cls.model_fields.items()
            if name not in ("mqtt", "influx", "live")}


READ_BY_SMARTCITY = set().union(*(variables_read(c) for c in SETTINGS)) | {
    password_variable(s) for s in SERVICES}


def environment(service: str) -> dict[str, str]:
    """The service's environment as compose gives it, each ${VAR...} filled with a strong
    secret (what an .env from scripts/exhibit-env.sh holds)."""
    env = SERVICES_[service].get("environment", {})
    return {k: re.sub(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", SECRET, str(v)) for k, v in env.items()}


def test_the_exhibit_has_every_service_with_a_healthcheck() -> None:
    assert set(SERVICES_) == {"broker-init", "mosquitto", "influxdb", "ingest", "ingest-2",
                              "rules", "api", "simulators", "grafana"}
    for name, service in SERVICES_.items():
        if name == "broker-init":
            assert service["restart"] == "no"  # a one-shot setup step
        else:
            assert service["healthcheck"]["test"], name
            assert service["restart"] == "unless-stopped", name


def test_the_project_image_comes_from_the_repos_dockerfile_and_runs_real_commands() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.search(r'include = \[([^]]*)\]', pyproject)
    assert packages
    for package in re.findall(r'"([a-z]+)\*"', packages.group(1)):
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert 'ENTRYPOINT ["smartcity"]' in dockerfile
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in OURS:
        service = SERVICES_[name]
        assert service["build"] == "." and service["image"] == "smartcity:latest", name
        assert service["command"][0] in commands, name


@pytest.mark.parametrize("name", [n for n in OURS if n != "broker-init"])
def test_every_variable_set_is_read_and_the_exhibit_settings_accept_them(name: str) -> None:
    env = environment(name)
    smartcity_vars = {k for k in env if k.startswith("SMARTCITY_")}
    assert smartcity_vars <= READ_BY_SMARTCITY, smartcity_vars - READ_BY_SMARTCITY
    cls = OURS[name]
    assert cls is not None
    # The service reads its settings from exactly this environment, as in its container.
    settings = cls.from_env(env)
    assert isinstance(settings, CommonSettings)
    assert settings.env.value == "exhibit"
    assert settings.influx.username == "smartcity" and settings.influx.password is not None
    # Each service logs in with its own broker account, as that service.
    assert (settings.mqtt.username, settings.mqtt.password) == (name, SECRET)
    assert settings.mqtt.host == "mosquitto"


def test_each_service_account_exists_and_broker_init_sets_every_password() -> None:
    roles = service_roles("city")
    for name in ("ingest", "rules", "api", "simulators"):
        assert name in SERVICES and name in roles
    init = environment("broker-init")
    assert set(init) == {password_variable(s) for s in SERVICES}


def test_the_api_issues_device_accounts_on_the_exhibit_broker() -> None:
    env = environment("api")
    assert env["SMARTCITY_API_DEVICE_ACCOUNTS"] == "dynsec"
    assert env["SMARTCITY_API_DEVICE_BROKER_URL"].endswith(":1883")
    assert env["SMARTCITY_API_HOST"] == "0.0.0.0"  # inside its container
    assert SERVICES_["api"]["ports"] == [f"{env['SMARTCITY_API_PORT']}:8000"]


def test_the_broker_listens_where_devices_are_told_and_its_accounts_file_is_shared() -> None:
    conf = (REPO / "broker/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert re.search(r"^listener 1883 ", conf, re.M)
    assert SERVICES_["mosquitto"]["ports"] == ["1883:1883"]
    accounts = re.search(r"^plugin_opt_config_file (\S+)", conf, re.M)
    assert accounts
    command = SERVICES_["broker-init"]["command"]
    assert command[command.index("--config") + 1] == accounts.group(1)
    data_mount = "mosquitto-data:" + str(Path(accounts.group(1)).parent)
    assert data_mount in SERVICES_["broker-init"]["volumes"]
    assert data_mount in SERVICES_["mosquitto"]["volumes"]
    assert SERVICES_["mosquitto"]["depends_on"]["broker-init"]["condition"] == \
        "service_completed_successfully"


def test_every_mounted_file_exists_and_every_named_volume_is_declared() -> None:
    for name, service in SERVICES_.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: {source}"


def _heartbeat(service: str) -> str:
    script = SERVICES_[service]["healthcheck"]["test"][-1]
    found = re.search(r"p='([^']+)'", script)
    assert found, service
    return found.group(1)


def test_healthchecks_read_the_heartbeat_files_the_services_write() -> None:
    data = Path(environment("ingest")["SMARTCITY_DATA_DIR"])
    assert _heartbeat("ingest") == str(IngestSettings(data_dir=data).state_dir /
                                       "heartbeat.json")
    assert _heartbeat("rules") == str(RulesSettings(data_dir=data).state_dir / "heartbeat.json")
    assert _heartbeat("simulators") == str(SimulatorSettings(data_dir=data).heartbeat_path)
    for service in ("ingest", "rules"):
        assert f"{service}-data:{data}" in SERVICES_[service]["volumes"]


def test_a_second_ingest_worker_shares_the_stream_with_its_own_session() -> None:
    one, two = environment("ingest"), environment("ingest-2")
    assert SERVICES_["ingest-2"]["profiles"] == ["ingest-workers"]  # started on request
    assert {k: v for k, v in two.items() if k != "SMARTCITY_INGEST_CLIENT_ID"} == one
    data = Path(two["SMARTCITY_DATA_DIR"])
    first = IngestSettings(data_dir=data)  # compose sets no client id: the default
    second = IngestSettings(data_dir=data, client_id=two["SMARTCITY_INGEST_CLIENT_ID"])
    # One group for both, named in .env when the profile runs (a lone worker subscribes
    # plainly: Mosquitto 2.0 does not restore shared subscriptions after a restart).
    assert SERVICES_["ingest-2"]["environment"]["SMARTCITY_INGEST_SHARE_GROUP"] == \
        SERVICES_["ingest"]["environment"]["SMARTCITY_INGEST_SHARE_GROUP"]
    assert first.client_id != second.client_id
    assert _heartbeat("ingest-2") == str(second.state_dir / "heartbeat.json")
    assert f"ingest-2-data:{data}" in SERVICES_["ingest-2"]["volumes"]


def test_influxdb_is_set_up_for_the_v1_api_with_the_credentials_the_services_use() -> None:
    influx = environment("influxdb")
    script = (REPO / "influxdb/init/10-smartcity-v1.sh").read_text()
    assert "./influxdb/init:/docker-entrypoint-initdb.d:ro" in SERVICES_["influxdb"]["volumes"]
    for variable in re.findall(r"\$\{(SMARTCITY_[A-Z_]+)", script):
        assert variable in influx, variable
    assert "--username smartcity" in script and "--username grafana" in script
    assert influx["DOCKER_INFLUXDB_INIT_BUCKET"] == environment("ingest")["SMARTCITY_INFLUX_DB"]
    assert environment("ingest")["SMARTCITY_INFLUX_USERNAME"] == "smartcity"


def test_grafana_gets_its_provisioning_and_every_variable_it_references() -> None:
    grafana = SERVICES_["grafana"]
    env = environment("grafana")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provisioning = REPO / "grafana/provisioning"
    for path in provisioning.rglob("*.yaml"):
        text = path.read_text()
        for variable in re.findall(r"\$\{?([A-Z][A-Z0-9_]+)\}?", text):
            if variable.startswith(("SMARTCITY_", "GF_")):
                assert variable in env, f"{path.name}: {variable}"
        for folder in re.findall(r"^\s+path: (\S+)", text, re.M):
            assert folder in mounts, f"{path.name}: {folder} is not mounted"
            assert (REPO / mounts[folder]).is_dir()


def test_the_broker_and_api_healthchecks_probe_what_the_services_serve() -> None:
    conf = (REPO / "broker/mosquitto.conf").read_text()
    listener = re.search(r"^listener (\d+) ", conf, re.M)
    assert listener
    probe = shlex.split(SERVICES_["mosquitto"]["healthcheck"]["test"][1].replace("$$", "$"))
    # An anonymous subscribe on the device listener: refused (exit 5) means up and secured.
    assert probe[0] == "mosquitto_sub" and "-u" not in probe
    assert probe[probe.index("-p") + 1] == listener.group(1)
    assert probe[-3:] == ["$?", "-eq", "5"]
    api = " ".join(SERVICES_["api"]["healthcheck"]["test"])
    assert f"127.0.0.1:{environment('api')['SMARTCITY_API_PORT']}/healthz" in api


def _compose_config(env_file: Path | None) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is missing: bash scripts/dev.sh installs it " \
                    "(Debian package docker-compose)"
    argv = [compose, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml")]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMARTCITY_", "GRAFANA_", "COMPOSE_"))}
    return subprocess.run([*argv, "config"], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_docker_compose_parses_the_file_with_a_generated_env(tmp_path: Path) -> None:
    generated = subprocess.run(["bash", str(REPO / "scripts" / "exhibit-env.sh")],
                               capture_output=True, text=True, check=True).stdout
    env_file = tmp_path / ".env"
    env_file.write_text(generated)
    values = dict(line.split("=", 1) for line in generated.splitlines() if "=" in line)

    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == set(SERVICES_)
    # Interpolated by docker-compose itself, from the generated file.
    ingest_env = services["ingest"]["environment"]
    assert ingest_env["SMARTCITY_MQTT_URL"] == \
        f"mqtt://ingest:{values['SMARTCITY_BROKER_INGEST_PASSWORD']}@mosquitto:1883"
    assert services["api"]["environment"]["SMARTCITY_ADMIN_TOKEN"] == \
        values["SMARTCITY_ADMIN_TOKEN"]
    assert ingest_env["SMARTCITY_INGEST_SHARE_GROUP"] == ""
    # Restarted like `smartcity up` restarts its children: every long-running service comes
    # back after it exits; only the one-shot account set-up does not.
    restart = {name: s.get("restart") for name, s in services.items()}
    assert restart.pop("broker-init") == "no"
    assert set(restart.values()) == {"unless-stopped"}, restart


def test_docker_compose_refuses_the_file_without_its_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose_config(empty)
    assert result.returncode != 0
    assert "SMARTCITY_" in result.stderr and "set SMARTCITY_" in result.stderr, result.stderr
def test_settings_read_the_environment_they_are_given_and_nothing_else() -> None:
    # The session's own SMARTCITY_DATA_DIR (tests/conftest.py) is not in this environment.
    env = {"SMARTCITY_MQTT_URL": "mqtts://api:secret@broker.example:8884",
           "SMARTCITY_LIVE_TICK_S": "0.2", "SMARTCITY_API_PORT": "8100"}
    settings = ApiSettings.from_env(env, scale=2)
    assert settings.data_dir == Path("var") and settings.scale == 2 and settings.port == 8100
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == (
        "broker.example", 8884, True)
    assert settings.mqtt.address == "mqtts://broker.example:8884"
    assert settings.live.tick_s == 0.2
