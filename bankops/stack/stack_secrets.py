#!/usr/bin/env python3
"""The stack's secrets: generated on first start, kept in a volume, read by services as files.

    python3 stack_secrets.py init [DIR]    what compose's one-shot `secrets` service runs: write
                                           each secret to DIR/<name>, then exit
    python3 stack_secrets.py show [DIR]    print them (docker compose run --rm secrets show)
    python3 stack_secrets.py check [FILE]  check a .env without starting anything

For each secret, `init` keeps, in this order: the value set in the environment (from .env),
if it is not empty; else the value already in DIR (an earlier start); else a new random one.
So nothing secret is shipped, no two installations share one, a value the user sets wins,
and the generated ones survive `docker compose down` and `up` (they live in a named volume;
`docker compose down -v` replaces them). `init` names what it did, never a value.

Plain Python 3, standard library only: compose mounts this one file into a stock python image.
Keep it that way (tests/test_compose.py checks). Importable as bankops.stack.stack_secrets
too: the native stack and the tests use it.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

DEFAULT_DIR = "/secrets"
# The environment variable of each secret -> the shortest value accepted when a user sets it.
# Its file in DIR is the variable's name in lower case. ADMIN_TOKEN's minimum is the API's
# own (bank_api.core.config).
SECRETS = {
    "POSTGRES_PASSWORD": 12,  # the database owner (the API, migrations, postgres-exporter)
    "BANK_READER_PASSWORD": 12,  # the read-only login of Grafana's business dashboard
    "GRAFANA_ADMIN_PASSWORD": 12,  # Grafana's admin account
    "ADMIN_TOKEN": 16,  # the API's /admin endpoints (the fault switch)
}
# Not secret, but the stack cannot start without them.
REQUIRED = ("POSTGRES_USER", "POSTGRES_DB", "BANK_READER_USER", "GRAFANA_ADMIN_USER")
# Names and passwords go into URLs (DATABASE_URL) and through compose's own `$` interpolation:
# only characters that need no escaping anywhere. token_urlsafe() draws from these.
SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")
# Normalised (lower case, letters and digits only) values that are placeholders, not secrets.
PLACEHOLDER_WORDS = {
    "changeme", "changethis", "changeit", "password", "passwd", "secret", "admin", "example",
    "placeholder", "todo", "fixme", "xxx", "test", "default", "bank", "postgres", "grafana",
}
RANDOM_BYTES = 24  # 32 characters of token_urlsafe: 192 bits


def file_name(variable: str) -> str:
    return variable.lower()


def generate() -> str:
    return secrets.token_urlsafe(RANDOM_BYTES)


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them: comments, `export`, quotes, inline ` #`."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key.strip()] = value
    return values


def is_placeholder(value: str) -> bool:
    normalised = re.sub(r"[^a-z0-9]", "", value.lower())
    if normalised in PLACEHOLDER_WORDS or "changeme" in normalised or "changethis" in normalised:
        return True
    return len(set(value)) <= 2  # "aaaaaaaaaaaa", "abababababab"


def problems(values: dict[str, str]) -> list[str]:
    """One line per problem, each starting with the variable's name. An empty or missing
    secret is no problem: it is generated."""
    found: list[str] = []
    for name in REQUIRED:
        value = values.get(name, "")
        if not value:
            found.append(f"{name}: missing or empty")
        elif not SAFE.match(value):
            found.append(f"{name}: use only letters, digits and . _ ~ - (it goes into URLs)")
    for name, minimum in SECRETS.items():
        value = values.get(name, "")
        if not value:
            continue
        if is_placeholder(value):
            found.append(f"{name}: a placeholder ({value!r}); set a random value, or leave it "
                         "empty to have one generated")
        elif len(value) < minimum:
            found.append(f"{name}: {len(value)} characters, at least {minimum} needed (or "
                         "leave it empty to have one generated)")
        elif not SAFE.match(value):
            found.append(f"{name}: use only letters, digits and . _ ~ - (it goes into URLs)")
    reader, owner = values.get("BANK_READER_USER"), values.get("POSTGRES_USER")
    if reader and reader == owner:
        found.append("BANK_READER_USER: must differ from POSTGRES_USER (the read-only login "
                     "must not be the database owner)")
    return found


def _write(path: Path, value: str) -> None:
    """Replace the file at once, readable by every service's user (postgres, grafana, the API
    and the exporter run as different users) and by no one else: the volume is theirs."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(value, encoding="utf-8")
    temporary.chmod(0o444)
    os.replace(temporary, path)


def init(directory: Path, environ: dict[str, str]) -> dict[str, str]:
    """Fill directory with every secret; return what was done to each (never the values)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    done: dict[str, str] = {}
    for name in SECRETS:
        path = directory / file_name(name)
        current = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        given = environ.get(name, "")
        if given:
            if current and given != current:
                done[name] = ("set from .env, replacing the earlier value (PostgreSQL and "
                              "Grafana keep the password they first started with)")
            else:
                done[name] = "set from .env"
            if given != current:
                _write(path, given)
        elif current:
            done[name] = "kept from an earlier start"
        else:
            _write(path, generate())
            done[name] = "generated"
    return done


def read(directory: Path) -> dict[str, str]:
    return {name: (directory / file_name(name)).read_text(encoding="utf-8").strip()
            for name in SECRETS if (directory / file_name(name)).is_file()}


def _refuse(source: str, found: list[str]) -> int:
    print(f"{source}: refusing to start the stack with these settings:", file=sys.stderr)
    for line in found:
        print(f"  {line}", file=sys.stderr)
    print("Change them in .env (an empty secret is generated on the first start).",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["init", "show", "check"])
    parser.add_argument("path", nargs="?", type=Path,
                        help=f"init, show: the secrets folder (default {DEFAULT_DIR}); "
                        "check: the .env file (default .env)")
    args = parser.parse_args(argv)

    if args.command == "check":
        env_file = args.path or Path(".env")
        if not env_file.is_file():
            print(f"{env_file}: no such file; start with `cp env.example .env`", file=sys.stderr)
            return 1
        if found := problems(parse_env_file(env_file)):
            return _refuse(str(env_file), found)
        print(f"{env_file}: fine; empty secrets are generated on the first start")
        return 0

    directory = args.path or Path(DEFAULT_DIR)
    if args.command == "show":
        values = read(directory)
        if not values:
            print(f"no secrets in {directory}: start the stack first (docker compose up)",
                  file=sys.stderr)
            return 1
        if user := os.environ.get("GRAFANA_ADMIN_USER"):
            print(f"# Grafana's admin login is {user} with GRAFANA_ADMIN_PASSWORD")
        for name, value in values.items():
            print(f"{name}={value}")
        return 0

    if found := problems(dict(os.environ)):
        return _refuse("the environment (.env)", found)
    for name, what in init(directory, dict(os.environ)).items():
        print(f"{name}: {what}")
    print("secrets ready; `docker compose run --rm secrets show` prints them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
