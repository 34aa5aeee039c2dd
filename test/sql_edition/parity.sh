#!/usr/bin/env bash
# test/sql_edition/parity.sh: the pure-SQL edition answers as the extension
# does where it replaces C: the bad-input catalogue's SQL cases
# (test/bad_input/cases.tsv: SQLSTATE, message, nothing changed) against it,
# and its schedule parser against the C one (qml.next_run for every schedule
# of test/cron's unit test, in three time zones around a DST change, next
# runs and errors alike). Server: PGHOST/PGPORT/PGUSER, a superuser.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/test/sql_edition
cd "$root"
owner=qml_sqled_owner
db=qml_sqled_parity
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
rc=0

# cron: the SQL edition's schedule parser answers as the extension's C one,
# next runs and errors, for every schedule test/cron's unit test uses
cdb=${db}_c
"$here/install.sh" "$db" "$owner"
psql_ -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $cdb WITH (FORCE)" -c "CREATE DATABASE $cdb"
psql_ -d "$cdb" -c "CREATE EXTENSION qml"
python3 "$here/cron_cases.py" >"$work/cron.sql"
psql_ -At -d "$cdb" -f "$work/cron.sql" >"$work/cron_c.out"
psql_ -At -d "$db" -f "$work/cron.sql" >"$work/cron_sql.out"
psql_ -d postgres -c "DROP DATABASE IF EXISTS $cdb WITH (FORCE)"
if diff -u "$work/cron_c.out" "$work/cron_sql.out" >"$work/cron.diff"; then
	echo "cron: $(wc -l <"$work/cron_c.out") answers as the extension's: ok"
else
	echo "cron: FAILED, the editions answer differently:"; head -40 "$work/cron.diff"; rc=1
fi

# the bad-input catalogue's SQL cases (test/bad_input/cases.tsv): the same
# SQLSTATEs and messages, nothing changed
# (qml.history_events and qml.jobs.history are 1.2's: this edition keeps
# 1.1's history table)
QML_BAD_INPUT_INSTALL="$here/install.sh qml_bad_input $owner" QML_BAD_INPUT_SKIP='qml\.history_events|qml\.jobs SET history' \
	python3 test/bad_input/run.py --sql-only >"$work/bad_input.out" 2>&1 ||
	{ grep -E '^FAIL' "$work/bad_input.out" | head -20; tail -3 "$work/bad_input.out"; rc=1; }
echo "bad_input: $(tail -1 "$work/bad_input.out")"

psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
exit $rc
