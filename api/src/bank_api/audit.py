"""The books check: the money invariants, verified in SQL over the whole database.

    bank-api audit        print the verdict; exit 1 when the books do not balance

What must always hold (README, "Money rules"), each with the code a finding carries:

    balance_vs_ledger     every balance equals the sum of its account's ledger entries
                          (credits minus debits)
    negative_balance      no balance is negative
    running_balance       every entry's balance_after is the previous entry's balance_after
                          (0 before the first) plus or minus its amount
    latest_balance_after  an account's newest entry has its balance as balance_after
    unbalanced_transfer   a transfer wrote exactly two entries: a debit of its amount on its
                          source and a credit of its amount on its destination
    money_created         the sum of all balances equals external credits minus external
                          debits (entries outside transfers): transfers move money, they never
                          make or destroy it
    external_net          the same sum equals what the clients were told moved, when a caller
                          knows it (a test counting its 201 answers)

Every query reads one REPEATABLE READ snapshot, so they all see the same books even while
traffic runs: each movement commits its balances and ledger rows together, or not at all.
The schema's CHECK constraints and the ledger's append-only trigger hold most of these rules
already; this check is the proof from outside, after any load (the tests, the load runner and
the benchmark all use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, text

SHOWN = 20  # offending ids listed per finding; `count` says how many there are

SIGNED = "CASE e.direction WHEN 'credit' THEN e.amount ELSE -e.amount END"

# code -> (what is wrong, the query returning the offending ids: accounts, entries or transfers)
CHECKS: dict[str, tuple[str, str]] = {
    "balance_vs_ledger": ("balance differs from its ledger sum", f"""
        SELECT a.id FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
        GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM({SIGNED}), 0) ORDER BY a.id"""),
    "negative_balance": ("negative balance", """
        SELECT id FROM accounts WHERE balance < 0 ORDER BY id"""),
    "running_balance": ("entry's balance_after is not the previous one plus its amount", f"""
        SELECT id FROM (
            SELECT e.id, e.balance_after,
                   COALESCE(LAG(e.balance_after) OVER (PARTITION BY e.account_id ORDER BY e.id),
                            0) + {SIGNED} AS expected
            FROM ledger_entries e) chain
        WHERE balance_after <> expected ORDER BY id"""),
    "latest_balance_after": ("newest entry's balance_after differs from the balance", """
        SELECT a.id FROM accounts a
        JOIN LATERAL (SELECT balance_after FROM ledger_entries
                      WHERE account_id = a.id ORDER BY id DESC LIMIT 1) newest ON true
        WHERE newest.balance_after <> a.balance ORDER BY a.id"""),
    # COALESCE(…, -1): a missing side never equals an amount, which is always positive.
    "unbalanced_transfer": ("transfer without its debit and credit", """
        SELECT t.id FROM transfers t LEFT JOIN ledger_entries e ON e.transfer_id = t.id
        GROUP BY t.id, t.amount, t.source_account_id, t.destination_account_id
        HAVING COUNT(e.id) <> 2
            OR COALESCE(SUM(CASE WHEN e.direction = 'debit' AND e.account_id = t.source_account_id
                                 THEN e.amount END), -1) <> t.amount
            OR COALESCE(SUM(CASE WHEN e.direction = 'credit'
                                  AND e.account_id = t.destination_account_id
                                 THEN e.amount END), -1) <> t.amount
        ORDER BY t.id"""),
}
TOTALS = f"""
    SELECT (SELECT COUNT(*) FROM accounts),
           (SELECT COUNT(*) FROM ledger_entries),
           (SELECT COUNT(*) FROM transfers),
           (SELECT COALESCE(SUM(balance), 0) FROM accounts),
           (SELECT COALESCE(SUM({SIGNED}), 0) FROM ledger_entries e WHERE e.transfer_id IS NULL)
"""


@dataclass(frozen=True)
class Finding:
    code: str
    what: str
    count: int = 0  # offending rows (0 for the totals)
    ids: tuple[int, ...] = ()  # the first SHOWN of them

    def __str__(self) -> str:
        return f"{self.what}: {self.count} (ids {list(self.ids)})" if self.count else self.what


@dataclass(frozen=True)
class Books:
    accounts: int
    ledger_entries: int
    transfers: int
    total_balance: int
    external_net: int
    findings: list[Finding] = field(default_factory=list)
    checked_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="seconds"))

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def codes(self) -> set[str]:
        return {finding.code for finding in self.findings}

    def verdict(self, method: str = "sql") -> dict:
        """The JSON form load runs keep (invariants.json) and the report reads; `method` says
        how the books were read (in SQL here, or through the API by the load runner)."""
        return {"verdict": "pass" if self.passed else "fail", "method": method,
                "checked_at": self.checked_at,
                "problems": [str(finding) for finding in self.findings],
                "accounts": self.accounts, "ledger_entries": self.ledger_entries,
                "transfers": self.transfers, "total_balance": self.total_balance,
                "external_net": self.external_net}


def check(connection: Connection, *, expected_external_net: int | None = None) -> Books:
    """Check the books the connection sees (its search_path decides which tables).

    The connection must not be inside a transaction: the check opens its own, read-only."""
    findings: list[Finding] = []
    with connection.begin():
        connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        for code, (what, query) in CHECKS.items():
            ids = connection.execute(text(query)).scalars().all()
            if ids:
                findings.append(Finding(code, what, len(ids), tuple(ids[:SHOWN])))
        accounts, entries, transfers, total, external = connection.execute(text(TOTALS)).one()
    total, external = int(total), int(external)
    findings += totals_findings(total, external, expected_external_net)
    return Books(accounts, entries, transfers, total, external, findings)


def totals_findings(total: int, external: int,
                    expected_external_net: int | None = None) -> list[Finding]:
    """money_created and external_net, from the sum of balances and the external net."""
    findings = []
    if total != external:
        findings.append(Finding("money_created", f"sum of balances {total} != external "
                                f"credits minus debits {external}"))
    if expected_external_net is not None and external != expected_external_net:
        findings.append(Finding("external_net", f"external credits minus debits {external} "
                                f"!= {expected_external_net}, what the clients were told"))
    return findings


def check_database(url: str, *, expected_external_net: int | None = None) -> Books:
    """check() on a database given by URL, with a connection of its own."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return check(connection, expected_external_net=expected_external_net)
    finally:
        engine.dispose()


def describe(books: Books) -> str:
    """A few lines for people: the verdict, the totals, each finding."""
    lines = [f"books: {'PASS' if books.passed else 'FAIL'}: {books.accounts} accounts, "
             f"{books.ledger_entries} ledger entries, {books.transfers} transfers; "
             f"{books.total_balance} minor units held in all"]
    lines += [f"  - {finding.code}: {finding}" for finding in books.findings]
    return "\n".join(lines)
