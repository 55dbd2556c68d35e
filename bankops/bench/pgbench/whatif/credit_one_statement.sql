-- What if a credit were one statement? Not the API's SQL: a measurement for PROFILE.md's
-- "fewer round trips" recommendation. The UPDATE takes the row lock and computes the balance;
-- the ledger row gets it from the UPDATE's RETURNING; run in autocommit, the one statement is
-- its own transaction, so there is no BEGIN or COMMIT to send: one round trip instead of the
-- five the API's credit took when PROFILE.md measured this (credit.sql's four now), and the
-- books stay right (the same balance and ledger row as credit.sql).
--
--   pgbench -h <socket dir> -U postgres -n -M simple -c 32 -j 2 -T 8 \
--       -D first_id=1 -D last_id=10000 -f bankops/bench/pgbench/whatif/credit_one_statement.sql bank
\set id random(:first_id, :last_id)
\set amount random(1, 1000)
WITH moved AS (
    UPDATE accounts SET balance = balance + :amount, updated_at = now()
    WHERE id = :id AND status = 'active'
    RETURNING id, balance
)
INSERT INTO ledger_entries (account_id, direction, amount, balance_after, description, transfer_id)
SELECT id, 'credit', :amount, balance, NULL, NULL FROM moved
RETURNING ledger_entries.id, ledger_entries.created_at;
