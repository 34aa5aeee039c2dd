#!/usr/bin/env bash
# test/pgtap/run.sh: the pgTAP suites. Creates a fresh database (qml_pgtap,
# or $QML_PGTAP_DB) on the server PGHOST/PGPORT/PGUSER point at (see
# scripts/env.sh), installs pgtap and qml in it and runs every
# test/pgtap/*.sql with pg_prove. Each file is one transaction that rolls
# back. The database is dropped again when every test passed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
db=${QML_PGTAP_DB:-qml_pgtap}
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# WITH (FORCE): a preloaded qml scheduler may be connected to it
psql_ -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql_ -d "$db" -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION qml"

if pg_prove --failures -d "$db" "$here"/*.sql; then
	psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
else
	echo "pgtap: failed; database $db kept for inspection" >&2
	exit 1
fi
