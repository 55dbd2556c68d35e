"""Settings, read from the environment (and a .env file) by pydantic-settings."""

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

# Values from example files that must never reach a running service.
PLACEHOLDERS = frozenset({"", "change-me", "changeme", "change_me", "secret", "password"})


class Settings(BaseSettings):
    # An empty variable counts as unset: env.example leaves its secrets empty (the compose
    # stack generates them), and `make run` reads the same .env.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # No DATABASE_URL means: start an embedded PostgreSQL with its data in EMBEDDED_PG_DIR.
    database_url: str | None = None
    # The password of DATABASE_URL's user, read from this file (the compose stack's generated
    # secret), for a DATABASE_URL written without one.
    database_password_file: Path | None = None
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
    # Log lines: one JSON object per line (what a log collector wants), or readable lines for
    # a terminal. LOG_LEVEL is a standard level name (DEBUG, INFO, WARNING, ERROR).
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # One log line per request (method, route, status, duration, client, request id).
    access_log: bool = True

    # Guards /admin (the fault switch). Unset: the admin endpoints answer 404. Given as the
    # value, or as a file holding it (ADMIN_TOKEN_FILE: the compose stack's generated secret).
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None

    # Per worker: requests served at once, and how long one more may wait for a slot before
    # a 503 (load shedding). The default keeps every admitted request within reach of a
    # pool connection and a thread.
    max_in_flight: int = Field(default=30, ge=1)
    queue_timeout: float = Field(default=2.0, ge=0)

    max_body_bytes: int = Field(default=16_384, ge=256)
    # A request's head (request line and headers) must arrive within HEADER_TIMEOUT seconds
    # and fit in MAX_HEADER_BYTES, or the connection is closed (api/http_protocol.py):
    # uvicorn bounds neither, so a client sending a byte a second, or megabytes of headers,
    # would hold a connection and its memory for as long as it liked.
    header_timeout: float = Field(default=10.0, gt=0)
    max_header_bytes: int = Field(default=32_768, ge=4_096)
    # Open connections per worker; one more is closed at once. With the two limits above, the
    # heads a worker holds stay under MAX_CONNECTIONS x MAX_HEADER_BYTES (64 MiB).
    max_connections: int = Field(default=2_048, ge=16)
    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, values: dict) -> dict:
        """ADMIN_TOKEN_FILE and DATABASE_PASSWORD_FILE, read before the fields are checked."""
        def read(file_field: str) -> str | None:
            path = values.get(file_field)
            if not path:
                return None
            try:
                return Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"{file_field.upper()}: cannot read {path}: "
                                 f"{exc.strerror}") from None

        if (token := read("admin_token_file")) is not None:
            if values.get("admin_token"):
                raise ValueError("set ADMIN_TOKEN or ADMIN_TOKEN_FILE, not both")
            values = values | {"admin_token": token}
        if (password := read("database_password_file")) is not None:
            url = values.get("database_url")
            if not url:
                raise ValueError("DATABASE_PASSWORD_FILE needs a DATABASE_URL to go with it")
            if make_url(url).password is not None:
                raise ValueError("DATABASE_URL already holds a password: drop it, or drop "
                                 "DATABASE_PASSWORD_FILE")
            values = values | {"database_url": make_url(url).set(password=password)
                               .render_as_string(hide_password=False)}
        return values

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

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
