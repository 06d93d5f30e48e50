"""Settings, read from ``SMARTCITY_*`` environment variables.

Each service builds one settings object at start-up; tests build them directly with keyword
arguments instead of touching the environment. The same variables configure the local stack
(``smartcity up``) and docker-compose.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smartcity.topics import DEFAULT_ROOT, check_root


class Environment(StrEnum):
    DEVELOPMENT = "development"
    EXHIBIT = "exhibit"


class MqttSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_MQTT_", extra="ignore")

    url: str = Field(default="mqtt://127.0.0.1:1883",
                     description="broker, mqtt://[user:password@]host:port")
    root: str = Field(default=DEFAULT_ROOT, description="first topic level of every topic")
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port")
        return v

    @field_validator("root")
    @classmethod
    def _root(cls, v: str) -> str:
        return check_root(v)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883

    @property
    def address(self) -> str:
        """The broker's URL without credentials: what logs and messages show."""
        host = self.host
        return f"mqtt://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def username(self) -> str | None:
        u = urlsplit(self.url).username
        return unquote(u) if u else None

    @property
    def password(self) -> str | None:
        p = urlsplit(self.url).password
        return unquote(p) if p else None


class InfluxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_INFLUX_", extra="ignore")

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


class CommonSettings(BaseSettings):
    """What every service reads: where the broker and the database are."""

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", extra="ignore")

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

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", extra="ignore",
                                      populate_by_name=True)

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

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", extra="ignore",
                                      populate_by_name=True)

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

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", extra="ignore",
                                      populate_by_name=True)

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
