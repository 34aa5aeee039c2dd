#!/usr/bin/env bash
# test/sql_edition/install.sh DB OWNER: a fresh database DB owned by OWNER, a
# plain LOGIN role (created if absent, never a superuser), with the pure-SQL
# edition installed by OWNER itself as docs/sql-edition.md says: psql with
# ON_ERROR_STOP. Builds the script first. Server: PGHOST/PGPORT/PGUSER.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
db=$1 owner=$2
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
make -s -C "$root" sql-edition
script=$(ls "$root"/qml-sql--*.sql | sort -V | tail -1)
psql_ -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
	-c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$owner') THEN CREATE ROLE $owner LOGIN; END IF; END \$\$" \
	-c "CREATE DATABASE $db OWNER $owner"
[ "$(psql -X -At -d postgres -c "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = '$owner'")" = f ]
log=$(mktemp)
psql_ -U "$owner" -d "$db" -f "$script" >/dev/null 2>"$log" || { cat "$log"; rm -f "$log"; exit 1; }
rm -f "$log"
