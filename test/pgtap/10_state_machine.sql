-- test/pgtap/10_state_machine.sql: the job state machine of DESIGN.md.
-- For a job in each of the seven states, every operation of the API is
-- tried (each in a subtransaction that is rolled back): the allowed
-- transitions happen, everything else is refused (false, NULL or left out)
-- and leaves the state as it was.
--
-- The whole file is one transaction, so now() does not move: "due" and
-- "expired" are made by moving run_at / locked_until into the past.
BEGIN;
SELECT plan(127);

SET LOCAL qml.retry_base = '1h';

-- a job in state s, held by worker 'w' when it was ever claimed
CREATE FUNCTION pg_temp.job_in(s qml.job_state) RETURNS bigint
	LANGUAGE plpgsql
AS $$
DECLARE
	j bigint;
BEGIN
	-- a queue of its own, so that the fetch below claims this job
	j := qml.enqueue('sm', queue => 'sm_' || s, max_attempts => 3,
					 run_at => CASE WHEN s = 'scheduled' THEN now() + interval '1 day' END);
	IF s IN ('processing', 'succeeded', 'failed', 'awaiting_retry') THEN
		PERFORM qml.fetch('w', ARRAY['sm_' || s]);
	END IF;
	CASE s
		WHEN 'succeeded' THEN PERFORM qml.complete(j, 'w');
		WHEN 'failed' THEN PERFORM qml.fail(j, 'w', 'e', retry => false);
		WHEN 'awaiting_retry' THEN PERFORM qml.fail(j, 'w', 'e');
		WHEN 'deleted' THEN PERFORM qml.delete(j);
		ELSE NULL;
	END CASE;
	RETURN j;
END
$$;

-- "<state after> <what the call returned>[ leased]" for operation op on a
-- job in state s; nothing of it is kept
CREATE FUNCTION pg_temp.after(s qml.job_state, op text) RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	j bigint;
	ret text;
	outcome text;
BEGIN
	BEGIN
		j := pg_temp.job_in(s);
		CASE op
			WHEN 'fetch' THEN
				SELECT count(*)::text INTO ret FROM qml.fetch('w2', ARRAY['sm_' || s], 10);
			WHEN 'complete' THEN ret := qml.complete(j, 'w');
			WHEN 'complete_batch' THEN
				SELECT count(*)::text INTO ret FROM qml.complete_batch(ARRAY[j], 'w');
			WHEN 'fail' THEN ret := qml.fail(j, 'w', 'boom');
			WHEN 'fail_final' THEN ret := qml.fail(j, 'w', 'boom', retry => false);
			WHEN 'release' THEN ret := qml.release(j, 'w');
			WHEN 'heartbeat' THEN
				SELECT count(*)::text INTO ret FROM qml.heartbeat(ARRAY[j], 'w');
			WHEN 'complete_other' THEN ret := qml.complete(j, 'other');
			WHEN 'fail_other' THEN ret := qml.fail(j, 'other', 'boom');
			WHEN 'release_other' THEN ret := qml.release(j, 'other');
			WHEN 'heartbeat_other' THEN
				SELECT count(*)::text INTO ret FROM qml.heartbeat(ARRAY[j], 'other');
			WHEN 'delete' THEN ret := qml.delete(j);
			WHEN 'requeue' THEN ret := qml.requeue(j);
			WHEN 'due' THEN
				-- what the scheduler does once run_at has come
				UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id = j;
				ret := qml.maintain() ->> 'promoted';
			WHEN 'lease_expired' THEN
				-- what the scheduler does once a lease has run out
				UPDATE qml.jobs SET locked_until = now() - interval '1 second'
				 WHERE id = j AND state = 'processing';
				ret := qml.maintain() ->> 'rescued';
		END CASE;
		SELECT state || ' ' || coalesce(ret, 'NULL')
			   || CASE WHEN locked_by IS NOT NULL OR locked_until IS NOT NULL THEN ' leased' ELSE '' END
		  INTO outcome FROM qml.jobs WHERE id = j;
		RAISE EXCEPTION 'undo' USING ERRCODE = 'QTUND';
	EXCEPTION WHEN SQLSTATE 'QTUND' THEN
		RETURN outcome;
	END;
END
$$;

-- the seven starting states are what they say
CREATE TEMP TABLE starts AS
SELECT s, pg_temp.job_in(s) AS j FROM unnest(enum_range(NULL::qml.job_state)) s;
SELECT is(j.state, st.s, 'a job can be put in state ' || st.s)
  FROM starts st JOIN qml.jobs j ON j.id = st.j ORDER BY st.s;
DELETE FROM qml.jobs;

-- expected outcome of every operation in every state
CREATE TEMP TABLE expected_outcome (s qml.job_state, op text, outcome text);
INSERT INTO expected_outcome
SELECT s::qml.job_state, op,
	   CASE
		   -- allowed transitions
		   WHEN s = 'enqueued' AND op = 'fetch' THEN 'processing 1'
		   WHEN s = 'processing' AND op = 'complete' THEN 'succeeded true'
		   WHEN s = 'processing' AND op = 'complete_batch' THEN 'succeeded 1'
		   WHEN s = 'processing' AND op = 'fail' THEN 'awaiting_retry awaiting_retry'
		   WHEN s = 'processing' AND op = 'fail_final' THEN 'failed failed'
		   WHEN s = 'processing' AND op = 'release' THEN 'enqueued true'
		   WHEN s = 'processing' AND op = 'heartbeat' THEN 'processing 1'
		   WHEN s = 'processing' AND op = 'lease_expired' THEN 'awaiting_retry 1'
		   WHEN s IN ('scheduled', 'awaiting_retry') AND op = 'due' THEN 'enqueued 1'
		   WHEN s IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry') AND op = 'delete'
			 THEN 'deleted true'
		   WHEN s IN ('succeeded', 'failed', 'deleted') AND op = 'requeue' THEN 'enqueued true'
		   -- everything else changes nothing and says so
		   WHEN op IN ('fetch', 'complete_batch', 'heartbeat', 'heartbeat_other', 'due',
					   'lease_expired') THEN s || ' 0'
		   WHEN op IN ('fail', 'fail_final', 'fail_other') THEN s || ' NULL'
		   ELSE s || ' false'
	   END
  FROM unnest(enum_range(NULL::qml.job_state)::text[]) s,
	   unnest(ARRAY['fetch', 'complete', 'complete_batch', 'fail', 'fail_final', 'release',
					'heartbeat', 'complete_other', 'fail_other', 'release_other', 'heartbeat_other',
					'delete', 'requeue', 'due', 'lease_expired']) op;
-- a job has a lease (locked_by, locked_until) exactly while processing
UPDATE expected_outcome SET outcome = outcome || ' leased' WHERE outcome LIKE 'processing %';
SELECT is(pg_temp.after(e.s, e.op), e.outcome,
		  format('%s --%s--> %s', e.s, e.op, e.outcome))
  FROM expected_outcome e ORDER BY e.s, e.op;

-- the last attempt: fail() and an expired lease both end in failed
SELECT pg_temp.job_in('processing') AS last_fail \gset
UPDATE qml.jobs SET max_attempts = 1 WHERE id = :last_fail;
SELECT is(qml.fail(:last_fail, 'w', 'last'), 'failed', 'processing --fail, no attempts left--> failed');
DELETE FROM qml.jobs;
SELECT pg_temp.job_in('processing') AS last_lease \gset
UPDATE qml.jobs SET max_attempts = 1, locked_until = now() - interval '1 second' WHERE id = :last_lease;
SELECT is(qml.maintain() ->> 'rescued', '1', 'a pass rescues the expired lease of the last attempt');
SELECT is((SELECT state FROM qml.jobs WHERE id = :last_lease), 'failed',
		  'processing --lease expired, no attempts left--> failed');
DELETE FROM qml.jobs;

-- attempts: counted by fetch, given back by release, reset by requeue
SELECT pg_temp.job_in('processing') AS j \gset
SELECT is((SELECT attempts FROM qml.jobs WHERE id = :j), 1, 'fetch counts an attempt');
SELECT is(qml.release(:j, 'w'), true, 'the holder releases it');
SELECT is((SELECT attempts FROM qml.jobs WHERE id = :j), 0, 'release gives the attempt back');
SELECT is((SELECT count(*)::int FROM qml.fetch('w', '{sm_processing}')), 1, 'a released job is fetched again');
SELECT is(qml.fail(:j, 'w', 'x', false), 'failed', 'and fails for good');
SELECT is(qml.requeue(:j), true, 'and is requeued');
SELECT is((SELECT attempts FROM qml.jobs WHERE id = :j), 0, 'requeue counts attempts afresh');

-- every transition is in the history, nothing else is
SELECT results_eq(
	format($$SELECT from_state::text, to_state::text FROM qml.job_events WHERE job_id = %s ORDER BY id$$, :j),
	$$VALUES (NULL, 'enqueued'), ('enqueued', 'processing'), ('processing', 'enqueued'),
			 ('enqueued', 'processing'), ('processing', 'failed'), ('failed', 'enqueued')$$,
	'the history has one row per transition');

-- the lease exists exactly while processing
SELECT is((SELECT count(*)::int FROM qml.jobs
			WHERE (state = 'processing') <> (locked_by IS NOT NULL AND locked_until IS NOT NULL)
			   OR (state <> 'processing' AND (locked_by IS NOT NULL OR locked_until IS NOT NULL))),
		  0, 'only processing jobs have a lease');

-- stamps: qml's own statements set them in their SET list, the row trigger
-- fills in what a statement left alone, and an admin's explicit value stays
SELECT pg_temp.job_in('succeeded') AS stamped \gset
SELECT ok((SELECT started_at IS NOT NULL AND finished_at >= started_at AND locked_by IS NULL
				  AND locked_until IS NULL AND lease_pid IS NULL AND lease_session IS NULL
			 FROM qml.jobs WHERE id = :stamped),
		  'a completed job has its start and finish and no lease');
UPDATE qml.jobs SET state = 'enqueued' WHERE id = :stamped;
SELECT ok((SELECT finished_at IS NULL AND enqueued_at > started_at FROM qml.jobs WHERE id = :stamped),
		  'an UPDATE back to enqueued: enqueued_at stamped again, finished_at cleared');
UPDATE qml.jobs SET state = 'deleted', finished_at = '2020-01-01' WHERE id = :stamped;
SELECT is((SELECT finished_at FROM qml.jobs WHERE id = :stamped), '2020-01-01'::timestamptz,
		  'a finished_at the UPDATE sets itself is kept');

SELECT * FROM finish();
ROLLBACK;
