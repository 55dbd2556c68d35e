"""Settings: secrets from files (the stacks' generated secrets), empty values as unset, and
the compose .env copied from env.example read by `make run` without complaint."""

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from bank_api.core.config import Settings
from bankops.stack.stack_secrets import parse_env_file

REPO = Path(__file__).resolve().parents[2]
URL = "postgresql+psycopg2://bank@postgres:5432/bank"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A working directory without .env and an environment without the API's variables."""
    monkeypatch.chdir(tmp_path)
    for name in ("ADMIN_TOKEN", "ADMIN_TOKEN_FILE", "DATABASE_URL", "DATABASE_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def secret_file(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    path.write_text(value + "\n")  # as an editor or `echo` would leave it
    return path


def test_secrets_are_read_from_files(isolated, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN_FILE", str(secret_file(isolated, "t", "T" * 8 + "x" * 24)))
    monkeypatch.setenv("DATABASE_URL", URL)
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret_file(isolated, "p", "s3cr-et_~.Z")))
    settings = Settings()
    assert settings.admin_token.get_secret_value() == "T" * 8 + "x" * 24
    assert settings.database_url == "postgresql+psycopg2://bank:s3cr-et_~.Z@postgres:5432/bank"


@pytest.mark.parametrize(("env", "message"), [
    ({"ADMIN_TOKEN": "a-real-token-of-24-chars", "ADMIN_TOKEN_FILE": "t"}, "not both"),
    ({"ADMIN_TOKEN_FILE": "missing-file"}, "ADMIN_TOKEN_FILE: cannot read"),
    ({"DATABASE_PASSWORD_FILE": "p"}, "needs a DATABASE_URL"),
    ({"DATABASE_URL": URL.replace("bank@", "bank:pw@"), "DATABASE_PASSWORD_FILE": "p"},
     "already holds a password"),
    ({"ADMIN_TOKEN_FILE": "placeholder"}, "not a placeholder"),
])
def test_a_file_setting_that_cannot_hold_is_refused(isolated, monkeypatch, env, message):
    secret_file(isolated, "t", "a-real-token-of-24-chars")
    secret_file(isolated, "p", "s3cr3t-password")
    secret_file(isolated, "placeholder", "change-me")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_the_compose_env_file_does_not_disturb_make_run(isolated):
    """`cp env.example .env` for compose, then `make run` in the same folder: the empty
    secrets count as unset, so the API starts (with /admin disabled)."""
    shutil.copyfile(REPO / "env.example", isolated / ".env")
    settings = Settings()
    assert settings.admin_token is None and settings.database_url is None
    # env.example's other values still apply.
    example = parse_env_file(REPO / "env.example")
    assert settings.web_concurrency == int(example["WEB_CONCURRENCY"])


def test_request_head_limits_have_safe_defaults_and_floors(isolated):
    settings = Settings()
    assert (settings.header_timeout, settings.max_header_bytes, settings.max_connections) == (
        10, 32_768, 2_048)
    for bad in ({"header_timeout": 0}, {"max_header_bytes": 100}, {"max_connections": 1}):
        with pytest.raises(ValidationError):
            Settings(**bad)
