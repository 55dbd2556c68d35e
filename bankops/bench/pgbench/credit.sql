-- POST /accounts/{id}/transactions {"direction": "credit", "amount": …}, without an
-- Idempotency-Key: lock the row, then write the new balance and the ledger row in one
-- statement, commit. Four round trips, the statements of services/ledger.py as psycopg2
-- sends them (captured from cursor.query). The new balance is computed from the locked row,
-- client-side, as the API does (\gset).
\set id random(:first_id, :last_id)
\set amount random(1, 1000)
BEGIN;
SELECT id, currency, balance, status FROM accounts
WHERE id = ANY(ARRAY[:id]) ORDER BY id FOR UPDATE \gset locked_
\set balance :locked_balance + :amount
WITH moved AS (
    UPDATE accounts SET balance = :balance, updated_at = now()
    WHERE id = :id
    RETURNING id
)
INSERT INTO ledger_entries (account_id, direction, amount, balance_after, description)
SELECT id, 'credit', :amount, :balance, NULL FROM moved
RETURNING id, account_id, direction, amount, balance_after, description, transfer_id, created_at;
COMMIT;
