-- GET /accounts/{id}: the statements the API sends for one balance read, as psycopg2 sends
-- them (captured from cursor.query). psycopg2 opens every transaction with its own BEGIN, and
-- closing the connection rolls the read-only transaction back: three round trips.
\set id random(:first_id, :last_id)
BEGIN;
SELECT accounts.id, accounts.first_name, accounts.last_name, accounts.address, accounts.currency, accounts.balance, accounts.status, accounts.created_at, accounts.updated_at, accounts.closed_at 
FROM accounts 
WHERE accounts.id = :id;
ROLLBACK;
