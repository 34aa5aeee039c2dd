#!/usr/bin/env bash
# test/sql_edition/run.sh: the pure-SQL edition (docs/sql-edition.md) under
# the project's own suites. Builds qml-sql--VERSION.sql, installs it as a
# plain LOGIN role that owns a fresh database (no superuser, no CREATE
# EXTENSION), then runs there the pg_regress files of the Makefile's REGRESS,
# its ISOLATION specs and the pgTAP files, minus what the SQL edition
# documents as absent (EXCLUDED, TAP_DIFFERS below). Expected output is the
# C edition's, patched by test/sql_edition/expected.patch and
# isolation.patch where the output legitimately differs (each hunk says
# why). Then the wakeups. (parity.sh compares the SQL edition's errors and
# schedules with the extension's.) The server PGHOST/PGPORT/PGUSER point at runs them
# as a superuser, as for the extension: the tests create roles.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/test/sql_edition
cd "$root"
owner=qml_sqled_owner
db=${QML_SQLED_DB:-qml_sqled}
work=$here/build
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# name: why it does not apply to the SQL edition
declare -A EXCLUDED=(
	[direct_gate]="the direct-write gate is C: the SQL edition always writes by statement"
	[direct_gate_1_1]="the direct-write gate is C, and this edition has no version 1.1 to serve"
	[history_inline]="version 1.2's history in the job's row (qml.jobs.history): this edition keeps 1.1's table"
	[history_bounds]="the bounds and checks of version 1.2's history in the job's row: this edition keeps 1.1's table"
	[update_1_0]="ALTER EXTENSION qml UPDATE: the SQL edition is a script, with no 1.0 and no extension to update"
	[update_1_3]="ALTER EXTENSION qml UPDATE TO '1.4': the SQL edition is a script, with no extension to update"
	[fetch_wait_holds]="FOR UPDATE SKIP LOCKED keeps the lock of a row it rejects, with its transaction id, while fetch(wait) polls (docs/sql-edition.md)"
	[claim_wal]="a claim's one heap_update per job is C's: the SQL edition locks each row (FOR UPDATE SKIP LOCKED) and then updates it"
	[claim_commit]="a commit of claims alone without the WAL flush (qml.durable_claims) is C's: the SQL edition commits as synchronous_commit says (docs/sql-edition.md)"
	[queue_head_short]="the queue head is C's, in shared memory: the SQL edition claims from the start of the queue and has no qml.queue_head_nets"
	[queue_head_pass]="the queue head and the claims it may pass are C's, in shared memory: the SQL edition claims from the start of the queue"
	[direct_index_ddl]="the direct write's locks on only the indexes a row goes into are C's: the SQL edition's INSERT and UPDATE lock every index of qml.jobs"
	[held_direct]="the direct writes of fail, fail_batch, heartbeat and release (one heap_update per job, version 1.2's functions beside them) are C's: the SQL edition keeps 1.1's PL/pgSQL functions, which update by statement"
	[held_race]="the races of C's direct writes of held jobs: the SQL edition's functions are statements, whose races complete_wait and lease_steal cover"
	[replica_role]="the API's statements run as origin in a session set to session_replication_role = replica: a plain role cannot set it, so the edition's triggers do not fire there (docs/sql-edition.md)"
	[claim_race]="C's claim of the row version its snapshot saw: the SQL edition's FOR UPDATE SKIP LOCKED follows a row changed since, or fails in repeatable read"
)

# pgTAP tests that fail here by design, by description: why
declare -A TAP_DIFFERS=(
	["Extension qml should exist"]="the SQL edition is a script, not an extension"
	["qml is not relocatable"]="no extension, no pg_extension row"
	["jobs, job_events and queues are dumped by pg_dump (pg_extension_config_dump)"]="not an extension: pg_dump dumps every table anyway"
	["qml.enqueue is not SECURITY DEFINER"]="without C only a SECURITY DEFINER qml.enqueue can reach qml.enqueue_as_owner"
	["qml.enqueue sets no search_path"]="it is SECURITY DEFINER, so it pins search_path"
	["qml is at version 1.3"]="not an extension: no version in pg_extension (the script is 1.1's SQL)"
	["fetch, complete, complete_batch, fail, fail_batch, heartbeat and release are C"]="the SQL edition's functions are PL/pgSQL"
)

"$here/install.sh" "$db" "$owner"

# The tests' own tables and functions (an admin's audit trigger on
# qml.jobs, say) are the superuser's: the extension's owner is a superuser
# and may use them, this edition's owner is given the same rights.
psql_ -d "$db" -c "ALTER DEFAULT PRIVILEGES FOR ROLE $PGUSER GRANT ALL ON TABLES TO $owner" \
	-c "ALTER DEFAULT PRIVILEGES FOR ROLE $PGUSER GRANT ALL ON SEQUENCES TO $owner" \
	-c "ALTER DEFAULT PRIVILEGES FOR ROLE $PGUSER GRANT EXECUTE ON FUNCTIONS TO $owner"

# pg_regress: the C edition's files, with this edition's expected output
rm -rf "$work" && mkdir -p "$work/sql" "$work/expected"
cp sql/*.sql "$work/sql/" && cp expected/*.out "$work/expected/"
patch -s -d "$work/expected" -p1 <"$here/expected.patch"
tests=()
for t in $(make -s -f Makefile -f - <<<'print-regress: ; @echo $(REGRESS)' print-regress); do
	[ -n "${EXCLUDED[$t]:-}" ] || tests+=("$t")
done
pgxs=$(dirname "$(pg_config --pgxs)")
rc=0
"$pgxs/../test/regress/pg_regress" --inputdir="$work" --outputdir="$work" \
	--bindir="$(pg_config --bindir)" --use-existing --dbname="$db" "${tests[@]}" || rc=1

# isolation: the Makefile's ISOLATION specs, with this edition's expected
# output (test/sql_edition/isolation.patch)
mkdir -p "$work/iso/specs" "$work/iso/expected"
cp test/specs/*.spec "$work/iso/specs/" && cp test/expected/*.out "$work/iso/expected/"
patch -s -d "$work/iso/expected" -p1 <"$here/isolation.patch"
specs=()
for t in $(make -s -f Makefile -f - <<<'print-iso: ; @echo $(ISOLATION)' print-iso); do
	[ -n "${EXCLUDED[$t]:-}" ] || specs+=("$t")
done
"$pgxs/../test/isolation/pg_isolation_regress" --inputdir="$work/iso" --outputdir="$work/iso" \
	--bindir="$(pg_config --bindir)" --use-existing --dbname="$db" "${specs[@]}" || rc=1

# pgTAP: pgtap itself needs a superuser's CREATE EXTENSION (test only)
psql_ -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pgtap"
# each file's TAP: every planned test ran, and what failed is TAP_DIFFERS
for f in test/pgtap/*.sql; do
	out=$(psql -X -At -v ON_ERROR_STOP=1 -d "$db" -f "$f" 2>&1) || { echo "$out" | tail -5; rc=1; continue; }
	planned=$(echo "$out" | sed -n 's/^1\.\.\([0-9]*\)$/\1/p')
	ran=$(echo "$out" | grep -cE '^(not )?ok [0-9]+' || true)
	failed=$(echo "$out" | sed -n 's/^not ok [0-9]* - //p')
	bad=0
	while IFS= read -r d; do
		[ -z "$d" ] || [ -n "${TAP_DIFFERS[$d]:-}" ] || { echo "  not ok: $d"; bad=1; }
	done <<<"$failed"
	if [ "$planned" != "$ran" ] || [ $bad = 1 ]; then
		echo "$f: FAILED (planned ${planned:-?}, ran $ran)"; rc=1
	else
		echo "$f: ok ($ran tests, $(echo -n "$failed" | grep -c . || true) differ by design)"
	fi
done

# wakeups: an enqueue notifies the queue once after a fetch came back empty,
# not on every enqueue (each notifying commit takes a cluster-wide lock)
notes=$(psql -X -q -At -d "$db" <<SQL 2>&1
LISTEN qml;
SELECT count(*) AS claimed FROM qml.fetch('w_listen', '{wq}');
\\! psql -X -q -At -d "$db" -c "SELECT qml.enqueue('a', queue => 'wq')" >/dev/null
SELECT 'after the first enqueue';
\\! psql -X -q -At -d "$db" -c "SELECT qml.enqueue('b', queue => 'wq')" >/dev/null
SELECT 'after the second enqueue';
SQL
)
# (psql prints a notification after the result of the query it came with)
expected="0
after the first enqueue
Asynchronous notification \"qml\" with payload \"wq\" received from server process with PID N.
after the second enqueue"
if [ "$(echo "$notes" | sed 's/PID [0-9]*/PID N/')" = "$expected" ]; then
	echo "wakeups: ok"
else
	echo "wakeups: FAILED"; echo "$notes"; rc=1
fi

if [ $rc = 0 ]; then
	psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
	rm -rf "$work"
else
	echo "sql_edition: failed; see $work/regression.diffs, database $db kept" >&2
fi
exit $rc
