-- POST /transfers between two different accounts (all seeded accounts hold EUR): lock both
-- rows in ascending id order, then write the transfer, both balances and both ledger rows in
-- one statement (services/ledger.py), commit. Four round trips, as in the API.
--
-- One difference, with the same rows, indexes and round trips: the API computes both new
-- balances client-side from the two locked rows, but pgbench can keep only one row of a
-- SELECT (\gset), so here the statement reads each locked balance itself (a primary-key
-- look-up per side) where the API sends the numbers.
\set source random(:first_id, :last_id)
\set destination random(:first_id, :last_id - 1)
\if :destination >= :source
\set destination :destination + 1
\endif
\set amount random(1, 1000)
-- The ids to lock, lowest first, as services/ledger.py sends them.
\set low least(:source, :destination)
\set high greatest(:source, :destination)
BEGIN;
SELECT id, currency, balance, status FROM accounts
WHERE id = ANY(ARRAY[:low, :high]) ORDER BY id FOR UPDATE;
WITH transfer AS (
    INSERT INTO transfers
        (source_account_id, destination_account_id, amount, currency, description)
    VALUES (:source, :destination, :amount, 'EUR', NULL)
    RETURNING id, created_at
), balances AS (
    SELECT (SELECT balance FROM accounts WHERE id = :source) - :amount AS source_after,
           (SELECT balance FROM accounts WHERE id = :destination) + :amount AS destination_after
), debited AS (
    UPDATE accounts SET balance = balances.source_after, updated_at = now()
    FROM balances WHERE id = :source
), credited AS (
    UPDATE accounts SET balance = balances.destination_after, updated_at = now()
    FROM balances WHERE id = :destination
), entries AS (
    INSERT INTO ledger_entries
        (account_id, direction, amount, balance_after, description, transfer_id)
    SELECT side.account_id, side.direction, :amount, side.balance_after, NULL,
           transfer.id
    FROM transfer, balances, LATERAL (VALUES (1, :source, 'debit', balances.source_after),
                                             (2, :destination, 'credit', balances.destination_after))
         AS side (position, account_id, direction, balance_after)
    ORDER BY side.position
    RETURNING id, account_id, direction, amount, balance_after, description, transfer_id, created_at
)
SELECT entries.*, transfer.created_at AS transfer_created_at
FROM entries, transfer ORDER BY entries.id;
COMMIT;
