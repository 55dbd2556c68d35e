#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume
# (/docker-entrypoint-initdb.d): creates the read-only login Grafana's PostgreSQL datasource
# uses (datasource.yml). The NOLOGIN role `bank_readonly` holds the privileges (the API's first
# migration grants it SELECT on accounts, ledger_entries, transfers and refusals); the login
# BANK_READER_USER only inherits them. Safe to run again: it creates what is missing and resets
# the password. The password comes from the file BANK_READER_PASSWORD_FILE names (the stack's
# generated secret), as the image reads POSTGRES_PASSWORD_FILE, or from BANK_READER_PASSWORD.
set -eu

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${BANK_READER_USER:?BANK_READER_USER must be set (see env.example)}"
if [ -n "${BANK_READER_PASSWORD_FILE:-}" ]; then
    BANK_READER_PASSWORD=$(cat "$BANK_READER_PASSWORD_FILE")
fi
: "${BANK_READER_PASSWORD:?set BANK_READER_PASSWORD_FILE or BANK_READER_PASSWORD}"
if [ "$BANK_READER_USER" = "$POSTGRES_USER" ]; then
    echo "BANK_READER_USER must differ from POSTGRES_USER: the reader must not be the owner" >&2
    exit 1
fi

# psql substitutes :"var" (an identifier) and :'var' (a literal) with proper quoting, so any
# name or password is safe here. Both are passed as variables, never pasted into the SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader="$BANK_READER_USER" -v reader_password="$BANK_READER_PASSWORD" \
    -v dbname="$POSTGRES_DB" <<'SQL'
SELECT 'CREATE ROLE bank_readonly NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bank_readonly') \gexec

SELECT format('CREATE ROLE %I LOGIN', :'reader')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec

-- Read-only even for a statement that would try to write, bounded in time and connections
-- (Grafana keeps at most 5 open: datasource.yml).
ALTER ROLE :"reader" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT
    CONNECTION LIMIT 10 PASSWORD :'reader_password';
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '10s';
GRANT CONNECT ON DATABASE :"dbname" TO :"reader";
GRANT bank_readonly TO :"reader";
SQL
