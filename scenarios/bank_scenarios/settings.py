"""Where the scenario service finds the stack, from the environment (as compose gives it)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import make_url

from bank_scenarios.mechanisms import Targets

DEFAULT_PORT = 8090


def _secret(name: str) -> str | None:
    """NAME, or the contents of the file NAME_FILE names (compose's secrets volume)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return os.environ.get(name) or None


def targets_from_environment() -> Targets:
    """DATABASE_URL (+ DATABASE_PASSWORD_FILE), API_URL and ADMIN_TOKEN(_FILE), as the API
    reads its own."""
    missing = [n for n in ("DATABASE_URL", "API_URL") if not os.environ.get(n)]
    token = _secret("ADMIN_TOKEN")
    if token is None:
        missing.append("ADMIN_TOKEN or ADMIN_TOKEN_FILE")
    if missing:
        raise SystemExit(f"bank_scenarios serve: set {', '.join(missing)}")
    url = make_url(os.environ["DATABASE_URL"])
    password = _secret("DATABASE_PASSWORD")
    if password is not None:
        url = url.set(password=password)
    return Targets(database_url=url, api_url=os.environ["API_URL"], admin_token=token)
