#!/usr/bin/env bash
# test/stress/held_mix.sh: the writes of held jobs (complete, complete_batch,
# fail, fail_batch, heartbeat, release: src/worker_write.c's direct loop and
# src/worker_held.c's statements) under everything that races them at once,
# while the direct-write gate flips: no job lost, none completed twice, no
# stale worker writing a job another holds, counts and history true.
#
# For QML_HELD_MIX_SECONDS (10): 2 producers enqueue into 3 queues (jobs of
# 1 to 3 attempts, retries due within 200 ms); 5 workers fetch with leases
# of 0.3 to 2 s and then, by turns, complete (in batch, one by one, with
# results, in REPEATABLE READ or SERIALIZABLE), fail in batch with and
# without retry, heartbeat and complete, release one and complete the
# rest, complete after their lease ran out, roll a completion back (a whole
# transaction, or a savepoint around it), complete jobs they do not hold,
# fetch and complete in one transaction, or prepare a completion (then
# committed) or a release (then rolled back); an admin deletes and requeues
# jobs and makes leases run out; a worker's session is killed while it
# holds jobs on session leases; the scheduler rescues expired leases and
# ended sessions; and a DDL client adds and drops a BEFORE UPDATE trigger
# and an index on qml.jobs, so that the calls switch between the direct
# path and the statements (also while an index is built CONCURRENTLY).
# Every worker logs, in the transaction of each call, what the call
# returned (claims, done, failed, released, beats).
#
# Then, with every client gone: the scheduler alone must rescue every lease
# (nothing held by a dead lease), a drain finishes what is left, and
# - no job a producer enqueued is gone, and every job is in a final state;
# - each job's history is one chain (each change starts where the last
#   ended, the last ends in the row's state): nothing done twice from the
#   same state, no write lost;
# - per job and worker, the history's claims, completions, failures (by
#   state) and releases are exactly the calls the workers saw succeed: no
#   call wrote a job its worker did not hold, none reported a write it did
#   not make;
# - a job's attempts are its claims since it was last requeued, less its
#   releases;
# - every heartbeat returned only jobs its worker held;
# - qml.jobs and its indexes pass amcheck (every row in every index it
#   belongs to);
# - qml.stats() equals a count of qml.jobs;
# - both paths ran: the admin's trigger saw statement updates.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at, in a database of
# its own (qml_held_mix, or $QML_HELD_MIX_DB), dropped on success. Needs
# the library preloaded and a scheduler serving the database.
set -uo pipefail
db=${QML_HELD_MIX_DB:-qml_held_mix}
secs=${QML_HELD_MIX_SECONDS:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/qml-held-mix.XXXXXX)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null' EXIT

. "$here/lib.sh"

fresh_db
q -f "$here/../counts_check.sql" >/dev/null || die "cannot install counts_check"
q -c "CREATE EXTENSION amcheck" >/dev/null || die "cannot create extension amcheck"
q <<'SQL' || die "cannot create the logs"
CREATE TABLE made (job bigint);
CREATE TABLE claims (job bigint, worker text, attempts int);
CREATE TABLE done (job bigint, worker text);
CREATE TABLE failed (job bigint, worker text, state qml.job_state);
CREATE TABLE released (job bigint, worker text);
CREATE TABLE beats (job bigint, worker text, held boolean);
-- the admin's trigger: its calls show the statements ran
CREATE TABLE stmt_hits (n int);
CREATE FUNCTION stmt_hit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.stmt_hits VALUES (1);
	RETURN NEW;
END $$;
SQL
for _ in $(seq 1 100); do
	[ "$(q -c "SELECT count(*) FROM qml.queue_state_counts_basis")" = 1 ] && break
	sleep 0.1
done

cat >"$work/producer.sql" <<'SQL'
\set n random(1, 10)
INSERT INTO made SELECT * FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
	'method', 'm', 'queue', 'q' || g % 3, 'max_attempts', 1 + g % 3,
	'backoff_base', '20 ms', 'backoff_cap', '200 ms')) FROM generate_series(1, :n) g));
SQL

# w<client>: fetch up to 4 jobs of one queue (the claims logged in the
# claim's transaction), then one of the turns below. A turn that fails
# with a serialization failure is tried again from the start (pgbench
# --max-tries): its claims stand, and their leases run out.
cat >"$work/worker.sql" <<'SQL'
\set k random(1, 15)
\set q random(0, 2)
\set lease random(300, 2000)
\if :k = 13
-- fetch and complete in one transaction
BEGIN;
WITH f AS (SELECT id, attempts FROM qml.fetch(('w' || :client_id), ARRAY['q' || :q], 4, make_interval(secs => :lease / 1000.0))),
	 l AS (INSERT INTO claims SELECT id, ('w' || :client_id), attempts FROM f)
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM f \gset
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id)) c;
COMMIT;
\else
BEGIN;
WITH f AS (SELECT id, attempts FROM qml.fetch(('w' || :client_id), ARRAY['q' || :q], 4, make_interval(secs => :lease / 1000.0))),
	 l AS (INSERT INTO claims SELECT id, ('w' || :client_id), attempts FROM f)
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM f \gset
COMMIT;
\if :k = 1
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id)) c;
\elif :k = 2
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id),
	(SELECT array_agg(jsonb_build_object('job', i)) FROM unnest(':ids'::bigint[]) i)) c;
\elif :k = 3
-- fail: retry asked for one job in two
INSERT INTO failed SELECT f.job_id, ('w' || :client_id), f.state
  FROM qml.fail_batch(':ids'::bigint[], ('w' || :client_id),
					  ARRAY(SELECT 'err ' || i FROM unnest(':ids'::bigint[]) i),
					  ARRAY(SELECT random() < 0.5 FROM unnest(':ids'::bigint[]) i)) f;
\elif :k = 4
INSERT INTO failed SELECT i, ('w' || :client_id), s
  FROM unnest(':ids'::bigint[]) i, qml.fail(i, ('w' || :client_id), 'err ' || i) s WHERE s IS NOT NULL;
\elif :k = 5
-- heartbeat, checked in its transaction, then complete one by one
BEGIN;
INSERT INTO beats SELECT h, ('w' || :client_id), j.state = 'processing' AND j.locked_by = ('w' || :client_id)
  FROM qml.heartbeat(':ids'::bigint[], ('w' || :client_id), interval '1 second') h JOIN qml.jobs j ON j.id = h;
COMMIT;
INSERT INTO done SELECT i, ('w' || :client_id) FROM unnest(':ids'::bigint[]) i WHERE qml.complete(i, ('w' || :client_id), '{"one": 1}');
\elif :k = 6
-- give the first back, complete the rest
INSERT INTO released SELECT i, ('w' || :client_id) FROM (SELECT (':ids'::bigint[])[1] AS i) f
 WHERE qml.release(i, ('w' || :client_id));
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id)) c;
\elif :k = 7
-- complete after the lease ran out: the job may have been rescued and
-- claimed by another worker meanwhile
\sleep 2100 ms
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id)) c;
\elif :k = 8
-- a completion rolled back: the leases run out
BEGIN;
SELECT count(*) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id));
ROLLBACK;
\elif :k = 9
-- a savepoint rolled back around a completion, then the job failed
BEGIN;
SAVEPOINT s;
SELECT count(*) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id));
ROLLBACK TO s;
INSERT INTO failed SELECT f.job_id, ('w' || :client_id), f.state
  FROM qml.fail_batch(':ids'::bigint[], ('w' || :client_id), array_fill('err'::text, ARRAY[cardinality(':ids'::bigint[])]),
					  array_fill(false, ARRAY[cardinality(':ids'::bigint[])])) f;
COMMIT;
\elif :k = 10
-- jobs other workers hold, or held once, named beside its own
INSERT INTO done SELECT c, ('w' || :client_id)
  FROM qml.complete_batch(ARRAY(SELECT id FROM qml.jobs WHERE state = 'processing' LIMIT 4) ||
						  ARRAY(SELECT job FROM claims ORDER BY random() LIMIT 4) || ':ids'::bigint[],
						  ('w' || :client_id)) c;
\elif :k = 14
-- two-phase: a completion prepared, then committed
BEGIN;
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id)) c;
PREPARE TRANSACTION 'held_mix_:client_id';
COMMIT PREPARED 'held_mix_:client_id';
\elif :k = 15
-- two-phase: a release prepared, then rolled back (the leases run out)
BEGIN;
SELECT count(*) FROM unnest(':ids'::bigint[]) i WHERE qml.release(i, ('w' || :client_id));
PREPARE TRANSACTION 'held_mix_:client_id';
ROLLBACK PREPARED 'held_mix_:client_id';
\elif :k = 11
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO done SELECT c, ('w' || :client_id) FROM qml.complete_batch(':ids'::bigint[], ('w' || :client_id)) c;
COMMIT;
\else
BEGIN ISOLATION LEVEL SERIALIZABLE;
INSERT INTO failed SELECT f.job_id, ('w' || :client_id), f.state
  FROM qml.fail_batch(':ids'::bigint[], ('w' || :client_id), array_fill('err'::text, ARRAY[cardinality(':ids'::bigint[])])) f;
COMMIT;
\endif
\endif
SQL

cat >"$work/admin.sql" <<'SQL'
\set k random(1, 4)
\if :k = 1
SELECT qml.delete(id) FROM (SELECT id FROM qml.jobs WHERE state IN ('enqueued', 'processing', 'awaiting_retry')
							 ORDER BY random() LIMIT 1) j;
\elif :k = 2
SELECT qml.requeue(id) FROM (SELECT id FROM qml.jobs WHERE state IN ('failed', 'deleted', 'succeeded')
							  ORDER BY random() LIMIT 1) j;
\elif :k = 3
UPDATE qml.jobs SET locked_until = now() - interval '1 second'
 WHERE id = (SELECT id FROM qml.jobs WHERE state = 'processing' ORDER BY random() LIMIT 1);
\else
SELECT qml.maintain();
\endif
SQL

# the gate: a BEFORE UPDATE trigger, then an index, then one built and
# dropped CONCURRENTLY (not yet valid, not yet ready, while the writes
# go on), each for a while
cat >"$work/ddl.sql" <<'SQL'
CREATE TRIGGER held_mix_tg BEFORE UPDATE ON qml.jobs FOR EACH ROW EXECUTE FUNCTION public.stmt_hit();
\sleep 400 ms
DROP TRIGGER held_mix_tg ON qml.jobs;
\sleep 400 ms
CREATE INDEX held_mix_idx ON qml.jobs (locked_by);
\sleep 400 ms
DROP INDEX qml.held_mix_idx;
\sleep 400 ms
CREATE INDEX CONCURRENTLY held_mix_cic ON qml.jobs (priority) WHERE state = 'processing';
\sleep 400 ms
DROP INDEX CONCURRENTLY qml.held_mix_cic;
\sleep 400 ms
SQL

pids=()
pgbench -n -M prepared -c 2 -j 1 -T "$secs" -R 60 -f "$work/producer.sql" "$db" >"$work/producer.log" 2>&1 & pids+=($!)
pgbench -n -M simple -c 5 -j 2 -T "$secs" --max-tries=100 -f "$work/worker.sql" "$db" >"$work/worker.log" 2>&1 & pids+=($!)
pgbench -n -M prepared -c 1 -j 1 -T "$secs" -R 20 -f "$work/admin.sql" "$db" >"$work/admin.log" 2>&1 & pids+=($!)
pgbench -n -M simple -c 1 -j 1 -T "$secs" -f "$work/ddl.sql" "$db" >"$work/ddl.log" 2>&1 & pids+=($!)
# a worker whose session dies holding jobs on hour-long session leases:
# only the scheduler's rescue of ended sessions can give them back
(
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		PGAPPNAME=held_mix_doomed q -c "WITH f AS (SELECT id, attempts FROM qml.fetch('doomed', '{q0,q1,q2}', 3,
										interval '1 hour', session_lease => true)),
					l AS (INSERT INTO claims SELECT id, 'doomed', attempts FROM f)
				SELECT count(*) FROM f" -c "SELECT pg_sleep(10)" >/dev/null 2>&1 &
		sleep 1
		q -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			   WHERE application_name = 'held_mix_doomed'" >/dev/null
		wait $! || true			# it was killed
	done
) & pids+=($!)
for p in "${pids[@]}"; do
	wait "$p" || { cat "$work"/*.log >&2; die "a client failed"; }
done
grep -h -E '^number of (transactions actually processed|failed|transactions retried)' "$work/worker.log" |
	sed 's/^/workers: /'

fail=0
# every row version the writes made is sound and in every index it
# belongs to (a released or requeued job in jobs_fetch_idx, say)
amcheck="SELECT (SELECT count(*) FROM verify_heapam('qml.jobs')) +
				(SELECT count(*) FROM pg_index i, LATERAL (SELECT bt_index_check(i.indexrelid, true)) c
				  WHERE i.indrelid = 'qml.jobs'::regclass) -
				(SELECT count(*) FROM pg_index WHERE indrelid = 'qml.jobs'::regclass)"
check "qml.jobs and its indexes agree, as the clients left them (amcheck: problems)" "$amcheck"
# the scheduler alone rescues every lease (2 s at most) that ran out, and
# the jobs of the killed sessions
for _ in $(seq 1 100); do
	[ "$(q -c "SELECT count(*) FROM qml.jobs WHERE state = 'processing'")" = 0 ] && break
	sleep 0.1
done
check "no job held by a lease that ran out (processing jobs left)" \
	"SELECT count(*) FROM qml.jobs WHERE state = 'processing'"

# drain: whatever waits or retries is claimed and completed
for _ in $(seq 1 200); do
	left=$(q -c "SELECT count(*) FROM qml.jobs WHERE state NOT IN ('succeeded', 'failed', 'deleted')")
	[ "$left" = 0 ] && break
	q -c "WITH f AS (SELECT id, attempts FROM qml.fetch('drain', '{q0,q1,q2}', 1000)),
			   l AS (INSERT INTO claims SELECT id, 'drain', attempts FROM f)
		  INSERT INTO done SELECT c, 'drain' FROM qml.complete_batch(ARRAY(SELECT id FROM f), 'drain') c" >/dev/null
	sleep 0.05
done
echo "jobs: $(q -c "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) FROM (SELECT state, count(*) n FROM qml.jobs GROUP BY 1) s")"

check "no job lost (jobs enqueued and gone)" \
	"SELECT count(*) FROM made m WHERE NOT EXISTS (SELECT FROM qml.jobs j WHERE j.id = m.job)"
check "every job in a final state (jobs not)" \
	"SELECT count(*) FROM qml.jobs WHERE state NOT IN ('succeeded', 'failed', 'deleted')"
check "each job's history is one chain ending in its state (jobs not)" \
	"SELECT count(*) FROM qml.jobs j
	  WHERE (SELECT bool_or(e.from_state IS DISTINCT FROM e.was) OR
					(array_agg(e.to_state ORDER BY e.ordinal DESC))[1] <> j.state
			   FROM (SELECT from_state, to_state, ordinal,
							lag(to_state) OVER (ORDER BY ordinal) AS was
					   FROM qml.job_events WHERE job_id = j.id) e) IS NOT false"
check "no job succeeded twice without a requeue between (jobs that did)" \
	"SELECT count(*) FROM (SELECT job_id FROM qml.job_events GROUP BY job_id
		HAVING count(*) FILTER (WHERE to_state = 'succeeded') >
			   1 + count(*) FILTER (WHERE from_state IN ('succeeded', 'failed', 'deleted'))) d"
# calls against history, per job and worker: rows that differ
diff_sql() {
	echo "SELECT count(*) FROM ((SELECT * FROM ($1) a EXCEPT ALL SELECT * FROM ($2) b)
		UNION ALL (SELECT * FROM ($2) b EXCEPT ALL SELECT * FROM ($1) a)) d"
}
check "claims returned = claims in the history" "$(diff_sql \
	"SELECT job, worker FROM claims" \
	"SELECT job_id, worker FROM qml.job_events WHERE to_state = 'processing'")"
check "completions returned = completions in the history, by the holder" "$(diff_sql \
	"SELECT job, worker FROM done" \
	"SELECT job_id, worker FROM qml.job_events WHERE from_state = 'processing' AND to_state = 'succeeded'")"
check "failures returned = the workers' failures in the history, by the holder" "$(diff_sql \
	"SELECT job, worker, state FROM failed" \
	"SELECT job_id, worker, to_state FROM qml.job_events
	  WHERE from_state = 'processing' AND to_state IN ('failed', 'awaiting_retry') AND error LIKE 'err%'")"
check "releases returned = releases in the history, by the holder" "$(diff_sql \
	"SELECT job, worker FROM released" \
	"SELECT job_id, worker FROM qml.job_events
	  WHERE from_state = 'processing' AND to_state = 'enqueued' AND error IS NULL")"
check "attempts = claims since the last requeue - releases since (jobs not)" \
	"SELECT count(*) FROM qml.jobs j
	  WHERE j.attempts <> (SELECT count(*) FILTER (WHERE e.to_state = 'processing') -
								  count(*) FILTER (WHERE e.from_state = 'processing' AND
												   e.to_state = 'enqueued' AND e.error IS NULL)
							 FROM qml.job_events e
							WHERE e.job_id = j.id
							  AND e.ordinal > coalesce((SELECT max(r.ordinal) FROM qml.job_events r
														 WHERE r.job_id = j.id AND r.to_state = 'enqueued'
														   AND r.from_state IN ('succeeded', 'failed', 'deleted')), 0))"
check "every heartbeat returned a job its worker held (beats not)" \
	"SELECT count(*) FROM beats WHERE NOT held"
check "... and after the drain" "$amcheck"
got=$(q -c "SELECT counts_check()")
if [ "$got" = exact ]; then echo "ok   qml.stats() equals a count"; else echo "FAIL qml.stats(): $got"; fail=1; fi
echo "calls: $(q -c "SELECT (SELECT count(*) FROM claims) || ' claimed, ' || (SELECT count(*) FROM done) || ' completed, ' ||
	(SELECT count(*) FROM failed) || ' failed, ' || (SELECT count(*) FROM released) || ' released, ' ||
	(SELECT count(*) FROM beats) || ' extended; ' || (SELECT count(*) FROM stmt_hits) || ' rows by statement; ' ||
	(SELECT count(*) FROM claims WHERE worker = 'doomed') || ' claimed by killed sessions, ' ||
	(SELECT count(*) FROM qml.job_events WHERE error LIKE 'session of worker doomed%') || ' rescued from them'")"
check "a killed session held jobs (none claimed)" \
	"SELECT (count(*) = 0)::int FROM claims WHERE worker = 'doomed'"
check "the statements ran too (no row through the admin's trigger)" \
	"SELECT (count(*) = 0)::int FROM stmt_hits"

[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "held_mix: ok"
