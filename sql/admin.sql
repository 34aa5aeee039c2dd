--
-- delete, requeue, stats, throughput: which states each accepts, what they
-- do to the row and its history, and their errors.
--
CALL qt_reset();
SET qml.retry_base = '1h';	-- retries stay put however long the test runs

-- one job in each state; ids 1..7 in the order of the enum
CREATE FUNCTION pg_temp.job_in(s qml.job_state) RETURNS bigint
	LANGUAGE plpgsql
AS $$
DECLARE
	id bigint;
BEGIN
	id := qml.enqueue('in_' || s, queue => 'q_' || s, max_attempts => 2,
					  run_at => CASE WHEN s = 'scheduled' THEN now() + interval '1 day' END);
	IF s IN ('processing', 'succeeded', 'failed', 'awaiting_retry') THEN
		PERFORM qml.fetch('w_' || s, ARRAY['q_' || s]);
	END IF;
	IF s = 'succeeded' THEN
		PERFORM qml.complete(id, 'w_' || s);
	ELSIF s = 'failed' THEN
		PERFORM qml.fail(id, 'w_' || s, 'broken', retry => false);
	ELSIF s = 'awaiting_retry' THEN
		PERFORM qml.fail(id, 'w_' || s, 'flaky');
	ELSIF s = 'deleted' THEN
		PERFORM qml.delete(id);
	END IF;
	RETURN id;
END
$$;
CREATE TEMP TABLE in_state AS
SELECT s AS state, pg_temp.job_in(s) AS id
  FROM unnest(enum_range(NULL::qml.job_state)) WITH ORDINALITY AS u(s, o) ORDER BY o;
SELECT i.state AS wanted, j.id, j.state, j.locked_by
  FROM in_state i JOIN qml.jobs j USING (id) ORDER BY j.id;

--
-- delete: any live state -> deleted (true); finished -> false; missing -> P0002
--
SELECT qt_fingerprint() AS before \gset
SELECT qml.delete(4) AS succeeded, qml.delete(5) AS failed, qml.delete(7) AS deleted;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT expect_error($$SELECT qml.delete(99)$$, true);
SELECT expect_error($$SELECT qml.delete(NULL)$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT qml.delete(1) AS scheduled, qml.delete(2) AS enqueued, qml.delete(3) AS processing,
	   qml.delete(6) AS awaiting_retry;
SELECT * FROM qt_job(1) UNION ALL SELECT * FROM qt_job(2) UNION ALL
SELECT * FROM qt_job(3) UNION ALL SELECT * FROM qt_job(6) ORDER BY id;
-- history names the worker that held the processing job
SELECT job_id, from_state, to_state, worker, error FROM qml.job_events
 WHERE to_state = 'deleted' ORDER BY job_id;
-- the row and its history are kept
SELECT count(*) AS jobs, (SELECT count(*) FROM qml.job_events) AS events FROM qml.jobs;
-- the worker that held job 3 lost it: its calls are refused
SELECT qt_fingerprint() AS before \gset
SELECT qml.complete(3, 'w_processing') AS complete, qml.fail(3, 'w_processing', 'x') AS fail,
	   qml.release(3, 'w_processing') AS release,
	   (SELECT count(*) FROM qml.heartbeat('{3}', 'w_processing')) AS heartbeats;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
-- a deleted job is never fetched
SELECT id, method FROM qml.fetch('w', '{q_scheduled,q_enqueued,q_processing,q_awaiting_retry,q_deleted}', 100);
-- deleting twice
SELECT qml.delete(2) AS again;

--
-- requeue: finished (succeeded, failed, deleted) -> enqueued; live -> false
--
CALL qt_reset();
CREATE TEMP TABLE in_state2 AS
SELECT s AS state, pg_temp.job_in(s) AS id
  FROM unnest(enum_range(NULL::qml.job_state)) WITH ORDINALITY AS u(s, o) ORDER BY o;
UPDATE qml.jobs SET result = '{"old": true}' WHERE id = 4;
SELECT qt_fingerprint() AS before \gset
SELECT qml.requeue(1) AS scheduled, qml.requeue(2) AS enqueued, qml.requeue(3) AS processing,
	   qml.requeue(6) AS awaiting_retry;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT expect_error($$SELECT qml.requeue(99)$$, true);
SELECT expect_error($$SELECT qml.requeue(NULL)$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;
BEGIN;
SELECT qml.requeue(4) AS succeeded, qml.requeue(5) AS failed, qml.requeue(7) AS deleted;
SELECT id, state, attempts, result, run_at = now() AS run_now, finished_at IS NULL AS unfinished,
	   enqueued_at BETWEEN now() AND clock_timestamp() AS enqueued_now, locked_by
  FROM qml.jobs WHERE id IN (4, 5, 7) ORDER BY id;
COMMIT;
SELECT job_id, from_state, to_state, worker, error FROM qml.job_events
 WHERE job_id IN (4, 5, 7) AND to_state = 'enqueued' AND from_state IS NOT NULL ORDER BY job_id;
SELECT qml.requeue(4) AS again;
-- requeued jobs run again
SELECT id, attempts FROM qml.fetch('w', '{q_succeeded,q_failed,q_deleted}', 10) ORDER BY id;

-- a finished job whose unique_key another live job now holds cannot come back
CALL qt_reset();
SELECT qml.enqueue('u', unique_key => 'key') AS id;
SELECT qml.delete(1);
SELECT qml.enqueue('u', unique_key => 'key') AS id;
SELECT qt_fingerprint() AS before \gset
SELECT expect_error($$SELECT qml.requeue(1)$$, true);
SELECT qt_fingerprint() = :'before' AS nothing_changed;
-- once the other one finished, it can
SELECT id FROM qml.fetch('w');
SELECT qml.complete(2, 'w');
SELECT qml.requeue(1) AS requeued;
SELECT id, state FROM qml.jobs ORDER BY id;

--
-- stats: counts per queue and state, paused flag; queues with settings but
-- no jobs are listed too
--
CALL qt_reset();
CREATE TEMP TABLE in_state3 AS
SELECT s AS state, pg_temp.job_in(s) AS id
  FROM unnest(enum_range(NULL::qml.job_state)) WITH ORDINALITY AS u(s, o) ORDER BY o;
SELECT count(*) FROM qml.enqueue_batch('[{"method": "m", "queue": "q_enqueued"}, {"method": "m", "queue": "q_enqueued"},
										 {"method": "m", "queue": "mixed"},
										 {"method": "m", "queue": "mixed", "run_at": "2999-01-01T00:00:00Z"}]');
SELECT qml.pause_queue('mixed');
SELECT qml.pause_queue('empty_paused');
SELECT queue, paused, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted,
       oldest_waiting >= interval '0' AS waiting FROM qml.stats();
SELECT queue, paused, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted,
       oldest_waiting >= interval '0' AS waiting FROM qml.stats('mixed');
SELECT queue, paused, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted,
       oldest_waiting >= interval '0' AS waiting FROM qml.stats('empty_paused');
SELECT queue, paused, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted,
       oldest_waiting >= interval '0' AS waiting FROM qml.stats('no_such_queue');
-- the totals add up to the jobs table
SELECT sum(scheduled + enqueued + processing + awaiting_retry + succeeded + failed + deleted) AS total,
	   (SELECT count(*) FROM qml.jobs) AS jobs
  FROM qml.stats();

--
-- throughput: succeeded and failed per bucket of finished_at. (Its queues,
-- ta and tb, are used nowhere else, and only they are looked at.) Where the
-- scheduler serves the database, throughput may read its per-minute
-- roll-up instead of qml.jobs; test/qml.conf keeps the scheduler out of
-- the regression database, so qml.jobs is what is read here.
--
CALL qt_reset();
SELECT count(*) FROM qml.enqueue_batch('[{"method": "t", "queue": "ta"}, {"method": "t", "queue": "ta"},
										 {"method": "t", "queue": "ta"}, {"method": "t", "queue": "tb"},
										 {"method": "t", "queue": "tb", "max_attempts": 1}]');
SELECT count(*) FROM qml.fetch('w', '{ta,tb}', 10);
SELECT count(*) FROM qml.complete_batch('{1,2,4}', 'w');
SELECT qml.fail(3, 'w', 'x', retry => false), qml.fail(5, 'w', 'x');
-- one deleted job: not counted
SELECT qml.enqueue('t', queue => 'ta') AS id;
SELECT qml.delete(6);
-- an old one, outside the window
SELECT qml.enqueue('t', queue => 'ta') AS id;
SELECT id FROM qml.fetch('w', '{ta}');
SELECT qml.complete(7, 'w');
UPDATE qml.jobs SET finished_at = now() - interval '3 hours' WHERE id = 7;
-- the others finished at one instant, so they share a bucket of any width
UPDATE qml.jobs SET finished_at = now() - interval '1 second' WHERE id <> 7;

SELECT bucket < now() AND bucket > now() - interval '2 hours' AS recent, queue, succeeded, failed
  FROM qml.throughput(interval '1 hour', interval '1 hour') WHERE queue IN ('ta', 'tb') ORDER BY queue;
SELECT queue, sum(succeeded) AS succeeded, sum(failed) AS failed
  FROM qml.throughput() WHERE queue IN ('ta', 'tb') GROUP BY queue ORDER BY queue;
SELECT queue, sum(succeeded) AS succeeded, sum(failed) AS failed
  FROM qml.throughput(interval '1 day', interval '1 day', 'ta') GROUP BY queue;
SELECT queue, sum(succeeded) AS succeeded, sum(failed) AS failed
  FROM qml.throughput(interval '1 hour', interval '4 hours') WHERE queue IN ('ta', 'tb')
 GROUP BY queue ORDER BY queue;
-- buckets are aligned, so one job falls in exactly one of them
SELECT count(*) AS buckets, sum(succeeded) AS succeeded
  FROM qml.throughput(interval '1 minute', interval '4 hours', 'ta');
SELECT * FROM qml.throughput(for_queue => 'no_such_queue');
-- bad buckets
SELECT expect_error($$SELECT * FROM qml.throughput(interval '0')$$);
SELECT expect_error($$SELECT * FROM qml.throughput(interval '-1 minute')$$);
SELECT expect_error($$SELECT * FROM qml.throughput(NULL)$$);
SELECT expect_error($$SELECT * FROM qml.throughput(interval '1 minute', interval '0')$$);
SELECT expect_error($$SELECT * FROM qml.throughput(interval '1 minute', NULL)$$);
SELECT expect_error($$SELECT * FROM qml.throughput(interval '1 second', interval '1 year')$$, true);
-- the limit itself is fine
SELECT count(*) >= 0 AS ok FROM qml.throughput(interval '1 second', interval '100000 seconds');
RESET qml.retry_base;

--
-- the row trigger keeps the bookkeeping whoever changes the state, even an
-- admin's plain UPDATE: timestamps of the transition, lease only while
-- processing, history with the worker that held the job
--
CALL qt_reset();
SELECT qml.enqueue('manual', run_at => now() + interval '1 day') AS id;
BEGIN;
UPDATE qml.jobs SET state = 'enqueued' WHERE id = 1;
SELECT state, enqueued_at BETWEEN now() AND clock_timestamp() AS enqueued_now, started_at, finished_at FROM qml.jobs WHERE id = 1;
COMMIT;
UPDATE qml.jobs SET state = 'processing', locked_by = 'hand', locked_until = now() + interval '1 hour'
 WHERE id = 1;
SELECT * FROM qt_job(1);
UPDATE qml.jobs SET state = 'succeeded' WHERE id = 1;
SELECT * FROM qt_job(1);
-- coming back to life clears finished_at
UPDATE qml.jobs SET state = 'scheduled', run_at = now() + interval '1 day' WHERE id = 1;
SELECT * FROM qt_job(1);
-- an UPDATE that does not change the state is no transition
UPDATE qml.jobs SET priority = 3 WHERE id = 1;
SELECT * FROM qt_history(1);
-- max_attempts left out of a direct INSERT comes from qml.default_max_attempts
INSERT INTO qml.jobs (method, state) VALUES ('direct', 'enqueued');
SELECT id, max_attempts, enqueued_at IS NOT NULL AS enqueued FROM qml.jobs WHERE id = 2;
-- configure_queue: a queue's own history and retention
CALL qt_reset();
SELECT qml.configure_queue('quiet', history => false);
SELECT qml.enqueue('hushed', queue => 'quiet') AS id;
SELECT count(*) AS quiet_events FROM qml.job_events WHERE job_id = 1;
SELECT qml.configure_queue('quiet', history => NULL, retention => '0');
SELECT name, history, retention FROM qml.queues WHERE name = 'quiet';
SELECT qml.enqueue('loud', queue => 'quiet') AS id;
SELECT count(*) AS loud_events FROM qml.job_events WHERE job_id = 2;
SELECT expect_error($$SELECT qml.configure_queue('quiet', retention => '-1 s')$$);
SELECT expect_error($$SELECT qml.configure_queue('', history => true)$$);
SELECT name, history, retention FROM qml.queues WHERE name = 'quiet';
