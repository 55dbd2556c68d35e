#!/usr/bin/env python3
"""Refuse a compose .env whose secrets are missing, placeholders or weak.

    python3 bankops/stack/env_check.py [.env]       check a file (default .env); exit 1
                                                    naming each problem
    python3 bankops/stack/env_check.py --environ    check this process's environment
                                                    (compose's env-check service, before
                                                    PostgreSQL and Grafana)
    python3 bankops/stack/env_check.py --fill .env  replace each placeholder secret in the
                                                    file with a random one, then check it

Plain Python 3, standard library only: it runs on the host before Docker (no virtualenv
needed), and in a stock python image, where compose mounts this one file. Keep it that way:
no import of bankops or of anything outside the standard library. Importable as
bankops.stack.env_check too (tests/test_compose.py reads env files with parse_env_file).
env.example ships `change-me` for every secret on purpose: it must be replaced.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

# Secret -> minimum length. ADMIN_TOKEN's minimum is the API's own (bank_api.core.config).
SECRETS = {
    "POSTGRES_PASSWORD": 12,
    "BANK_READER_PASSWORD": 12,
    "GRAFANA_ADMIN_PASSWORD": 12,
    "ADMIN_TOKEN": 16,
}
# Not secret, but the stack cannot start without them.
REQUIRED = ("POSTGRES_USER", "POSTGRES_DB", "BANK_READER_USER", "GRAFANA_ADMIN_USER")
# Names and passwords go into URLs (DATABASE_URL, postgres-exporter's DATA_SOURCE_NAME) and
# through compose's own `$` interpolation: only characters that need no escaping anywhere.
SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")
# Normalised (lower case, letters and digits only) values that are placeholders, not secrets.
PLACEHOLDER_WORDS = {
    "changeme", "changethis", "changeit", "password", "passwd", "secret", "admin", "example",
    "placeholder", "todo", "fixme", "xxx", "test", "default", "bank", "postgres", "grafana",
}
HOW_TO = "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"


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
    """One line per problem, each starting with the variable's name."""
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
            found.append(f"{name}: missing or empty; set a random value, {HOW_TO}")
        elif is_placeholder(value):
            found.append(f"{name}: still a placeholder ({value!r}); set a random value, {HOW_TO}")
        elif len(value) < minimum:
            found.append(f"{name}: {len(value)} characters, at least {minimum} needed; {HOW_TO}")
        elif not SAFE.match(value):
            found.append(f"{name}: use only letters, digits and . _ ~ - (it goes into URLs)")
    reader, owner = values.get("BANK_READER_USER"), values.get("POSTGRES_USER")
    if reader and reader == owner:
        found.append("BANK_READER_USER: must differ from POSTGRES_USER (the read-only login "
                     "must not be the database owner)")
    return found


def fill(path: Path) -> list[str]:
    """Replace placeholder or empty secrets in the file with random ones; return their names."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    current = parse_env_file(path)
    replaced: list[str] = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)=", line)
        if not match or match.group(2) not in SECRETS:
            continue
        name = match.group(2)
        value = current.get(name, "")
        if value and not is_placeholder(value):
            continue
        newline = "\n" if line.endswith("\n") else ""
        lines[index] = f"{match.group(1)}{name}={secrets.token_urlsafe(24)}{newline}"
        replaced.append(name)
    path.write_text("".join(lines), encoding="utf-8")
    return replaced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_file", nargs="?", default=".env", type=Path,
                        help="the file to check (default: .env)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--environ", action="store_true", help="check the environment instead")
    group.add_argument("--fill", action="store_true",
                       help="replace placeholder secrets in the file with random ones first")
    args = parser.parse_args(argv)

    if args.environ:
        source, values = "the environment", dict(os.environ)
    else:
        if not args.env_file.is_file():
            print(f"{args.env_file}: no such file; start with `cp env.example .env`",
                  file=sys.stderr)
            return 1
        if args.fill:
            for name in fill(args.env_file):
                print(f"{args.env_file}: {name} set to a new random value")
        source, values = str(args.env_file), parse_env_file(args.env_file)

    found = problems(values)
    if found:
        print(f"{source}: refusing to start the stack with these settings:", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        print("Edit them in .env (or run `python3 bankops/stack/env_check.py --fill .env`).",
              file=sys.stderr)
        return 1
    print(f"{source}: secrets set, none is a placeholder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
