#!/usr/bin/env bash
# Start Debian's PostgreSQL cluster on loopback and create the test role and database.
# Prints the URL for SPYGLASS_TEST_POSTGRES_URL on stdout; everything else goes to stderr.
# The server is started with stdout closed: a postmaster that inherited a caller's pipe
# (as in `URL=$(bash .ci/postgres.sh)`) would hold it open for ever and hang the caller.
set -euo pipefail
exec 3>&1 1>&2  # everything but the final URL goes to stderr
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null 3>&-
fi
pg_ctlcluster "$version" main start </dev/null >/dev/null 2>&1 3>&- || true
for _ in $(seq 50); do
    pg_isready -h 127.0.0.1 -q && break
    sleep 0.2
done
pg_isready -h 127.0.0.1 -q || { echo "PostgreSQL did not start" >&2; exit 1; }
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >/dev/null 3>&- <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'spyglass') THEN
    CREATE ROLE spyglass LOGIN PASSWORD 'spyglass';
  END IF;
END $$;
SELECT 'CREATE DATABASE spyglass OWNER spyglass' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'spyglass')\gexec
SQL
echo "postgresql+psycopg://spyglass:spyglass@127.0.0.1:5432/spyglass" >&3
