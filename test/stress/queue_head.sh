#!/usr/bin/env bash
# test/stress/queue_head.sh: claims that start at the queue's head
# (src/queue_head.c) neither lose nor strand jobs under concurrency.
#
# A backlog of 200,000 jobs at priorities 0-3; then, for 8 seconds, 4
# workers fetch 10 at a time (2,000 claims a second in all) and complete
# them, rolling back one claim in five, while for the first 7 of them 2
# producers enqueue more, one in ten of them urgent (priority 9). Every claim that rolls back, and
# every urgent job, lands before the head the other workers move forward.
# Then the workers drain the queue and
# the check is:
#   - every job succeeded exactly once (one claim that committed, one
#     completion), whatever was rolled back;
#   - no urgent job waited long: each was claimed within 900 ms of its
#     enqueue (a job the head hid would wait until the backlog ran out,
#     seconds later).
#
# Runs against the server PGHOST/PGPORT/PGUSER point at (scripts/env.sh), in
# a database of its own (qml_queue_head, or $QML_HEAD_DB), dropped on
# success. Needs the library preloaded (heads live in shared memory).
set -uo pipefail
db=${QML_HEAD_DB:-qml_queue_head}
work=$(mktemp -d /tmp/qml-queue-head.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"

fresh_db
q -c "CREATE TABLE rolled_back (job_id bigint)" || exit 1
q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
		'method', 'backlog', 'queue', 'qh', 'priority', g % 4)) FROM generate_series(1, 200000) g))" \
	>/dev/null || die "enqueue failed"

cat >"$work/worker.sql" <<'SQL'
\set rollback random(1, 5)
BEGIN;
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM qml.fetch('w' || :client_id, '{qh}', 10) \gset
\if :rollback = 1
ROLLBACK;
INSERT INTO rolled_back SELECT unnest(:ids::bigint[]);
\else
COMMIT;
SELECT count(*) FROM qml.complete_batch(:ids::bigint[], 'w' || :client_id);
\endif
SQL
cat >"$work/producer.sql" <<'SQL'
\set urgent random(1, 10)
\set p random(0, 3)
\if :urgent = 1
SELECT qml.enqueue('urgent', queue => 'qh', priority => 9);
\else
SELECT qml.enqueue('more', queue => 'qh', priority => :p);
\endif
SQL

pgbench -n -M prepared -c 4 -j 2 -T 8 -R 2000 -f "$work/worker.sql" "$db" >"$work/workers.log" 2>&1 &
workers=$!
# the producers stop a second before the workers: an urgent job enqueued
# as the workers stop would wait for the drain below (psql starts on a
# loaded machine), not for the head, and the 900 ms bound is about the head
pgbench -n -M prepared -c 2 -j 1 -T 7 -R 400 -f "$work/producer.sql" "$db" >"$work/producers.log" 2>&1 ||
	{ cat "$work/producers.log" >&2; die "producers failed"; }
wait $workers || { cat "$work/workers.log" >&2; die "workers failed"; }
grep -E '^tps' "$work/workers.log" | head -1 | sed 's/^/workers: /'
left=$(q -c "SELECT count(*) FROM qml.jobs WHERE state = 'enqueued'")
echo "backlog left after 8 s: $left"
[ "$left" -gt 0 ] || echo "note: the backlog ran out; the urgent-job check is weaker"

# drain what is left (a round of fetches that claims nothing ends it)
for _ in $(seq 1 1000); do
	n=$(q -c "SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.fetch('drain', '{qh}', 1000)), 'drain')")
	[ "$n" = 0 ] && break
done

fail=0
check() {	# check NAME SQL-returning-0-when-right
	local got
	got=$(q -c "$2") || { echo "FAIL $1: query failed"; fail=1; return; }
	if [ "$got" = 0 ]; then echo "ok   $1"; else echo "FAIL $1: $got"; fail=1; fi
}
check "every job succeeded (jobs not succeeded)" \
	"SELECT count(*) FROM qml.jobs WHERE state <> 'succeeded'"
check "each job was claimed by one committed claim and completed once" \
	"SELECT count(*) FROM (SELECT e.job_id FROM qml.job_events e
	   GROUP BY e.job_id
	  HAVING count(*) FILTER (WHERE e.to_state = 'processing') <> 1
	      OR count(*) FILTER (WHERE e.to_state = 'succeeded') <> 1) bad"
rolled=$(q -c "SELECT count(DISTINCT job_id) FROM rolled_back")
[ "$rolled" -gt 0 ] || die "no claim was rolled back"
check "the $rolled jobs of rolled-back claims were claimed again and succeeded" \
	"SELECT count(*) FROM rolled_back r JOIN qml.jobs j ON j.id = r.job_id WHERE j.state <> 'succeeded'"
urgent=$(q -c "SELECT count(*) FROM qml.jobs WHERE method = 'urgent'")
[ "$urgent" -gt 50 ] || die "only $urgent urgent jobs were enqueued"
check "each of $urgent urgent jobs was claimed within 900 ms of its enqueue (slowest: $(q -c "SELECT round(extract(epoch FROM max(started_at - enqueued_at)) * 1000) || ' ms' FROM qml.jobs WHERE method = 'urgent'"))" \
	"SELECT count(*) FROM qml.jobs WHERE method = 'urgent' AND started_at - enqueued_at > interval '900 ms'"

[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "queue_head: ok"
