#!/usr/bin/env bash
# test/upgrade/under_load.sh [FROM]: ALTER EXTENSION qml UPDATE (FROM, 1.0
# by default, or 1.1 or 1.2, -> 1.3; or 1.3 -> 1.4, the ring) while
# a worker fetches and completes, a producer enqueues, the scheduler
# promotes and fires a recurring job, and a worker session holds leases
# across the update, extending them before and after it (from 1.2 the
# update makes qml.heartbeat C: the session calls the PL/pgSQL function,
# then the C one). The database holds jobs in every state and their
# history when it is updated. Then every job is checked: none lost, none
# run twice, every state as it should be, the history whole, the counts
# right, the held leases still their worker's, and no crash in the log.
. "$(dirname "$0")/../scheduler/lib.sh"
from=${1:-1.0}
# the version it goes to: the default, but from 1.3 to 1.4 (not the default)
to=1.3 update="ALTER EXTENSION qml UPDATE"
[ "$from" = 1.3 ] && to=1.4 update="ALTER EXTENSION qml UPDATE TO '1.4'"
db=qml_up_load
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log0=$(log_lines)

for r in qml_up_producer qml_up_worker; do
	psql -X -q -d postgres -c "DO \$\$BEGIN CREATE ROLE $r; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" \
		-c "ALTER ROLE $r LOGIN" >/dev/null
done
dropdb_ $db
psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
q $db -c "CREATE EXTENSION qml VERSION '$from'" \
	-c "SELECT qml.grant_producer('qml_up_producer'), qml.grant_worker('qml_up_worker')" >/dev/null ||
	{ fail "CREATE EXTENSION qml VERSION '$from'"; finish; }
wait_scheduler $db

# jobs in every state, with history, before the update
q $db >/dev/null <<'SQL'
SELECT qml.enqueue('done', jsonb_build_array(g), queue => 'old') FROM generate_series(1, 50) g;
SELECT count(qml.complete(f.id, 'w0')) FROM qml.fetch('w0', '{old}', 50, session_lease => false) f;
SELECT qml.enqueue('broken', max_attempts => 1, queue => 'old') FROM generate_series(1, 10);
SELECT count(qml.fail(f.id, 'w0', 'boom')) FROM qml.fetch('w0', '{old}', 10, session_lease => false) f;
SELECT qml.enqueue('again', backoff_base => '1 hour', queue => 'old') FROM generate_series(1, 10);
SELECT count(qml.fail(f.id, 'w0', 'later')) FROM qml.fetch('w0', '{old}', 10, session_lease => false) f;
SELECT count(qml.delete(qml.enqueue('gone', queue => 'old'))) FROM generate_series(1, 10);
SELECT qml.enqueue('far', run_at => now() + interval '1 day', queue => 'old') FROM generate_series(1, 10);
SELECT qml.enqueue('soon', run_at => now() + interval '3 seconds') FROM generate_series(1, 100);
SELECT qml.enqueue('key', unique_key => 'k' || g, queue => 'keys') FROM generate_series(1, 10) g;
SELECT qml.enqueue('time_held', queue => 'held') FROM generate_series(1, 5);
SELECT count(*) FROM qml.fetch('admin_w', '{held}', 5, lease => '1 hour', session_lease => false);
SELECT qml.enqueue('work', jsonb_build_array(g)) FROM generate_series(1, 3000) g;
SELECT qml.enqueue('session_held', queue => 'held2') FROM generate_series(1, 5);
SELECT qml.add_recurring('tick', '1 second', 'tick_job', queue => 'ticks');
SQL
q $db -c "COPY (SELECT id, state, attempts, finished_at FROM qml.jobs WHERE queue = 'old' ORDER BY id) TO STDOUT" >"$tmp/old_before"
q $db -c "COPY (SELECT id, job_id, from_state, to_state, at, worker, error FROM qml.job_events ORDER BY id) TO STDOUT" >"$tmp/events_before"
last_event=$(q $db -c "SELECT max(id) FROM qml.job_events")

# a worker session (a worker role, logged in as itself) that holds leases
# across the update
(
	echo "CREATE TEMP TABLE held AS SELECT id FROM qml.fetch('holder', '{held2}', 5, lease => '1 hour', session_lease => true);"
	echo "SELECT count(*) FROM qml.heartbeat((SELECT array_agg(id) FROM held), 'holder', '2 hours');"
	echo "\\echo held"
	while [ ! -f "$tmp/updated" ]; do sleep 0.1; done
	echo "SELECT count(*) FROM qml.heartbeat((SELECT array_agg(id) FROM held), 'holder', '3 hours');"
	echo "SELECT count(*) FROM qml.complete_batch((SELECT array_agg(id) FROM held), 'holder');"
) | psql -X -q -At -U qml_up_worker -d $db >"$tmp/holder" 2>&1 &
holder=$!
# a worker (not an admin): one session, started on the old version, going on on the new;
# every job it is handed is logged with whether it completed it
(
	for i in $(seq 1 600); do
		echo "SELECT f.id || ' ' || qml.complete(f.id, 'upw') FROM qml.fetch('upw', '{default}', 10) f;"
		[ -f "$tmp/stop" ] && break
		sleep 0.01
	done
) | psql -X -q -At -U qml_up_worker -d $db >"$tmp/runs" 2>"$tmp/worker_err" &
worker=$!
# a producer: every id it prints was acknowledged (committed)
seq 1 1500 | sed "s/.*/SELECT qml.enqueue('produced', '[&]');/" |
	psql -X -q -At -U qml_up_producer -d $db >"$tmp/acked" 2>"$tmp/producer_err" &
producer=$!
poll 10 $db "SELECT count(*) FROM qml.jobs WHERE queue = 'held2' AND state = 'processing'" 5 >/dev/null
sleep 1

t0=$(now)
out=$(q $db -c "$update" -c "SELECT extversion FROM pg_extension WHERE extname = 'qml'" 2>&1)
t1=$(now)
touch "$tmp/updated"
check "ALTER EXTENSION qml UPDATE from $from to $to under load (took $(elapsed "$t0" "$t1") s)" "$to" "$out"
wait $producer
sleep 2
touch "$tmp/stop"
wait $worker
wait $holder

# From 1.3 to 1.4 the update replaces qml.jobs and qml.fetch: a fetch
# statement parsed while the update held the table resolved fetch's result
# type, the old table's row type, and fails once when the update drops it
# (PostgreSQL's parser, docs/upgrading.md); the worker's next one goes on.
# It claimed nothing then, so every check below holds as for the others.
if [ "$to" = 1.4 ]; then
	grep -v 'could not open relation with OID' "$tmp/worker_err" >"$tmp/worker_err_left"
	echo "the worker's failed fetches: $(grep -c . "$tmp/worker_err")"
	mv "$tmp/worker_err_left" "$tmp/worker_err"
fi
check "the producer and the worker saw no error" "" "$(cat "$tmp/producer_err" "$tmp/worker_err")"
check "the worker completed jobs before and after the update" "t t" \
	"$(q $db -F ' ' -c "SELECT count(*) FILTER (WHERE at < to_timestamp($t0)) > 0, count(*) FILTER (WHERE at > to_timestamp($t1)) > 0 FROM qml.job_events WHERE worker = 'upw' AND to_state = 'succeeded'")"
# what the worker left, drained by the admin (no session lease to lose),
# once the 'soon' jobs are due (3 s after they were made: on a fast
# machine the steps above may take about that long, and a drain before it
# would leave them scheduled)
poll 10 $db "SELECT count(*) FROM qml.jobs WHERE method = 'soon' AND run_at > now()" 0 >/dev/null
for i in 1 2 3 4 5 6 7 8; do
	q $db -c "SELECT count(qml.complete(f.id, 'drain')) FROM qml.fetch('drain', '{default}', 1000) f" >/dev/null
done

acked=$(grep -c . "$tmp/acked")
check "every acknowledged enqueue is there (of 1500)" "1500 1500" \
	"$acked $(q $db -c "SELECT count(*) FROM qml.jobs WHERE method = 'produced' AND arguments->>0 IS NOT NULL")"
check "no job was handed to the worker twice" "" "$(cut -d' ' -f1 "$tmp/runs" | sort | uniq -d | head -5)"
check "the worker completed every job it was handed" "0" "$(grep -vc ' true$' "$tmp/runs")"
check "every job of the default queue succeeded, each on its first attempt" "4600 4600 1" \
	"$(q $db -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded'), max(attempts) FROM qml.jobs WHERE queue = 'default'")"
check "the jobs finished before the update are as they were" "" \
	"$(q $db -c "COPY (SELECT id, state, attempts, finished_at FROM qml.jobs WHERE queue = 'old' ORDER BY id) TO STDOUT" | diff "$tmp/old_before" - | head -5)"
check "states of the old jobs" "awaiting_retry 10|deleted 10|failed 10|scheduled 10|succeeded 50" \
	"$(q $db -c "SELECT string_agg(state || ' ' || n, '|' ORDER BY state::text) FROM (SELECT state, count(*) n FROM qml.jobs WHERE queue = 'old' GROUP BY 1) s")"
check "the leases held across the update were extended and completed by their (non-admin) worker" "5
held
5
5" "$(cat "$tmp/holder")"
check "a time lease taken under 1.0 is still held" "5 processing" \
	"$(q $db -c "SELECT count(*) || ' ' || min(state) FROM qml.jobs WHERE queue = 'held'")"
check "its worker's admin completes it" "5" \
	"$(q $db -c "SELECT count(*) FILTER (WHERE qml.complete(id, 'admin_w')) FROM qml.jobs WHERE queue = 'held'")"
check "unique keys kept, now per queue" "10 t" \
	"$(q $db -F ' ' -c "SELECT count(*), qml.enqueue('key', unique_key => 'k1', queue => 'keys') = min(id) FILTER (WHERE unique_key = 'k1') FROM qml.jobs WHERE queue = 'keys'")"
# history: every job's events, one per state change, none lost or doubled
check "history: every succeeded job was claimed once and completed once" "0" \
	"$(q $db -c "SELECT count(*) FROM qml.jobs j WHERE j.state = 'succeeded' AND j.queue IN ('default', 'held', 'held2')
		AND (SELECT count(*) FILTER (WHERE e.to_state = 'processing') || '/' || count(*) FILTER (WHERE e.to_state = 'succeeded') FROM qml.job_events e WHERE e.job_id = j.id) <> '1/1'")"
check "the history of before the update is as it was ($(wc -l <"$tmp/events_before") events)" "" \
	"$(q $db -c "COPY (SELECT id, job_id, from_state, to_state, at, worker, error FROM qml.job_events WHERE id <= $last_event ORDER BY id) TO STDOUT" | diff "$tmp/events_before" - | head -5)"
check "scheduled jobs promoted (and run)" "100" \
	"$(q $db -c "SELECT count(*) FROM qml.jobs WHERE method = 'soon' AND state = 'succeeded'")"
check "the recurring job fired after the update, no due time twice" "t t" \
	"$(q $db -F ' ' -c "SELECT max(run_at) > to_timestamp($t1), count(*) = count(DISTINCT run_at) FROM qml.jobs WHERE method = 'tick_job'")"
counts="SELECT string_agg(format('%s %s %s %s %s %s %s %s', queue, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted), '|' ORDER BY queue)"
truth="$(q $db -c "$counts FROM (SELECT queue, count(*) FILTER (WHERE state = 'scheduled') scheduled, count(*) FILTER (WHERE state = 'enqueued') enqueued, count(*) FILTER (WHERE state = 'processing') processing, count(*) FILTER (WHERE state = 'awaiting_retry') awaiting_retry, count(*) FILTER (WHERE state = 'succeeded') succeeded, count(*) FILTER (WHERE state = 'failed') failed, count(*) FILTER (WHERE state = 'deleted') deleted FROM qml.jobs WHERE method <> 'tick_job' GROUP BY queue) s")"
q $db -c "SELECT qml.remove_recurring('tick')" >/dev/null
check "qml.stats() counts every job" "$truth" "$(q $db -c "$counts FROM qml.stats() WHERE queue <> 'ticks'")"
sleep 2
check "qml.stats() once the scheduler counts" "$truth" "$(q $db -c "$counts FROM qml.stats() WHERE queue <> 'ticks'")"
check "the counts table was built from the jobs" "t" "$(q $db -c "SELECT count(*) > 0 FROM qml.queue_state_counts_basis")"
check "nothing crashed, deadlocked or failed in the server log" "" \
	"$(log_since "$log0" | grep -E 'terminated by signal|deadlock|PANIC|server process' | head -5)"
dropdb_ $db
finish
