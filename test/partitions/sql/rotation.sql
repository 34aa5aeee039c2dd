--
-- rotation: schema 1.4's ring (docs/partitions.md, "Schema 1.4"). The API
-- works through its statements, the direct paths off; qml.rotate() empties
-- the next slot: its unfinished jobs move to the current slot with their
-- ids and every column, its finished jobs within retention to
-- qml.jobs_archive (pruned later as before), the ones past it go; unique
-- keys hold across slots. (The counts under rotation are
-- test/partitions/rotation_counts.sh's: they are kept only where a
-- scheduler serves the database.)
--
CALL qt_reset();
SELECT extversion FROM pg_extension WHERE extname = 'qml';
SELECT c.relkind FROM pg_class c WHERE c.oid = 'qml.jobs'::regclass;
SELECT count(*) AS ring_slots FROM pg_inherits WHERE inhparent = 'qml.jobs'::regclass;

-- the slot relative to the current one: output that holds whatever
-- generation the database is at
CREATE FUNCTION rel_slot(s smallint) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN s = -1 THEN 'archive'
				WHEN s = qml.current_slot() THEN 'current'
				ELSE 'other' END
$$;

-- enqueue, fetch, complete and fail work, and by statement: the row
-- triggers run for each (the direct paths write without them)
SET track_functions = 'all';
BEGIN;
SELECT qml.enqueue('a') AS a, qml.enqueue('b') AS b;
SELECT id, state, rel_slot(slot) FROM qml.fetch('w1', batch => 2) ORDER BY id;
SELECT qml.complete(1, 'w1') AS completed, qml.fail(2, 'w1', 'boom') AS failed;
SELECT calls AS stamp_calls FROM pg_stat_xact_user_functions
 WHERE funcid = 'qml.jobs_stamp'::regproc;
COMMIT;
RESET track_functions;

-- one job of each kind in the current slot, each in a queue of its own
CALL qt_reset();
SET qml.generation_length = 0;
SELECT qml.enqueue('waiting', queue => 'q_waiting') AS waiting,
	   qml.enqueue('running', queue => 'q_running') AS running,
	   qml.schedule('later', delay => '1 hour', queue => 'q_later') AS later,
	   qml.enqueue('retrying', queue => 'q_retrying') AS retrying,
	   qml.enqueue('done', queue => 'q_done') AS done,
	   qml.enqueue('expired', queue => 'q_expired') AS expired,
	   qml.enqueue('failed_old', queue => 'q_failed_old') AS failed_old,
	   qml.enqueue('keyed', queue => 'q_keyed', unique_key => 'k1') AS keyed \gset
SELECT count(*) FROM qml.fetch('w1', '{q_running,q_retrying,q_done,q_expired,q_failed_old}', 5);
SELECT qml.fail(:retrying, 'w1', 'again'), qml.complete(:done, 'w1'),
	   qml.complete(:expired, 'w1'), qml.fail(:failed_old, 'w1', 'no', retry => false);
-- finished two days ago: past the one-day retention
UPDATE qml.jobs SET finished_at = now() - interval '2 days'
 WHERE id IN (:expired, :failed_old);
SELECT id, method, state, rel_slot(slot) FROM qml.jobs ORDER BY id;
CREATE TEMP TABLE before AS
SELECT j.id, (to_jsonb(j) - 'slot') AS row FROM qml.jobs j;
SELECT max(generation) AS gen FROM qml.generations \gset

-- a rotation opens the next generation in the next slot; the jobs stay
-- where they are until their slot comes round
SELECT qml.rotate() = :gen + 1 AS rotated;
SELECT count(*) FILTER (WHERE rel_slot(slot) = 'current') AS in_current FROM qml.jobs;
-- 17 more: the jobs' slot is the next one
SELECT count(*) FROM (SELECT qml.rotate() FROM generate_series(1, 17)) r;
SELECT count(*) FILTER (WHERE rel_slot(slot) = 'current') AS in_current,
	   count(*) FILTER (WHERE rel_slot(slot) = 'other') AS in_other FROM qml.jobs;
-- ... and the 19th empties it
SELECT qml.rotate() = :gen + 19 AS rotated;
SELECT id, method, state, rel_slot(slot) FROM qml.jobs ORDER BY id;
-- the expired succeeded job went; the failed one stays (qml.prune_failed
-- is off) and went to the archive with the finished job within retention
SELECT b.id FROM before b LEFT JOIN qml.jobs j USING (id) WHERE j.id IS NULL;
-- every column of every job that stayed is as it was, history included
SELECT count(*) AS changed FROM before b JOIN qml.jobs j USING (id)
 WHERE b.row IS DISTINCT FROM (to_jsonb(j) - 'slot');
SELECT count(*) AS history_entries FROM qml.job_events;
-- the slot was emptied by TRUNCATE: it is the current one now, and has
-- no page, dead rows or other
SELECT pg_relation_size(format('qml.jobs_%s',
		lpad((max(generation) % 19)::text, 2, '0'))::regclass) AS current_slot_bytes
  FROM qml.generations;

-- moved jobs are found by id and act as before
SELECT qml.heartbeat(ARRAY[:running]::bigint[], 'w1') AS beat;
SELECT qml.complete(:running, 'w1') AS completed_after_move;
SELECT id, state FROM qml.fetch('w2', '{q_waiting,q_keyed}', 5) ORDER BY id;
SELECT qml.release(:waiting, 'w2') AS released;
SELECT qml.enqueue('keyed_again', queue => 'q_keyed', unique_key => 'k1') = :keyed
	AS same_key_same_job;
SELECT qml.delete(:later) AS deleted, qml.requeue(:failed_old) AS requeued;
SELECT id, method, state, rel_slot(slot) FROM qml.jobs ORDER BY id;

-- the archive is pruned by the maintenance pass, as any finished job
UPDATE qml.jobs SET finished_at = now() - interval '2 days' WHERE id = :done;
SELECT (qml.maintain())->'pruned' AS pruned;
SELECT count(*) AS archived FROM qml.jobs_archive;

-- unique keys across slots: a live key holds wherever its job is, and
-- requeue refuses a key another live job holds, as on 1.3
CALL qt_reset();
SELECT qml.enqueue('k', unique_key => 'u') AS first \gset
SELECT count(*) FROM (SELECT qml.rotate() FROM generate_series(1, 3)) r;
SELECT qml.enqueue('k', unique_key => 'u') = :first AS same_job;
SELECT qml.enqueue('k', queue => 'other', unique_key => 'u') <> :first AS other_queue_other_job;
SELECT qml.delete(:first);
SELECT qml.enqueue('k', unique_key => 'u') AS second \gset
SELECT :second <> :first AS new_job;
SELECT count(*) FROM (SELECT qml.rotate() FROM generate_series(1, 19)) r;
SELECT expect_error(format('SELECT qml.requeue(%s)', :first));
SELECT queue, unique_key, job_id = :second AS held_by_second FROM qml.job_keys ORDER BY 1;
SELECT expect_error($$INSERT INTO qml.jobs (method, state, max_attempts, unique_key)
					  VALUES ('m', 'enqueued', 1, 'u')$$);

-- a rotation waits 200 ms at most for its locks, then leaves the ring as
-- it is until the next pass: a transaction left open after an UPDATE of
-- qml.jobs (which locks every partition; prepared here, so that it keeps
-- its locks without a session) neither stops it nor, through its queued
-- lock request, every claim and completion behind it
CALL qt_reset();
SELECT qml.enqueue('held') AS held, qml.enqueue('free') AS free \gset
SELECT max(generation) AS gen FROM qml.generations \gset
BEGIN;
UPDATE qml.jobs SET priority = 1 WHERE id = :held;
PREPARE TRANSACTION 'qml_rotation_held';
SELECT qml.rotate() = :gen AS gave_up;
SELECT id = :free AS claimed_the_free_one FROM qml.fetch('w', batch => 2);
COMMIT PREPARED 'qml_rotation_held';
SELECT qml.rotate() = :gen + 1 AS rotated;

-- qml.rotate is not run before the generation's time: an hour by this
-- session's setting
SET qml.generation_length = '1h';
SELECT qml.rotate() = max(generation) AS not_yet FROM qml.generations;
RESET qml.generation_length;
-- a qml.generations emptied by hand: the ring has no current slot, and
-- qml.rotate() says so as the column's default does (it returned 0)
BEGIN;
DELETE FROM qml.generations;
SELECT expect_error($$SELECT qml.rotate()$$);
SELECT expect_error($$SELECT qml.current_slot()$$);
ROLLBACK;
-- admins may rotate; producers and workers may not
CREATE ROLE regress_qml_rot_admin;
CREATE ROLE regress_qml_rot_worker;
SELECT qml.grant_admin('regress_qml_rot_admin'), qml.grant_worker('regress_qml_rot_worker');
SELECT has_function_privilege('regress_qml_rot_admin', 'qml.rotate()', 'EXECUTE') AS admin,
	   has_function_privilege('regress_qml_rot_worker', 'qml.rotate()', 'EXECUTE') AS worker;
SELECT qml.revoke_all('regress_qml_rot_admin'), qml.revoke_all('regress_qml_rot_worker');
DROP ROLE regress_qml_rot_admin;
DROP ROLE regress_qml_rot_worker;

-- a COPY into qml.jobs goes into a partition, and is a restore as on 1.3:
-- the rows are loaded as they are (no creation added to their history)
CALL qt_reset();
COPY qml.jobs (id, method, state, max_attempts, history) FROM stdin;
41	restored	enqueued	3	\N
\.
SELECT id, state, history IS NULL AS history_as_loaded, rel_slot(slot) FROM qml.jobs;

-- a partition whose columns are not in qml.jobs' places is refused by
-- qml's triggers, which read rows by qml.jobs' column numbers
BEGIN;
CREATE TABLE odd_slot (x int, LIKE qml.jobs INCLUDING CONSTRAINTS);
ALTER TABLE odd_slot DROP COLUMN x;
ALTER TABLE qml.jobs ATTACH PARTITION odd_slot FOR VALUES IN (100);
SELECT expect_error($$INSERT INTO qml.jobs (method, state, max_attempts, slot)
					  VALUES ('m', 'enqueued', 1, 100)$$);
ROLLBACK;
