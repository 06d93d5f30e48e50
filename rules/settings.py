"""Settings of the rules service, read from ``SMARTCITY_*`` like every service's."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from smartcity.ids import check_id
from smartcity.settings import CommonSettings


class RulesSettings(CommonSettings):
    rules_file: Path | None = Field(default=None, alias="SMARTCITY_RULES_FILE",
                                    description="rule file (TOML); default: the built-in HCMC "
                                                "rules")
    client_id: str = Field(default="smartcity-rules", alias="SMARTCITY_RULES_CLIENT_ID",
                           description="MQTT client id; names the persistent session and the "
                                       "state directory, which belong together")
    session_expiry_s: int = Field(default=86_400, ge=0, alias="SMARTCITY_RULES_SESSION_EXPIRY_S")
    batch_size: int = Field(default=1000, ge=1, le=20_000, alias="SMARTCITY_RULES_BATCH_SIZE")
    save_interval_s: float = Field(default=0.5, gt=0, le=60,
                                   alias="SMARTCITY_RULES_SAVE_INTERVAL_S",
                                   description="longest a reading waits for the state save "
                                               "that lets it be acknowledged")
    spool_max_bytes: int = Field(default=64 * 2**20, ge=0, alias="SMARTCITY_RULES_SPOOL_MAX_BYTES")
    silent_after_s: float = Field(default=120.0, gt=0,
                                  alias="SMARTCITY_RULES_SILENT_AFTER_S",
                                  description="an active alert whose sensor sent nothing for "
                                              "this long is published as silent")
    heartbeat_interval_s: float = Field(default=10.0, gt=0,
                                        alias="SMARTCITY_RULES_HEARTBEAT_INTERVAL_S")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, v: str) -> str:
        # It is also a directory name under data_dir.
        return check_id(v, "SMARTCITY_RULES_CLIENT_ID")

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "rules" / self.client_id

    @property
    def receive_maximum(self) -> int:
        return min(65535, max(4 * self.batch_size, 1000))
