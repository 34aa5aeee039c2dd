--
-- fetch, complete, complete_batch, heartbeat, release, pause/resume: order
-- of claims, lease bookkeeping, history, and what a worker that does not
-- hold a job gets (false / NULL / left out, nothing changed).
--
CALL qt_reset();

-- nothing to fetch
SELECT id, method FROM qml.fetch('w1');
SELECT id, method FROM qml.fetch('w1', '{nowhere,default}', 10);

--
-- order: queues in the order given, then priority (higher first), then
-- oldest run_at, then id
--
SELECT qml.enqueue('a_p0_new', queue => 'a') AS id;
SELECT qml.enqueue('a_p0_old', queue => 'a') AS id;
SELECT qml.enqueue('a_p5', queue => 'a', priority => 5) AS id;
SELECT qml.enqueue('a_pminus1', queue => 'a', priority => -1) AS id;
SELECT qml.enqueue('a_p0_old_twin', queue => 'a') AS id;
SELECT qml.enqueue('b_p10', queue => 'b', priority => 10) AS id;
SELECT qml.enqueue('c_p0', queue => 'c') AS id;
-- not fetchable: scheduled, and already processing (below)
SELECT qml.enqueue('a_scheduled', queue => 'a', priority => 100, run_at => now() + interval '1 day') AS id;
-- a past run_at given to enqueue means "now", so make the ages by hand:
-- a_p0_old (id 2) is older than a_p0_new (id 1), its twin (id 5) as old
UPDATE qml.jobs SET run_at = now() - interval '1 hour' WHERE id = 1;
UPDATE qml.jobs SET run_at = now() - interval '2 hours' WHERE id IN (2, 5);
UPDATE qml.jobs SET run_at = now() - interval '1 day' WHERE id = 4;

SELECT method FROM qml.fetch('w1', '{a,b}');
SELECT method FROM qml.fetch('w1', '{a,b}');
SELECT method FROM qml.fetch('w1', '{a,b}');
SELECT method FROM qml.fetch('w1', '{a,b}');
SELECT method FROM qml.fetch('w1', '{a,b}');
SELECT method FROM qml.fetch('w1', '{a,b}');
SELECT method FROM qml.fetch('w1', '{a,b}');
-- the queue order is the caller's: c before b
SELECT qml.enqueue('b_p10_second', queue => 'b', priority => 10) AS id;
SELECT method FROM qml.fetch('w2', '{c,b}', 5) ORDER BY method;
SELECT id, method, state FROM qml.jobs WHERE state <> 'processing' ORDER BY id;

-- a batch spans queues in order and stops at `batch`
CALL qt_reset();
SELECT count(*) FROM qml.enqueue_batch('[{"method": "x1", "queue": "x"}, {"method": "x2", "queue": "x"},
										 {"method": "y1", "queue": "y"}, {"method": "y2", "queue": "y"},
										 {"method": "z1", "queue": "z"}]');
SELECT method FROM qml.fetch('w1', '{x,y,z}', 3) ORDER BY method;
SELECT method FROM qml.fetch('w1', '{z,y,x}', 1000) ORDER BY method;
SELECT method FROM qml.fetch('w1', '{x,y,z}', 1000);

--
-- what a claim does to the row
--
CALL qt_reset();
SELECT qml.enqueue('job', '{"n": 1}', max_attempts => 3) AS id;
SELECT id, queue, method, arguments, state, attempts, max_attempts, locked_by,
	   date_trunc('second', locked_until - started_at + interval '0.5 s') AS lease, started_at IS NOT NULL AS started,
	   finished_at IS NULL AS not_finished
  FROM qml.fetch('worker-1', lease => interval '90 seconds');
SELECT * FROM qt_job(1);
SELECT * FROM qt_history(1);
-- a processing job is not handed out again
SELECT id, method FROM qml.fetch('worker-2');

--
-- complete: only the holder
--
SELECT qt_fingerprint() AS before \gset
SELECT qml.complete(1, 'worker-2') AS by_other;
SELECT expect_error($$SELECT qml.complete(1, NULL)$$) AS by_null;
SELECT qml.complete(12345, 'worker-1') AS missing_job;
SELECT qml.complete(NULL, 'worker-1') AS null_job;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT qml.complete(1, 'worker-1', '{"sent": true}') AS by_holder;
SELECT * FROM qt_job(1);
SELECT result, finished_at >= started_at AS finished_after_start FROM qml.jobs WHERE id = 1;
SELECT * FROM qt_history(1);
-- completing again, or failing or releasing a finished job: refused
SELECT qt_fingerprint() AS before \gset
SELECT qml.complete(1, 'worker-1') AS again;
SELECT qml.fail(1, 'worker-1', 'late') AS fail_after_complete;
SELECT qml.release(1, 'worker-1') AS release_after_complete;
SELECT * FROM qml.heartbeat('{1}', 'worker-1');
SELECT qt_fingerprint() = :'before' AS nothing_changed;
-- complete without a result
SELECT qml.enqueue('job2') AS id;
SELECT id FROM qml.fetch('worker-1');
SELECT qml.complete(2, 'worker-1') AS done;
SELECT state, result FROM qml.jobs WHERE id = 2;
-- an enqueued (not fetched) job cannot be completed
SELECT qml.enqueue('job3') AS id;
SELECT qml.complete(3, 'worker-1') AS not_fetched;
SELECT state FROM qml.jobs WHERE id = 3;

--
-- complete_batch: returns the ids this worker held and completed
--
CALL qt_reset();
SELECT count(*) FROM qml.enqueue_batch('[{"method": "b1"}, {"method": "b2"}, {"method": "b3"}, {"method": "b4"}, {"method": "b5"}]');
SELECT id FROM qml.fetch('w1', batch => 3) ORDER BY id;
SELECT id FROM qml.fetch('w2', batch => 1) ORDER BY id;
-- 4 is w2's, 5 is not fetched, 99 does not exist
SELECT qt_fingerprint() AS before \gset
SELECT * FROM qml.complete_batch('{4,5,99}', 'w1');
SELECT * FROM qml.complete_batch('{}', 'w1');
SELECT * FROM qml.complete_batch(NULL, 'w1');
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT * FROM qml.complete_batch('{1,2,4,5,99}', 'w1') ORDER BY 1;
SELECT id, state, locked_by, result FROM qml.jobs ORDER BY id;
-- with results, one per id; a refused id's result is dropped
SELECT id FROM qml.fetch('w1') ORDER BY id;
SELECT * FROM qml.complete_batch('{3,4,5}', 'w1',
								 ARRAY['{"r": 3}', '{"r": 4}', '{"r": 5}']::jsonb[]) ORDER BY 1;
SELECT id, state, result FROM qml.jobs ORDER BY id;
SELECT job_id, from_state, to_state, worker FROM qml.job_events
 WHERE to_state = 'succeeded' ORDER BY job_id;
-- results must match job_ids one to one
SELECT qml.enqueue('b6') AS id;
SELECT id FROM qml.fetch('w1');
SELECT qt_fingerprint() AS before \gset
SELECT expect_error($$SELECT * FROM qml.complete_batch('{6}', 'w1', ARRAY['1', '2']::jsonb[])$$, true);
SELECT expect_error($$SELECT * FROM qml.complete_batch('{6}', 'w1', ARRAY[]::jsonb[])$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT state FROM qml.jobs WHERE id = 6;
-- the ids of a batch, far apart or close together, in any order: each
-- job this worker holds is completed once (src/worker_write.c finds ids
-- up to 16 apart along the primary key, further ones from its root);
-- the extremes of bigint too
CALL qt_reset();
SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'r' || g))
										  FROM generate_series(1, 60) g));
SELECT count(*) AS fetched FROM qml.fetch('w1', batch => 50);
SELECT count(*) AS fetched FROM qml.fetch('w2', batch => 5);
SELECT * FROM qml.complete_batch('{60,3,1,2,20,36,53,37,50,9223372036854775807,-9223372036854775808,3,NULL,70}',
								 'w1') ORDER BY 1;
SELECT state, locked_by, count(*), min(id), max(id) FROM qml.jobs GROUP BY 1, 2 ORDER BY 4;
SELECT job_id, count(*) AS succeeded FROM qml.job_events
 WHERE to_state = 'succeeded' GROUP BY job_id ORDER BY job_id;
-- a job with more row versions than the walk keeps to try newest first
-- (8): twelve heartbeats, each a version, then its completion
SELECT qml.enqueue('beats', queue => 'beats') AS beats \gset
SELECT count(*) AS fetched FROM qml.fetch('w1', '{beats}');
SELECT count(*) AS extended FROM generate_series(1, 12), qml.heartbeat(ARRAY[:beats]::bigint[], 'w1');
SELECT * FROM qml.complete_batch(ARRAY[:beats - 1, :beats, :beats + 1]::bigint[], 'w1');
SELECT state FROM qml.jobs WHERE id = :beats;

--
-- heartbeat: extends the leases still held
--
CALL qt_reset();
SELECT count(*) FROM qml.enqueue_batch('[{"method": "h1"}, {"method": "h2"}, {"method": "h3"}]');
SELECT id FROM qml.fetch('w1', batch => 2, lease => interval '1 minute') ORDER BY id;
SELECT id FROM qml.fetch('w2', lease => interval '1 minute') ORDER BY id;
BEGIN;
SELECT * FROM qml.heartbeat('{1,2,3,99}', 'w1', interval '2 hours') ORDER BY 1;
SELECT id, locked_by, locked_until = now() + interval '2 hours' AS extended,
	   locked_until < now() + interval '1 minute' AS still_short
  FROM qml.jobs ORDER BY id;
COMMIT;
-- default lease is 5 minutes
BEGIN;
SELECT * FROM qml.heartbeat('{3}', 'w2');
SELECT locked_until = now() + interval '5 minutes' AS five_minutes FROM qml.jobs WHERE id = 3;
COMMIT;
-- not the holder, or not processing: left out, nothing changed
SELECT qt_fingerprint() AS before \gset
SELECT * FROM qml.heartbeat('{3}', 'w1');
SELECT expect_error($$SELECT * FROM qml.heartbeat('{1}', NULL)$$);
SELECT * FROM qml.heartbeat(NULL, 'w1');
SELECT qt_fingerprint() = :'before' AS nothing_changed;
-- a heartbeat changes no state, so it writes no history
SELECT count(*) AS events FROM qml.job_events WHERE job_id IN (1, 2);
-- bad leases
SELECT expect_error($$SELECT * FROM qml.heartbeat('{1}', 'w1', interval '0')$$, true);
SELECT expect_error($$SELECT * FROM qml.heartbeat('{1}', 'w1', interval '-1 minute')$$);
SELECT expect_error($$SELECT * FROM qml.heartbeat('{1}', 'w1', NULL)$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;

--
-- release: back to enqueued, the attempt not counted
--
CALL qt_reset();
SELECT qml.enqueue('r1') AS id;
SELECT id, attempts FROM qml.fetch('w1');
SELECT qt_fingerprint() AS before \gset
SELECT qml.release(1, 'w2') AS by_other;
SELECT qml.release(99, 'w1') AS missing;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT qml.release(1, 'w1') AS by_holder;
SELECT * FROM qt_job(1);
SELECT * FROM qt_history(1);
SELECT qml.release(1, 'w1') AS again;
-- it can be fetched again; its old holder cannot complete it
SELECT id, attempts, locked_by FROM qml.fetch('w2');
SELECT qml.complete(1, 'w1') AS old_holder;
SELECT qml.complete(1, 'w2') AS new_holder;
SELECT * FROM qt_job(1);

--
-- pause and resume
--
CALL qt_reset();
SELECT qml.enqueue('p1', queue => 'pq') AS id;
SELECT qml.enqueue('o1', queue => 'other') AS id;
SELECT qml.pause_queue('pq') AS changed;
SELECT qml.pause_queue('pq') AS changed_again;
SELECT name, paused FROM qml.queues ORDER BY name;
SELECT id, method FROM qml.fetch('w1', '{pq}');
SELECT method FROM qml.fetch('w1', '{pq,other}', 10);
SELECT state FROM qml.jobs WHERE id = 1;
-- jobs can still be enqueued into a paused queue
SELECT qml.enqueue('p2', queue => 'pq') AS id;
SELECT qml.resume_queue('pq') AS changed;
SELECT qml.resume_queue('pq') AS changed_again;
SELECT method FROM qml.fetch('w1', '{pq}', 10) ORDER BY method;
-- resuming a queue that was never paused changes nothing
SELECT qml.resume_queue('never_paused') AS changed;
SELECT name, paused FROM qml.queues ORDER BY name;
-- pausing a queue nobody has used yet
SELECT qml.pause_queue('future') AS changed;
SELECT qml.enqueue('f1', queue => 'future') AS id;
SELECT id, method FROM qml.fetch('w1', '{future}');
SELECT qt_fingerprint() AS before \gset
SELECT expect_error($$SELECT qml.pause_queue(NULL)$$);
SELECT expect_error($$SELECT qml.pause_queue('')$$);
SELECT expect_error($$SELECT qml.pause_queue(repeat('q', 129))$$);
SELECT expect_error($$SELECT qml.resume_queue(NULL)$$);
SELECT expect_error($$SELECT qml.resume_queue('')$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;

--
-- fetch: bad input
--
CALL qt_reset();
SELECT qml.enqueue('e') AS id;
SELECT qt_fingerprint() AS before \gset
SELECT expect_error($$SELECT * FROM qml.fetch(NULL)$$);
SELECT expect_error($$SELECT * FROM qml.fetch('')$$);
SELECT expect_error($$SELECT * FROM qml.fetch(repeat('w', 201))$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', 0)$$, true);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', -1)$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', 1001)$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', NULL)$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', 1, interval '0')$$, true);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', 1, interval '-1 second')$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default}', 1, NULL)$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{}')$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', NULL)$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{default,NULL}')$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;
-- the limits themselves are fine
SELECT count(*) FROM qml.fetch(repeat('w', 200), '{default}', 1000, interval '1 microsecond');
-- a claim records the claiming session; leaving processing forgets it
CALL qt_reset();
SELECT qml.enqueue('session') AS id;
SELECT lease_pid = pg_backend_pid() AS claimed_by_me, lease_session IS NOT NULL AS has_session
  FROM qml.fetch('ws', session_lease => true);
SELECT qml.complete(1, 'ws') AS completed;
SELECT lease_pid IS NULL AND lease_session IS NULL AS session_forgotten,
	   locked_by IS NULL AND locked_until IS NULL AS lease_forgotten
  FROM qml.jobs WHERE id = 1;
-- by default a claim records no session: only the time lease applies
SELECT qml.enqueue('no session') AS id;
SELECT lease_pid IS NULL AND lease_session IS NULL AS no_session
  FROM qml.fetch('ws');

--
-- fetch and complete write qml.jobs themselves, unless the table has
-- something of an admin's own to run on updates: then their UPDATE
-- statements run, so that runs too. Both leave the same rows and history.
--
CALL qt_reset();
CREATE TABLE qt_updated (job_id bigint, state qml.job_state);
CREATE FUNCTION qt_seen_update() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO public.qt_updated VALUES (NEW.id, NEW.state); RETURN NULL; END$$;
SELECT count(*) FROM qml.enqueue_batch('[{"method": "m"}, {"method": "m"}, {"method": "m"}, {"method": "m"}]');
CREATE TRIGGER zz_admin_update AFTER UPDATE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qt_seen_update();
SELECT id, state, attempts, locked_by FROM qml.fetch('ws', batch => 2, session_lease => false) ORDER BY id;
SELECT qml.complete(1, 'ws', '{"r": 1}') AS completed;
SELECT * FROM qml.complete_batch('{2}', 'ws', ARRAY['{"r": 2}']::jsonb[]);
DROP TRIGGER zz_admin_update ON qml.jobs;
SELECT id, state, attempts, locked_by FROM qml.fetch('ws', batch => 2, session_lease => false) ORDER BY id;
SELECT qml.complete(3, 'ws', '{"r": 1}') AS completed;
SELECT * FROM qml.complete_batch('{4}', 'ws', ARRAY['{"r": 2}']::jsonb[]);
SELECT * FROM qt_updated ORDER BY job_id, state;
SELECT a.id AS via_update, b.id AS direct,
	   to_jsonb(a) - '{id,created_at,enqueued_at,started_at,finished_at,run_at,history}'::text[]
	   = to_jsonb(b) - '{id,created_at,enqueued_at,started_at,finished_at,run_at,history}'::text[] AS same_row,
	   ARRAY(SELECT qt_history(a.id)) = ARRAY(SELECT qt_history(b.id)) AS same_history,
	   a.finished_at >= a.started_at AND b.finished_at >= b.started_at
	   AND b.started_at >= b.enqueued_at AS both_stamped
  FROM qml.jobs a JOIN qml.jobs b ON b.id = a.id + 2 WHERE a.id IN (1, 2) ORDER BY a.id;
SELECT * FROM qt_history(1);
SELECT * FROM qt_history(3);
-- a job named twice is completed once, with its first result; NULLs are
-- skipped; results follow their ids whatever the order
SELECT id FROM qml.enqueue_batch('[{"method": "m"}, {"method": "m"}, {"method": "m"}]') id ORDER BY id;
SELECT count(*) AS fetched FROM qml.fetch('ws', batch => 3);
SELECT * FROM qml.complete_batch('{7,NULL,5,7,6}', 'ws',
								 ARRAY['{"r": 7}', '{"r": 0}', '{"r": 5}', '{"r": 77}', '{"r": 6}']::jsonb[]) ORDER BY 1;
SELECT id, state, result FROM qml.jobs WHERE id >= 5 ORDER BY id;
SELECT job_id, count(*) AS events FROM qml.job_events WHERE job_id >= 5 GROUP BY job_id ORDER BY job_id;
DROP TABLE qt_updated;
DROP FUNCTION qt_seen_update();
-- the direct writes are refused in a read-only transaction, as the UPDATE
-- was (with history off, no nextval() refuses it for them)
SELECT qml.enqueue('ro') AS ro \gset
SELECT count(*) AS fetched FROM qml.fetch('ws', batch => 1);
BEGIN READ ONLY;
SET LOCAL qml.history = off;
SELECT expect_error($$SELECT qml.complete($$ || :ro || $$, 'ws')$$);
SELECT expect_error($$SELECT qml.complete_batch(ARRAY[$$ || :ro || $$]::bigint[], 'ws')$$);
ROLLBACK;
SELECT state FROM qml.jobs WHERE id = :ro;
-- a claim counts attempts as the statement did: at the largest integer,
-- an error, and the job stays enqueued
SELECT qml.enqueue('many', queue => 'qmax') AS many \gset
UPDATE qml.jobs SET attempts = 2147483647 WHERE id = :many;
SELECT expect_error($$SELECT count(*) FROM qml.fetch('ws', '{qmax}')$$);
SELECT state, attempts FROM qml.jobs WHERE id = :many;
