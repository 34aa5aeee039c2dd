#!/usr/bin/env bash
# test/partitions/update_1_3.sh: ALTER EXTENSION qml UPDATE TO '1.4' on a
# 1.3 database that a scheduler serves, with jobs in every state, unique
# keys, history and a worker's grants, keeps every job: each column as it
# was (ids and history included), the live jobs in slot 0 and the finished
# ones in qml.jobs_archive, the live keys in qml.job_keys, the counts
# exact, the history's rows, and the identity's position (no id handed
# out twice, even one a session had cached). Then the API works on the
# ring: the worker completes a job it claimed before the update, a key
# still held refuses a second job, a rotation moves the jobs on.
# (test/upgrade/catalog.sh compares the updated catalog with a fresh 1.4.)
. "$(dirname "$0")/../scheduler/lib.sh"
tmp=$(mktemp -d /tmp/U-update.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
db=qml_part_update
psql -X -q -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
psql -X -q -d postgres -c "DO \$\$BEGIN CREATE ROLE qml_part_worker; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null
q $db -c "CREATE EXTENSION qml VERSION '1.3'" \
	-c "SELECT qml.grant_worker('qml_part_worker')" >/dev/null || { fail "a 1.3 database"; finish; }
wait_scheduler $db
counts_check $db

# every state: enqueued (with and without keys), processing (by the
# worker's role), succeeded, failed, awaiting_retry, deleted, scheduled
q $db >/dev/null <<'SQL' || fail "jobs in every state"
SELECT qml.enqueue('m', jsonb_build_array(g), queue => 'q' || g % 3,
				   unique_key => CASE WHEN g % 2 = 0 THEN 'k' || g END)
  FROM generate_series(1, 40) g;
SELECT qml.schedule('later', '[]', delay => interval '1 hour', unique_key => 'sk');
SET ROLE qml_part_worker;
SELECT count(*) FROM qml.fetch('w', '{q0,q1,q2}', batch => 12);
RESET ROLE;
SELECT qml.complete(id, 'w', '{"r": 1}') FROM qml.jobs WHERE state = 'processing' ORDER BY id LIMIT 3;
SELECT qml.fail(id, 'w', 'boom', retry => false) FROM qml.jobs WHERE state = 'processing' ORDER BY id LIMIT 2;
SELECT qml.fail(id, 'w', 'again') FROM qml.jobs WHERE state = 'processing' ORDER BY id LIMIT 2;
SELECT qml.delete(id) FROM qml.jobs WHERE state = 'enqueued' ORDER BY id LIMIT 2;
SQL
# a session that took a block of ids from the cache and used one
q $db -c "SELECT qml.enqueue('cached')" >/dev/null

rows="SELECT j.id, to_jsonb(j) - 'slot' FROM qml.jobs j ORDER BY j.id"
q $db -c "$rows" >"$tmp/before"
q $db -c "SELECT count(*) FROM qml.job_events" >"$tmp/events_before"
seq_before=$(q $db -c "SELECT last_value FROM qml.jobs_id_seq")
check "the 1.3 database has every state" 7 "$(q $db -c "SELECT count(DISTINCT state) FROM qml.jobs")"

check "ALTER EXTENSION qml UPDATE TO '1.4'" 1.4 \
	"$(q $db -c "ALTER EXTENSION qml UPDATE TO '1.4'" -c "SELECT extversion FROM pg_extension WHERE extname = 'qml'" 2>&1)"

q $db -c "$rows" >"$tmp/after"
if diff "$tmp/before" "$tmp/after" >"$tmp/diff"; then
	ok "every job kept, each column as it was ($(wc -l <"$tmp/before") jobs)"
else
	fail "every job kept, each column as it was" "$(head -5 "$tmp/diff")"
fi
check "the history's rows kept" "$(cat "$tmp/events_before")" "$(q $db -c "SELECT count(*) FROM qml.job_events")"
check "live jobs in slot 0, finished ones in the archive" "0" "$(q $db -c "
	SELECT count(*) FROM qml.jobs
	 WHERE slot <> CASE WHEN state IN ('succeeded', 'failed', 'deleted') THEN -1 ELSE 0 END")"
check "qml.generations: generation 0 in slot 0" "0|0|1" \
	"$(q $db -F '|' -c "SELECT slot, generation, first_id FROM qml.generations")"
check "the live keys in qml.job_keys" "t|t" "$(q $db -F '|' -c "
	SELECT (SELECT array_agg((queue, unique_key, job_id) ORDER BY job_id) FROM qml.job_keys)
		 = (SELECT array_agg((queue, unique_key, id) ORDER BY id) FROM qml.jobs
			 WHERE unique_key IS NOT NULL
			   AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry')),
		   (SELECT count(*) > 10 FROM qml.job_keys)")"
check "the counts exact after the update" exact "$(poll 5 $db "SELECT counts_check()" exact)"
check "the identity goes on from where it was" "$seq_before|t" "$(q $db -F '|' -c "
	SELECT last_value, qml.enqueue('new') > $seq_before FROM qml.jobs_id_seq")"

# the API on the ring: the worker completes a job it claimed before, a
# live key refuses a second job (enqueue answers the holder's id), a
# slot's turn moves the live jobs on and leaves the counts exact
held=$(q $db -c "SELECT min(id) FROM qml.jobs WHERE state = 'processing'")
check "the worker completes a job claimed before the update" t \
	"$(q $db -c "SET ROLE qml_part_worker" -c "SELECT qml.complete($held, 'w')")"
check "a key held before the update still holds" \
	"$(q $db -c "SELECT job_id FROM qml.job_keys WHERE queue = 'default' AND unique_key = 'sk'")" \
	"$(q $db -c "SELECT qml.schedule('later', '[]', delay => interval '1 hour', unique_key => 'sk')")"
check "19 rotations move slot 0's jobs on" "19|0" "$(q $db -F '|' -c "SET qml.generation_length = 0" \
	-c "SELECT max(qml.rotate()) FROM generate_series(1, 19)" \
	-c "SELECT count(*) FROM qml.jobs WHERE slot = 0" | paste -sd '|')"
check "the counts exact after rotations" exact "$(poll 5 $db "SELECT counts_check()" exact)"

[ "$failures" -eq 0 ] && dropdb_ $db
finish
