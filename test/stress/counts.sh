#!/usr/bin/env bash
# test/stress/counts.sh: the jobs per queue and state that qml.stats()
# reads (src/job_counts.c, kept as jobs change, rolled up by the
# scheduler) stay exact under concurrency.
#
# For 8 seconds: 3 producers enqueue single jobs and batches into 6 queues
# (one transaction in eight rolled back); 4 workers fetch, complete or
# fail (with or without retry) and roll back one claim in six; an admin
# deletes, requeues, moves jobs between queues, makes retries due and
# deletes rows outright; a maintainer runs qml.maintain() and prunes; a
# reader calls qml.stats() all along. The scheduler rolls up meanwhile.
# Then qml.stats()'s counts must equal a GROUP BY count of qml.jobs, read
# without a scan of qml.jobs, both at once and after the next roll-up.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at, in a database of
# its own (qml_counts, or $QML_COUNTS_DB), dropped on success. Needs the
# library preloaded and a scheduler serving the database.
set -uo pipefail
db=${QML_COUNTS_DB:-qml_counts}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/qml-counts.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$here/lib.sh"

fresh_db
q -f "$here/../counts_check.sql" >/dev/null || die "cannot install counts_check"
for _ in $(seq 1 100); do
	[ "$(q -c "SELECT count(*) FROM qml.queue_state_counts_basis")" = 1 ] && break
	sleep 0.1
done

cat >"$work/producer.sql" <<'SQL'
\set k random(1, 8)
\set n random(1, 20)
\set q random(0, 5)
BEGIN;
\if :k = 1
SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'b', 'queue', 'q' || g % 6)) FROM generate_series(1, :n) g));
ROLLBACK;
\elif :k < 4
SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'b', 'queue', 'q' || g % 6)) FROM generate_series(1, :n) g));
COMMIT;
\else
SELECT qml.enqueue('m', queue => 'q' || :q, run_at => CASE WHEN :k = 8 THEN now() + interval '1 hour' END);
COMMIT;
\endif
SQL
cat >"$work/worker.sql" <<'SQL'
\set k random(1, 6)
\set q random(0, 5)
BEGIN;
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM qml.fetch('w' || :client_id, ARRAY['q' || :q], 5, session_lease => false) \gset
\if :k = 1
ROLLBACK;
\else
COMMIT;
\if :k = 2
SELECT count(qml.fail(id, 'w' || :client_id, 'boom', id % 2 = 0)) FROM unnest(:ids::bigint[]) id;
\else
SELECT count(*) FROM qml.complete_batch(:ids::bigint[], 'w' || :client_id);
\endif
\endif
SQL
cat >"$work/admin.sql" <<'SQL'
\set k random(1, 6)
\if :k = 1
SELECT qml.delete(id) FROM (SELECT id FROM qml.jobs WHERE state IN ('enqueued', 'scheduled', 'awaiting_retry') ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED) j;
\elif :k = 2
SELECT qml.requeue(id) FROM (SELECT id FROM qml.jobs WHERE state IN ('failed', 'deleted') ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) j;
\elif :k = 3
UPDATE qml.jobs SET queue = 'moved' WHERE id = (SELECT id FROM qml.jobs WHERE state = 'enqueued' ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED);
\elif :k = 4
UPDATE qml.jobs SET run_at = now() WHERE id IN (SELECT id FROM qml.jobs WHERE state IN ('awaiting_retry', 'scheduled') LIMIT 10 FOR UPDATE SKIP LOCKED);
\elif :k = 5
DELETE FROM qml.jobs WHERE id = (SELECT id FROM qml.jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED);
\else
BEGIN;
SELECT qml.requeue(id) FROM (SELECT id FROM qml.jobs WHERE state = 'succeeded' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) j;
ROLLBACK;
\endif
SQL
cat >"$work/maintainer.sql" <<'SQL'
UPDATE qml.jobs SET finished_at = now() - interval '30 days' WHERE id IN (SELECT id FROM qml.jobs WHERE state = 'succeeded' ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED);
SELECT qml.maintain();
SQL
cat >"$work/reader.sql" <<'SQL'
SELECT count(*) FROM qml.stats();
SQL

pids=()
pgbench -n -M prepared -c 3 -j 1 -T 8 -R 300 -f "$work/producer.sql" "$db" >"$work/producer.log" 2>&1 & pids+=($!)
pgbench -n -M prepared -c 4 -j 1 -T 8 -R 400 -f "$work/worker.sql" "$db" >"$work/worker.log" 2>&1 & pids+=($!)
pgbench -n -M prepared -c 1 -j 1 -T 8 -R 100 -f "$work/admin.sql" "$db" >"$work/admin.log" 2>&1 & pids+=($!)
pgbench -n -M prepared -c 1 -j 1 -T 8 -R 5 -f "$work/maintainer.sql" "$db" >"$work/maintainer.log" 2>&1 & pids+=($!)
pgbench -n -M prepared -c 1 -j 1 -T 8 -R 20 -f "$work/reader.sql" "$db" >"$work/reader.log" 2>&1 & pids+=($!)
for p in "${pids[@]}"; do
	wait "$p" || { cat "$work"/*.log >&2; die "a client failed"; }
done

echo "jobs: $(q -c "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) FROM (SELECT state, count(*) n FROM qml.jobs GROUP BY 1) s")"
fail=0
got=$(q -c "SELECT counts_check()")
if [ "$got" = exact ]; then echo "ok   qml.stats() exact after the run, without a scan"; else echo "FAIL qml.stats() after the run: $got"; fail=1; fi
q -c "SELECT qml.maintain()" >/dev/null
got=$(q -c "SELECT counts_check()")
if [ "$got" = exact ]; then echo "ok   ... and after a roll-up"; else echo "FAIL after a roll-up: $got"; fail=1; fi
rolled=$(q -c "SELECT count(*) FROM qml.queue_state_counts")
[ "$rolled" -gt 0 ] || { echo "FAIL nothing was rolled up"; fail=1; }

[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "counts: ok"
