"""How each kind of fault is caused and undone. Every one undoes itself at its deadline
without this process:

- fault_switch: PUT /admin/faults with `duration_s`; the API reads the switch as off once
  the database's clock passes it (bank_api/services/faults.py).
- table_lock, missing_index, connections_refused: one server-side statement, a DO block that
  applies the fault, commits, sleeps until the deadline and undoes it. PostgreSQL runs a
  statement to its end even when the client is gone, so killing this process changes
  nothing; a statement_timeout a little past the deadline bounds it. Stopping early cancels
  the sleep (pg_cancel_backend), which the block catches, and the undo runs at once.
- load_spike: the users Locust runs (the scenario's load steps); nothing to undo here.
- ledger_import: accounts opened and credited through the API's public routes, as any
  client would, until done or the deadline. Nothing to undo: it is the bank's business.

Parameters reach the DO blocks as settings (`SET bank_scenario.x = ...`, quoted by the
driver), and names are checked against the API's own schema (bank_api.models): a catalogue
entry can choose a table or an index, never write SQL.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from sqlalchemy import URL, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateIndex

from bank_api.models import Base
from bank_scenarios.catalogue import Fault

# Past the deadline, PostgreSQL cancels the statement itself (a last resort: the block's own
# sleep ends at the deadline).
STATEMENT_GRACE_SECONDS = 10
# How long taking the lock may wait (another migration, a long transaction) before the fault
# gives up.
LOCK_WAIT = "5s"
APPLICATION_NAME = "bank-scenario"

HOLD_LOCK = """
DO $$
BEGIN
  EXECUTE format('LOCK TABLE %I IN ' || current_setting('bank_scenario.mode') || ' MODE',
                 current_setting('bank_scenario.table'));
  BEGIN
    PERFORM pg_sleep(current_setting('bank_scenario.seconds')::float);
  EXCEPTION WHEN query_canceled THEN NULL;  -- stopped early: release now
  END;
END $$
"""

DROP_INDEX = """
DO $$
BEGIN
  EXECUTE format('DROP INDEX IF EXISTS %I', current_setting('bank_scenario.index'));
  COMMIT;
  BEGIN
    PERFORM pg_sleep(current_setting('bank_scenario.seconds')::float);
  EXCEPTION WHEN query_canceled THEN NULL;  -- stopped early: rebuild now
  END;
  EXECUTE current_setting('bank_scenario.create_index');
  COMMIT;
END $$
"""

# Run from the maintenance database ("postgres"): it is the bank database that closes.
REFUSE_CONNECTIONS = """
DO $$
DECLARE
  bank text := current_setting('bank_scenario.database');
BEGIN
  EXECUTE format('ALTER DATABASE %I ALLOW_CONNECTIONS false', bank);
  COMMIT;
  PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = bank AND pid <> pg_backend_pid();
  BEGIN
    PERFORM pg_sleep(current_setting('bank_scenario.seconds')::float);
  EXCEPTION WHEN query_canceled THEN NULL;  -- stopped early: open now
  END;
  EXECUTE format('ALTER DATABASE %I ALLOW_CONNECTIONS true', bank);
  COMMIT;
END $$
"""


def droppable_indexes() -> dict[str, Any]:
    """The API's own secondary indexes (not primary keys or unique constraints): the ones a
    scenario may drop, each rebuilt from its definition in bank_api.models."""
    return {index.name: index for table in Base.metadata.sorted_tables
            for index in table.indexes if not index.unique}


def tables() -> set[str]:
    return set(Base.metadata.tables)


def create_index_sql(name: str) -> str:
    ddl = CreateIndex(droppable_indexes()[name], if_not_exists=True)
    return str(ddl.compile(dialect=postgresql.dialect()))


def check_fault(fault: Fault) -> None:
    """Refuse a table or an index the API does not have (at catalogue checks and service
    start, not halfway through a class)."""
    if fault.kind == "table_lock" and fault.params["table"] not in tables():
        raise ValueError(f"{fault.name}: no table {fault.params['table']!r} in bank_api.models")
    if fault.kind == "missing_index" and fault.params["index"] not in droppable_indexes():
        raise ValueError(f"{fault.name}: {fault.params['index']!r} is not a secondary index of "
                         f"bank_api.models ({sorted(droppable_indexes())})")


@dataclass
class Targets:
    """What the faults act on, with the credentials the scenario service is given."""

    database_url: URL  # the bank database, as its owner
    api_url: str
    admin_token: str

    @property
    def maintenance_url(self) -> URL:
        return self.database_url.set(database="postgres")

    def connect(self, url: URL, label: str) -> Connection:
        engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                               connect_args={"application_name": f"{APPLICATION_NAME}:{label}",
                                             "connect_timeout": 5})
        return engine.connect()

    def admin(self, method: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.api_url.rstrip('/')}/admin/faults", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.admin_token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # say what the API said
            raise RuntimeError(f"{method} /admin/faults: {exc.code} {exc.read()[:300]!r}") \
                from None

    def heal(self) -> list[str]:
        """Undo whatever a fault may have left behind if its statement itself was killed
        (a database restart, an administrator's pg_terminate_backend): the bank database
        open, every droppable index present. What it did, for the log."""
        done = []
        with self.connect(self.maintenance_url, "heal") as connection:
            closed = connection.scalar(text(
                "SELECT NOT datallowconn FROM pg_database WHERE datname = :db"),
                {"db": self.database_url.database})
            if closed:
                connection.execute(text(f"ALTER DATABASE {_quote(self.database_url.database)} "
                                        "ALLOW_CONNECTIONS true"))
                done.append(f"database {self.database_url.database} allows connections again")
        with self.connect(self.database_url, "heal") as connection:
            present = set(connection.scalars(text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")))
            for name in sorted(set(droppable_indexes()) - present):
                connection.execute(text(create_index_sql(name)))
                done.append(f"index {name} rebuilt")
        return done


def _quote(identifier: str) -> str:
    return postgresql.dialect().identifier_preparer.quote(identifier)


class Applied:
    """A fault in force. `hold()` returns at its deadline, undone; `stop()` (from another
    thread) undoes it now."""

    def hold(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class FaultSwitch(Applied):
    def __init__(self, targets: Targets, fault: Fault, seconds: float) -> None:
        self.targets, self.seconds = targets, seconds
        self.body = {"error_rate": fault.params.get("error_rate", 0.0),
                     "latency_ms": fault.params.get("latency_ms", 0),
                     "routes": fault.params.get("routes", []),
                     "methods": fault.params.get("methods", []),
                     "duration_s": max(1, math.ceil(seconds))}
        self._stopped = threading.Event()

    def hold(self) -> None:
        self.targets.admin("PUT", self.body)
        self._stopped.wait(self.seconds)
        self.targets.admin("DELETE")

    def stop(self) -> None:
        self._stopped.set()


class ServerSide(Applied):
    """A DO block that applies, waits and undoes, run to its end by PostgreSQL."""

    def __init__(self, targets: Targets, url: URL, label: str, block: str,
                 settings: dict[str, str], seconds: float) -> None:
        self.targets, self.url, self.label, self.block = targets, url, label, block
        self.settings = {**settings, "seconds": f"{seconds:.3f}"}
        self.timeout_ms = int((seconds + STATEMENT_GRACE_SECONDS) * 1000)
        self.pid: int | None = None
        self._stopping = False

    def hold(self) -> None:
        with self.targets.connect(self.url, self.label) as connection:
            for name, value in self.settings.items():
                connection.execute(text("SELECT set_config(:name, :value, false)"),
                                   {"name": f"bank_scenario.{name}", "value": value})
            connection.execute(text("SELECT set_config('statement_timeout', :ms, false)"),
                               {"ms": str(self.timeout_ms)})
            connection.execute(text(f"SET lock_timeout = '{LOCK_WAIT}'"))
            self.pid = connection.scalar(text("SELECT pg_backend_pid()"))
            if self._stopping:
                return
            # The driver's cursor, without parameters: the block's %I stays format()'s.
            with connection.connection.cursor() as cursor:
                cursor.execute(self.block)

    def stop(self) -> None:
        self._stopping = True
        if self.pid is None:
            return
        with self.targets.connect(self.targets.maintenance_url, "stop") as connection:
            connection.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": self.pid})


class LoadSpike(Applied):
    """Locust follows the scenario's load steps; here the phase only waits."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._stopped = threading.Event()

    def hold(self) -> None:
        self._stopped.wait(self.seconds)

    def stop(self) -> None:
        self._stopped.set()


class LedgerImport(Applied):
    """Opens `accounts` accounts and credits each `entries_per_account` times, from
    `concurrency` threads, through POST /accounts and POST /accounts/{id}/transactions."""

    def __init__(self, targets: Targets, fault: Fault, seconds: float) -> None:
        self.api = targets.api_url.rstrip("/")
        self.accounts = int(fault.params["accounts"])
        self.entries = int(fault.params["entries_per_account"])
        self.concurrency = int(fault.params.get("concurrency", 4))
        self.seconds = seconds
        self.written = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def _import(self, count: int) -> None:
        for n in range(count):
            if self._stopped.is_set():
                return
            try:
                account = self._post("/accounts", {
                    "first_name": "Imported", "last_name": f"Customer {n}",
                    "address": "1 Merger Street", "currency": "EUR"})
                for _ in range(self.entries):
                    if self._stopped.is_set():
                        return
                    self._post(f"/accounts/{account['id']}/transactions",
                               {"direction": "credit", "amount": 1000,
                                "description": "imported history"})
                    with self._lock:
                        self.written += 1
            except (OSError, ValueError):  # the API refused or is away: the next account
                continue

    def hold(self) -> None:
        share = -(-self.accounts // self.concurrency)
        workers = [threading.Thread(target=self._import, args=(share,), daemon=True)
                   for _ in range(self.concurrency)]
        for worker in workers:
            worker.start()
        self._stopped.wait(self.seconds)
        self._stopped.set()
        for worker in workers:
            worker.join(timeout=35)

    def stop(self) -> None:
        self._stopped.set()


def applied(targets: Targets, scenario_name: str, fault: Fault, seconds: float) -> Applied:
    """The fault, ready to hold for `seconds` (its length at the run's speed)."""
    label = f"{scenario_name}:{fault.kind}"
    if fault.kind == "fault_switch":
        return FaultSwitch(targets, fault, seconds)
    if fault.kind == "table_lock":
        return ServerSide(targets, targets.database_url, label, HOLD_LOCK,
                          {"table": fault.params["table"], "mode": fault.params["mode"]},
                          seconds)
    if fault.kind == "missing_index":
        index = fault.params["index"]
        return ServerSide(targets, targets.database_url, label, DROP_INDEX,
                          {"index": index, "create_index": create_index_sql(index)}, seconds)
    if fault.kind == "connections_refused":
        return ServerSide(targets, targets.maintenance_url, label, REFUSE_CONNECTIONS,
                          {"database": targets.database_url.database}, seconds)
    if fault.kind == "load_spike":
        return LoadSpike(seconds)
    if fault.kind == "ledger_import":
        return LedgerImport(targets, fault, seconds)
    raise ValueError(f"unknown fault kind {fault.kind!r}")
