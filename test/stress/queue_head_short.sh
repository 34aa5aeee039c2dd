#!/usr/bin/env bash
# test/stress/queue_head_short.sh: claims that come back short or empty
# move the queue's head (src/queue_head.c) without passing a job.
#
# No backlog: for 8 seconds 4 workers fetch up to 10 jobs in a loop, as
# fast as they can, and complete them, rolling back one claim in five,
# while for the first 7 of them 2 producers enqueue 200 jobs a second each,
# one in ten of them urgent (priority 9). The workers keep up, so nearly
# every claim comes back short or empty and moves the head to the end of
# the queue, while jobs commit behind it and rolled-back claims land
# before it. Then the workers drain the queue and the check is:
#   - every job succeeded exactly once (one claim that committed, one
#     completion), whatever was rolled back;
#   - no job waited long: each was claimed within 1.5 s of its enqueue.
#     The workers run with qml.queue_head_nets off, so a job a short claim
#     passed would wait for the drain, seconds later, not for the walk from
#     the start of the queue that finds it within a second or two.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at (scripts/env.sh), in
# a database of its own (qml_queue_head_short, or $QML_HEAD_SHORT_DB),
# dropped on success. Needs the library preloaded (heads live in shared
# memory).
set -uo pipefail
db=${QML_HEAD_SHORT_DB:-qml_queue_head_short}
work=$(mktemp -d /tmp/qml-queue-head-short.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"

fresh_db
q -c "CREATE TABLE rolled_back (job_id bigint)" || exit 1

cat >"$work/worker.sql" <<'SQL'
\set rollback random(1, 5)
BEGIN;
SELECT coalesce(array_agg(id), '{}')::text AS ids, count(*) AS n FROM qml.fetch('w' || :client_id, '{qs}', 10) \gset
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
SELECT qml.enqueue('urgent', queue => 'qs', priority => 9);
\else
SELECT qml.enqueue('more', queue => 'qs', priority => :p);
\endif
SQL

PGOPTIONS="-c qml.queue_head_nets=off" \
	pgbench -n -M prepared -c 4 -j 2 -T 8 -f "$work/worker.sql" "$db" >"$work/workers.log" 2>&1 &
workers=$!
# the producers stop a second before the workers, as in queue_head.sh
pgbench -n -M prepared -c 2 -j 1 -T 7 -R 400 -f "$work/producer.sql" "$db" >"$work/producers.log" 2>&1 ||
	{ cat "$work/producers.log" >&2; die "producers failed"; }
wait $workers || { cat "$work/workers.log" >&2; die "workers failed"; }
grep -E '^tps' "$work/workers.log" | head -1 | sed 's/^/worker transactions: /'

for _ in $(seq 1 1000); do
	n=$(q -c "SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.fetch('drain', '{qs}', 1000)), 'drain')")
	[ "$n" = 0 ] && break
done

fail=0
check() {	# check NAME SQL-returning-0-when-right
	local got
	got=$(q -c "$2") || { echo "FAIL $1: query failed"; fail=1; return; }
	if [ "$got" = 0 ]; then echo "ok   $1"; else echo "FAIL $1: $got"; fail=1; fi
}
jobs=$(q -c "SELECT count(*) FROM qml.jobs")
[ "$jobs" -gt 1000 ] || die "only $jobs jobs were enqueued"
check "every job of $jobs succeeded (jobs not succeeded)" \
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
check "each job was claimed within 1.5 s of its enqueue (slowest: $(q -c "SELECT round(extract(epoch FROM max(started_at - enqueued_at)) * 1000) || ' ms' FROM qml.jobs"))" \
	"SELECT count(*) FROM qml.jobs WHERE started_at - enqueued_at > interval '1.5 s'"

[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "queue_head_short: ok"
