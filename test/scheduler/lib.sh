# test/scheduler/lib.sh: sourced by the scheduler suites. The cluster is
# up (scripts/test.sh) and PGHOST/PGPORT/PGUSER point at it; qml is
# preloaded and qml.databases lets the scheduler serve the databases made
# here. Checks print "ok NAME" or "FAIL NAME: detail"; polling loops print
# only the state they ended in. finish exits non-zero if a check failed.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
failures=0

ok() { echo "ok   $1"; }
fail() { echo "FAIL $1${2:+: $2}"; failures=$((failures + 1)); }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected '$2', got '$3'"; fi; }
finish() { [ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }; exit 0; }

# q DB SQL...: one value per line, stop on error
q() { local db=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# sqlstate DB SQL: the SQLSTATE the statement fails with, or "no error"
sqlstate() {
	local out
	out=$(psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$1" -c "$2" 2>&1) && { echo "no error"; return; }
	echo "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1
}

# newdb NAME: a fresh database with the extension
newdb() {
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null &&
		q "$1" -c "CREATE EXTENSION qml" >/dev/null
}
dropdb_() { psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null; }

# poll SECONDS DB SQL EXPECTED: until the query returns EXPECTED; prints
# what it returned last
poll() {
	local until=$(($(date +%s%N) + ${1%.*} * 1000000000)) v
	while :; do
		v=$(q "$2" -c "$3" 2>&1)
		[ "$v" = "$4" ] && break
		[ "$(date +%s%N)" -ge "$until" ] && break
		sleep 0.05
	done
	echo "$v"
}

# the scheduler of a database runs (the launcher starts it within a second
# of CREATE DATABASE committing)
wait_scheduler() {
	poll 10 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$1'" 1 >/dev/null
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# the LISTEN helper (C, libpq), built once per run
listen_bin() {
	local bin=${TMPDIR:-/tmp}/qml_listen.$$
	if [ ! -x "$bin" ]; then
		cc -O2 -o "$bin" "$here/qml_listen.c" -I"$(pg_config --includedir)" \
			-L"$(pg_config --libdir)" -lpq || return 1
	fi
	echo "$bin"
}

# the server log, for checks that nothing was logged (scripts/cluster.sh)
. "$here/../../scripts/env.sh"
server_log=$QML_PGDIR/log
log_lines() { wc -l <"$server_log"; }
# log_since LINE: what the server logged after that line
log_since() { tail -n +"$(($1 + 1))" "$server_log"; }

# counts_check DB: installs counts_check() (test/counts_check.sql)
counts_check() { q "$1" -f "$here/../counts_check.sql" >/dev/null; }
