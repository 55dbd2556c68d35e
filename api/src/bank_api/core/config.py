"""Settings, read from the environment (and a .env file) by pydantic-settings."""

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

# Values from example files that must never reach a running service.
PLACEHOLDERS = frozenset({"", "change-me", "changeme", "change_me", "secret", "password"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # No DATABASE_URL means: start an embedded PostgreSQL with its data in EMBEDDED_PG_DIR.
    database_url: str | None = None
    embedded_pg_dir: Path = Path(".data/postgres")

    host: str = "127.0.0.1"
    port: int = 8000
    web_concurrency: int = Field(default=1, ge=1, le=64)
    worker_healthcheck_timeout: int = Field(default=30, ge=1)

    # Pool per worker process. The thread pool that runs request handlers is larger, so a
    # request waits at most db_pool_timeout seconds for a connection, then gets a 503.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_pool_recycle: int = Field(default=1800, ge=-1)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    db_connect_timeout: int = Field(default=5, ge=1)

    # How long a retry with the same Idempotency-Key replays the first answer.
    idempotency_key_ttl_hours: int = Field(default=24, ge=1)

    # Off only to measure what metrics cost (bankops/bench/): no /metrics, no instrumentation.
    metrics_enabled: bool = True
    # uvicorn's per-request log line. Off: /metrics counts every request by route and status,
    # and the line cost 5-15 % of a request's CPU in the benchmark (bankops/bench/PROFILE.md).
    access_log: bool = False

    # Guards /admin (the fault switch). Unset: the admin endpoints answer 404.
    admin_token: SecretStr | None = None

    # Per worker: requests served at once, and how long one more may wait for a slot before
    # a 503 (load shedding). The default keeps every admitted request within reach of a
    # pool connection and a thread.
    max_in_flight: int = Field(default=30, ge=1)
    queue_timeout: float = Field(default=2.0, ge=0)

    max_body_bytes: int = Field(default=16_384, ge=256)
    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=100, ge=1)

    @field_validator("admin_token")
    @classmethod
    def _no_placeholder_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.strip().lower() in PLACEHOLDERS or len(secret) < 16:
            raise ValueError("ADMIN_TOKEN must be a real secret of at least 16 characters "
                             "(e.g. `openssl rand -hex 24`), not a placeholder")
        return value

    @field_validator("database_url")
    @classmethod
    def _no_placeholder_password(cls, value: str | None) -> str | None:
        if value is not None:
            password = make_url(value).password
            if password is not None and password.strip().lower() in PLACEHOLDERS:
                raise ValueError("the password in DATABASE_URL is a placeholder; set a real one")
        return value

    @property
    def idempotency_key_ttl(self) -> timedelta:
        return timedelta(hours=self.idempotency_key_ttl_hours)


@lru_cache
def get_settings() -> Settings:
    return Settings()
