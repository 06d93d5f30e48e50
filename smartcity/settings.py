"""Settings, read from ``SMARTCITY_*`` environment variables.

Each service builds one settings object at start-up, a subclass of :class:`Settings`; tests
build them directly with keyword arguments, or from an environment of their own with
:meth:`Settings.from_env`, instead of touching the process's. The same variables configure the
local stack (``smartcity up``) and docker-compose.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from smartcity.topics import DEFAULT_ROOT, check_root

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("smartcity_environ", default=None)


class _Environ(EnvSettingsSource):
    """Environment variables from a given mapping instead of the process's."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._environ)
        return {k.lower(): v for k, v in self._environ.items()}


class Settings(BaseSettings):
    """The base of every settings object: ``SMARTCITY_*`` variables, unknown ones ignored."""

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", extra="ignore",
                                      populate_by_name=True)

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:
            return init_settings, env_settings, dotenv_settings, file_secret_settings
        return init_settings, _Environ(settings_cls, environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **values: Any) -> Self:
        """Read from ``environ`` (nested settings too) rather than the process's
        environment."""
        with _injected(environ):
            return cls(**values)


@contextmanager
def _injected(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    EXHIBIT = "exhibit"


class MqttSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_MQTT_")

    url: str = Field(default="mqtt://127.0.0.1:1883",
                     description="broker, mqtt://[user:password@]host:port; mqtts:// for TLS")
    root: str = Field(default=DEFAULT_ROOT, description="first topic level of every topic")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    ca_file: Path | None = Field(default=None, description="CA certificates that sign the "
                                 "broker's TLS certificate (mqtts://); default: the system's")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port (mqtts://host:port for TLS)")
        return v

    @field_validator("root")
    @classmethod
    def _root(cls, v: str) -> str:
        return check_root(v)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def address(self) -> str:
        """The broker's URL without credentials: what logs and messages show."""
        host = self.host
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def username(self) -> str | None:
        u = urlsplit(self.url).username
        return unquote(u) if u else None

    @property
    def password(self) -> str | None:
        p = urlsplit(self.url).password
        return unquote(p) if p else None


class InfluxSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_INFLUX_")

    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB v1-compatible API")
    db: str = Field(default="smartcity", description="database (bucket name on InfluxDB 2.x)")
    username: str | None = Field(default=None, description="user (any name on InfluxDB 2.x)")
    password: SecretStr | None = Field(default=None, description="password, or API token on 2.x")
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like http://host:port")
        return v.rstrip("/")

    @field_validator("db")
    @classmethod
    def _db(cls, v: str) -> str:
        # The name goes into InfluxQL (CREATE DATABASE) and URLs; keep it to the id rule.
        from smartcity.ids import check_id

        return check_id(v, "SMARTCITY_INFLUX_DB")


class LiveSettings(Settings):
    """``SMARTCITY_LIVE_*``: how the live stream treats its screens."""

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_LIVE_")

    buffer: int = Field(default=2048, ge=1, le=1_000_000,
                        description="events a screen may have pending; beyond, they coalesce")
    behind_limit_s: float = Field(default=10.0, gt=0, description="a screen whose buffer stays "
                                                                  "full this long is closed")
    heartbeat_s: float = Field(default=15.0, gt=0, description="ping interval")
    tick_s: float = Field(default=0.05, gt=0, le=1, description="how often the hub fans out")
    delivery_budget: int = Field(default=1000, ge=1,
                                 description="readings x screens handed out per tick; beyond, "
                                             "readings are coalesced per device")
    decode_per_tick: int = Field(default=200, ge=1,
                                 description="readings judged one by one per tick; beyond, "
                                             "only each topic's newest")
    inbox_max: int = Field(default=200_000, ge=1, description="readings waiting for the "
                                                              "fan-out before new ones are "
                                                              "dropped")
    close_grace_s: float = Field(default=2.0, gt=0, description="how long a closing screen "
                                                                "gets to take its close")


class CommonSettings(Settings):
    """What every service reads: where the broker and the database are."""

    env: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    data_dir: Path = Field(default=Path("var"), description="local state (servers, spool)")
    city_file: Path | None = Field(default=None, description="city description; default: "
                                                              "the built-in Ho Chi Minh City")
    scale: int = Field(default=1, ge=1, le=10_000, description="copies of every device, for "
                                                              "load work; the same everywhere")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)


class IngestSettings(CommonSettings):
    client_id: str = Field(default="smartcity-ingest", alias="SMARTCITY_INGEST_CLIENT_ID")
    share_group: str | None = Field(default="ingest", alias="SMARTCITY_INGEST_SHARE_GROUP",
                                    description="MQTT shared-subscription group; empty: none")
    batch_size: int = Field(default=5000, ge=1, le=50_000, alias="SMARTCITY_INGEST_BATCH_SIZE")
    batch_interval_s: float = Field(default=0.25, gt=0, alias="SMARTCITY_INGEST_BATCH_INTERVAL_S")
    max_payload_bytes: int = Field(default=16_384, ge=256,
                                   alias="SMARTCITY_INGEST_MAX_PAYLOAD_BYTES")
    session_expiry_s: int = Field(default=86_400, ge=0,
                                  alias="SMARTCITY_INGEST_SESSION_EXPIRY_S")
    spool_max_bytes: int = Field(default=512 * 2**20, ge=0,
                                 alias="SMARTCITY_INGEST_SPOOL_MAX_BYTES")
    stats_interval_s: float = Field(default=10.0, gt=0,
                                    alias="SMARTCITY_INGEST_STATS_INTERVAL_S")
    heartbeat_interval_s: float = Field(default=2.0, gt=0,
                                        alias="SMARTCITY_INGEST_HEARTBEAT_INTERVAL_S")
    write_timeout_s: float = Field(default=2.0, gt=0, alias="SMARTCITY_INGEST_WRITE_TIMEOUT_S",
                                   description="a write InfluxDB has not answered by then goes "
                                               "to the spool")
    broker_log: Path | None = Field(default=None, alias="SMARTCITY_INGEST_BROKER_LOG",
                                    description="the broker's log file (log_type debug), read "
                                                "for publishes it refused to a device; set it "
                                                "for one ingest worker only")
    edge: Literal["asyncio", "paho"] = Field(
        default="asyncio", alias="SMARTCITY_INGEST_EDGE",
        description="MQTT client: asyncio (ingest's own, the fast one) or paho (paho-mqtt)")
    fast_validation: bool = Field(
        default=True, alias="SMARTCITY_INGEST_FAST_VALIDATION",
        description="judge well-formed JSON readings without the pydantic models (same "
                    "verdicts; a refusal is always explained by the models)")

    @field_validator("share_group", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return v or None

    @property
    def state_dir(self) -> Path:
        """Spool, dead letters and heartbeat; named by the client id, like the session."""
        return self.data_dir / "ingest" / self.client_id

    @property
    def receive_maximum(self) -> int:
        # Unacked messages the broker may send us; a batch must fit with room to spare, or the
        # broker stops sending until the batch timer fires.
        return min(65535, max(4 * self.batch_size, 1000))


class SimulatorSettings(CommonSettings):
    interval_s: float = Field(default=2.0, gt=0, alias="SMARTCITY_SIM_INTERVAL_S")
    seed: int | None = Field(default=None, alias="SMARTCITY_SIM_SEED")
    speed: str = Field(default="1", alias="SMARTCITY_SIM_SPEED",
                       description="time factor: 1 real time, 60 a minute per second, max")
    start: str | None = Field(default=None, alias="SMARTCITY_SIM_START",
                              description="simulated start time; default: now")
    scenario: str | None = Field(default=None, alias="SMARTCITY_SIM_SCENARIO",
                                 description="built-in scenario name or scenario file")

    @property
    def heartbeat_path(self) -> Path:
        return self.data_dir / "simulators" / "heartbeat.json"


class ApiSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", alias="SMARTCITY_API_HOST")
    port: int = Field(default=8000, ge=1, le=65535, alias="SMARTCITY_API_PORT")
    admin_token: SecretStr | None = Field(default=None, alias="SMARTCITY_ADMIN_TOKEN")
    rules_file: Path | None = Field(
        default=None, alias="SMARTCITY_RULES_FILE",
        description="the warning rules, as the rules service reads them: the board colours "
                    "flood sites by the same levels (default: the built-in HCMC rules)")
    device_accounts: Literal["dynsec", "none"] = Field(
        default="dynsec", alias="SMARTCITY_API_DEVICE_ACCOUNTS",
        description="dynsec: each registered device gets its own account on the broker "
                    "(Mosquitto's dynamic security plugin, managed with the api's MQTT "
                    "account); none: a development broker that takes anonymous devices")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, alias="SMARTCITY_API_MAX_BODY_BYTES",
                                description="larger request bodies are refused (413)")
    max_devices: int = Field(default=500, ge=0, alias="SMARTCITY_API_MAX_DEVICES",
                             description="exhibitor devices the exhibit takes (409 beyond)")
    registrations_per_minute: float = Field(
        default=30, gt=0, alias="SMARTCITY_API_REGISTRATIONS_PER_MINUTE",
        description="registrations a minute, in bursts of as many (429 beyond)")
    up_status_file: Path | None = Field(
        default=None, alias="SMARTCITY_UP_STATUS_FILE",
        description="the supervision state `smartcity up` keeps (set by up): /readyz reports "
                    "a degraded city from it")
    reads: Literal["memory", "influx"] = Field(
        default="memory", alias="SMARTCITY_API_READS",
        description="memory: latest values, sensors and the city summary from the readings "
                    "the api receives (merged with InfluxDB every LATEST_REFRESH_S); influx: "
                    "every answer queried from InfluxDB")
    latest_refresh_s: float = Field(
        default=60.0, gt=0, alias="SMARTCITY_API_LATEST_REFRESH_S",
        description="how often the latest values in memory are merged with InfluxDB's")
    attract_idle_s: float = Field(
        default=300.0, ge=0, alias="SMARTCITY_ATTRACT_IDLE_S",
        description="after this long without a scenario command the exhibit tells its story "
                    "by itself (a normal day, the king-tide storm, the recovery); 0: never")
    public_url: str | None = Field(
        default=None, alias="SMARTCITY_PUBLIC_URL",
        description="the address visitors' phones reach the api at (http://host:port), "
                    "encoded in the QR code on the wall; default: the address the board uses")
    device_broker_url: str | None = Field(
        default=None, alias="SMARTCITY_API_DEVICE_BROKER_URL",
        description="the broker address devices are told to use (mqtt://host:port); default: "
                    "the api's own, without its credentials")
    live: LiveSettings = Field(default_factory=LiveSettings)

    @model_validator(mode="after")
    def _no_default_secret_on_exhibit(self) -> ApiSettings:
        if self.env is Environment.EXHIBIT:
            token = self.admin_token.get_secret_value() if self.admin_token else ""
            if len(token) < 16 or token in {"change-me", "changeme", "admin", "secret"}:
                raise ValueError("SMARTCITY_ADMIN_TOKEN must be set to a secret of at least 16 "
                                 "characters when SMARTCITY_ENV=exhibit")
            if self.device_accounts != "dynsec":
                raise ValueError("SMARTCITY_API_DEVICE_ACCOUNTS must be dynsec when "
                                 "SMARTCITY_ENV=exhibit: every exhibitor device gets its own "
                                 "account")
        return self

    @property
    def device_broker(self) -> str:
        """The broker address devices are told to use."""
        return self.device_broker_url or self.mqtt.address
