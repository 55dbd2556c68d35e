-- The same credit sent with an Idempotency-Key (as Locust's customers do): the key's advisory
-- lock, the look-up of an earlier use, the credit, then the key pointing at its entry, in one
-- transaction (services/idempotency.py). Seven round trips. Keys are random 63-bit numbers,
-- so each request is new, as in the API run.
\set id random(:first_id, :last_id)
\set amount random(1, 1000)
\set key random(1, 9223372036854775806)
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('pgbench-:key', 0));
SELECT idempotency_keys.request_hash, idempotency_keys.ledger_entry_id, idempotency_keys.transfer_id, idempotency_keys.created_at < now() - '1 days 0.000000 seconds'::interval AS expired 
FROM idempotency_keys 
WHERE idempotency_keys.key = 'pgbench-:key';
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
RETURNING id, account_id, direction, amount, balance_after, description, transfer_id, created_at \gset entry_
INSERT INTO idempotency_keys (key, request_hash, ledger_entry_id, transfer_id) VALUES ('pgbench-:key', '26c0440ce4e2555088c0671a05c93c196f538c41caa72cc02a8b35fab989d1f9', :entry_id, NULL);
COMMIT;
