#!/usr/bin/env bash
# test/partitions/run.sh: schema 1.4 (qml.jobs partitioned into a ring of
# rotating slots, docs/partitions.md) under the project's own suites: the
# pg_regress files of the Makefile's REGRESS, its ISOLATION specs and the
# pgTAP files, each against a database made with CREATE EXTENSION qml
# VERSION '1.4' (the default stays 1.3), then the tests of 1.4's own:
# test/partitions/sql (pg_regress), test/partitions/specs (isolation) and
# test/partitions/rotation_counts.sh (the counts through rotations), and
# test/partitions/dump_restore.sh.
# Expected output is the 1.3 suites' own, but where test/partitions/expected
# has a file of the same name: output that differs on 1.4 by design (the
# direct paths are off on a partitioned qml.jobs; fetch's rows have the
# column slot), each such file named in DIFFERS below with why.
#
# The databases have the names the scheduler leaves alone in test/qml.conf
# (contrib_regression, isolation_regression): the tests call
# qml.maintain() themselves. Their sessions' qml.generation_length is an
# hour (PGOPTIONS), so that a pass never turns the ring under a test that
# does not ask for it; the rotation tests set it to 0.
set -euo pipefail
shopt -s nullglob
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/test/partitions
cd "$root"
work=$here/build
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
export PGOPTIONS="-c qml.generation_length=3600"

# test/partitions/expected/NAME.out and test/partitions/specs/expected/NAME.out:
# why its output differs on 1.4 (the rest of each file is the 1.3 one's)
declare -A DIFFERS=(
	[setup]="the extension's version is 1.4"
	[enqueue]="plans over 20 partitions; errors name the partition the row went to; an admin's unique index must include slot, the partition key"
	[claim_wal]="the claim's one heap_update per job is the direct path's, off on a partitioned qml.jobs: the WAL of qml.jobs' (partitioned, no storage) file is empty"
	[held_direct]="the direct writes of held jobs are off on a partitioned qml.jobs: the statements run, their triggers fire, no WAL names the parent's file"
	[privileges]="without qml.enqueue_as_owner nothing enqueues: on 1.4 every enqueue is a statement"
	[direct_gate]="the gate is always shut on 1.4 (the row trigger runs); errors name the partition; no inheritance child of a partitioned table; a partitioned index takes no RESET; replica identity is each partition's"
	[history_inline]="the extension's version is 1.4; a claim's WAL is the partitions', not the parent's file"
	[queue_head_short]="no queue head on 1.4 (the claim is one statement from the queue's start): a short claim takes the jobs the head would have passed at once"
	[queue_head_pass]="no queue head on 1.4: a claim starts from the queue's start, and takes the oldest jobs"
	[direct_gate_ddl]="errors name the partition the row went to"
	[unchanged_key]="errors name the partition the row went to"
	[direct_index_ddl]="plans over 20 partitions; a partitioned index has no storage, so moving it waits for no writer"
	[claim_race]="the claim is a statement: FOR UPDATE SKIP LOCKED follows a row changed since the snapshot, and in repeatable read fails (40001) where the direct claim took the version it saw (as the SQL edition, docs/sql-edition.md)"
	[fetch_wait_holds]="the claim is a statement: FOR UPDATE keeps the lock of the newer version of a row it then rejects, so in this race a waiting fetch holds a row lock and a transaction id, and the completion waits for it (as the SQL edition); the direct claim over partitions (docs/partitions.md, step 3) takes this back"
)

# name: why it does not run on 1.4
declare -A EXCLUDED=(
	[update_1_0]="ALTER EXTENSION UPDATE from 1.0: its teardown makes the database the default version's (1.3)"
	[update_1_3]="ALTER EXTENSION UPDATE from 1.3 to 1.4: its teardown makes the database the default version's (1.3)"
)

# pgTAP tests that fail on 1.4 by design, by description: why
declare -A TAP_DIFFERS=(
	["qml is at version 1.3"]="this suite's databases are at 1.4"
	["qml.jobs.id is the primary key"]="the primary key is (id, slot): a partitioned table's unique keys include its partition key"
	["jobs_unique_key_idx on (queue, unique_key): a key is its queue's"]="the live keys are in qml.job_keys (its primary key), kept by the trigger jobs_keys"
	["jobs_unique_key_idx is unique"]="as above: qml.job_keys' primary key"
	["jobs_unique_key_idx covers live jobs with a key only"]="as above: the trigger keeps only live jobs' keys"
)

# a database with qml 1.4 (and pgtap for the pgTAP files)
fresh_db() {
	psql_ -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
	psql_ -d "$1" -c "CREATE EXTENSION qml VERSION '1.4'"
}

# every 1.4 alternative of a 1.3 expected file says why
for f in "$here"/expected/*.out "$here"/specs/expected/*.out; do
	n=$(basename "$f" .out)
	[ -f "$here/sql/$n.sql" ] || [ -f "$here/specs/$n.spec" ] || [ -n "${DIFFERS[$n]:-}" ] ||
		{ echo "$f: not in DIFFERS (test/partitions/run.sh)"; exit 1; }
done

list() {
	local t
	for t in $(make -s -f Makefile -f - <<<"print: ; @echo \$($1)" print); do
		[ -n "${EXCLUDED[$t]:-}" ] || echo "$t"
	done
}
# the tests ran on 1.4 to the end: none changed the database's version
still_1_4() {
	[ "$(psql -X -At -d "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'qml'")" = 1.4 ] ||
		{ echo "$1: no longer at version 1.4"; rc=1; }
}

pgxs=$(dirname "$(pg_config --pgxs)")
rc=0
rm -rf "$work" && mkdir -p "$work/sql" "$work/expected" "$work/iso/specs" "$work/iso/expected"

# pg_regress: the 1.3 files, then 1.4's own
own=("$here"/sql/*.sql)
cp sql/*.sql "${own[@]}" "$work/sql/"
cp expected/*.out "$work/expected/" && cp "$here"/expected/*.out "$work/expected/"
fresh_db contrib_regression
"$pgxs/../test/regress/pg_regress" --inputdir="$work" --outputdir="$work" \
	--bindir="$(pg_config --bindir)" --use-existing --dbname=contrib_regression \
	$(list REGRESS) $(for f in "${own[@]}"; do basename "$f" .sql; done) || rc=1
still_1_4 contrib_regression

# isolation: the 1.3 specs, then 1.4's own
own=("$here"/specs/*.spec)
cp test/specs/*.spec "${own[@]}" "$work/iso/specs/"
cp test/expected/*.out "$work/iso/expected/" && cp "$here"/specs/expected/*.out "$work/iso/expected/"
fresh_db isolation_regression
"$pgxs/../test/isolation/pg_isolation_regress" --inputdir="$work/iso" --outputdir="$work/iso" \
	--bindir="$(pg_config --bindir)" --use-existing --dbname=isolation_regression \
	$(list ISOLATION) $(for f in "${own[@]}"; do basename "$f" .spec; done) || rc=1
still_1_4 isolation_regression

# pgTAP: every file, on 1.4; each file's TAP: every planned test ran, and
# what failed is TAP_DIFFERS
db=qml_pgtap_1_4
fresh_db $db
psql_ -d $db -c "CREATE EXTENSION pgtap"
for f in test/pgtap/*.sql; do
	out=$(psql -X -At -v ON_ERROR_STOP=1 -d $db -f "$f" 2>&1) || { echo "$out" | tail -5; rc=1; continue; }
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

# the counts through rotations, on a database the scheduler serves
"$here/rotation_counts.sh" || rc=1
# pg_dump and restore of a 1.4 database
"$here/dump_restore.sh" || rc=1
# the update from 1.3: every job kept, in the ring
"$here/update_1_3.sh" || rc=1

if [ $rc = 0 ]; then
	for d in contrib_regression isolation_regression $db; do
		psql_ -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)"
	done
	rm -rf "$work"
else
	echo "partitions: failed; see $work/regression.diffs and $work/iso/regression.diffs" >&2
fi
exit $rc
