#!/usr/bin/env bash
# test/sql_edition/settings.sh: the qml.* settings in the pure-SQL edition
# follow the C edition's rule (docs/sql-edition.md, "Settings"). Without
# the library they are placeholders that any role may SET; a session's
# value counts only where the extension would have let the role set it:
# qml.history and the other superuser-only settings for a superuser or a
# role granted SET ON PARAMETER, qml.retention and the other configuration
# file settings never. ALTER DATABASE ... SET (which only such roles may
# run) still counts for everyone. On a cluster of its own without the
# library (the suites' cluster preloads it, and then PostgreSQL itself
# refuses the SET).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
base=${QML_PGPORT:-5499}
export QML_PGPORT=$((base + 1002)) QML_PGDIR=/tmp/qml-pg-sqled-settings-$((base + 1002))
cd "$root"
scripts/cluster.sh up "" || exit 1
trap 'scripts/cluster.sh down' EXIT
. scripts/env.sh
db=qml_sqled_settings owner=qml_sqled_owner
test/sql_edition/install.sh "$db" "$owner" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
	-c "CREATE ROLE qml_set_producer LOGIN" -c "CREATE ROLE qml_set_worker LOGIN" \
	-c "SET ROLE $owner" \
	-c "SELECT qml.grant_producer('qml_set_producer'), qml.grant_worker('qml_set_worker')" \
	-c "GRANT EXECUTE ON FUNCTION qml.maintain() TO qml_set_worker" >/dev/null || exit 1

failed=0
# check WHAT WANT ROLE PSQL-ARGS... READ: PSQL-ARGS run as ROLE, then READ
# (as the superuser) prints WANT
check() {
	local what=$1 want=$2 role=$3; shift 3
	local got read=${*: -1}
	got=$(psql -X -q -At -v ON_ERROR_STOP=1 -U "$role" -d "$db" "${@:1:$#-1}" 2>&1 >/dev/null)
	[ -n "$got" ] || got=$(psql -X -q -At -d "$db" -c "$read" 2>&1)
	if [ "$got" = "$want" ]; then
		echo "ok - $what"
	else
		echo "not ok - $what: got '$got', want '$want'"; failed=1
	fi
}
# the number of history rows of the job the SQL enqueues
events="SELECT count(*) FROM qml.job_events e WHERE e.job_id = (SELECT max(id) FROM qml.jobs)"
attempts="SELECT max_attempts FROM qml.jobs ORDER BY id DESC LIMIT 1"

check "a producer's SET qml.history = off is passed over: its job's history is kept" 1 qml_set_producer \
	-c "SET qml.history = off" -c "SELECT qml.enqueue('m')" "$events"
PGOPTIONS="-c qml.history=off" check "... and so is its PGOPTIONS -c qml.history=off" 1 qml_set_producer \
	-c "SELECT qml.enqueue('m')" "$events"
check "a producer's SET qml.default_max_attempts is passed over" 20 qml_set_producer \
	-c "SET qml.default_max_attempts = 1" -c "SELECT qml.enqueue('m')" "$attempts"
check "a superuser's SET qml.history = off counts" 0 postgres \
	-c "SET qml.history = off" -c "SELECT qml.enqueue('m')" "$events"
psql -X -q -d "$db" -c "ALTER DATABASE $db SET qml.history = off" \
	-c "ALTER DATABASE $db SET qml.default_max_attempts = 7" || failed=1
check "ALTER DATABASE ... SET qml.history = off counts for a producer" 0 qml_set_producer \
	-c "SELECT qml.enqueue('m')" "$events"
check "... and a producer's SET qml.history = on does not override it" 0 qml_set_producer \
	-c "SET qml.history = on" -c "SELECT qml.enqueue('m')" "$events"
check "ALTER DATABASE ... SET qml.default_max_attempts counts, over the producer's SET" 7 qml_set_producer \
	-c "SET qml.default_max_attempts = 1" -c "SELECT qml.enqueue('m')" "$attempts"
psql -X -q -d "$db" -c "ALTER DATABASE $db RESET qml.history" -c "GRANT SET ON PARAMETER qml.history TO qml_set_producer" || failed=1
check "a producer granted SET ON PARAMETER qml.history: its SET counts" 0 qml_set_producer \
	-c "SET qml.history = off" -c "SELECT qml.enqueue('m')" "$events"

# qml.retention is the configuration file's in the C edition: no session's
# value counts, or a worker allowed to run passes could prune every job
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SELECT qml.enqueue('done', queue => 'r')" \
	-c "SELECT qml.complete(id, 'w') FROM qml.fetch('w', '{r}')" >/dev/null || failed=1
check "a worker's SET qml.retention = 0 does not prune a job finished now" 1 qml_set_worker \
	-c "SET qml.retention = 0" -c "SELECT qml.maintain()" "SELECT count(*) FROM qml.jobs WHERE queue = 'r'"
check "... nor a superuser's" 1 postgres \
	-c "SET qml.retention = 0" -c "SELECT qml.maintain()" "SELECT count(*) FROM qml.jobs WHERE queue = 'r'"
psql -X -q -d "$db" -c "ALTER DATABASE $db SET qml.retention = 0" || failed=1
check "ALTER DATABASE ... SET qml.retention = 0 does" 0 qml_set_worker \
	-c "SELECT qml.maintain()" "SELECT count(*) FROM qml.jobs WHERE queue = 'r'"

[ $failed = 0 ] && echo "sql_edition settings: ok" || echo "sql_edition settings: FAILED"
exit $failed
