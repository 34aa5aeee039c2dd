--
-- qml.maintain(): one scheduler pass by hand. Promotes due scheduled and
-- retrying jobs, rescues jobs whose lease expired, prunes finished jobs
-- past their queue's retention.
--
-- A background scheduler may run the same pass at any time. So that it
-- cannot take a step before us, each case makes its jobs due (or expired,
-- or old) and calls qml.maintain() in one transaction: the scheduler cannot
-- see those jobs before we commit, and then there is nothing left to do.
--
CALL qt_reset();
SET qml.retry_base = '1h';

SELECT * FROM qt_pass();

--
-- promote
--
SELECT qml.enqueue('sched_due', run_at => now() + interval '1 day') AS id;
SELECT qml.enqueue('sched_later', run_at => now() + interval '1 day') AS id;
SELECT qml.enqueue('retry_due', max_attempts => 5) AS id;
SELECT qml.enqueue('retry_later', max_attempts => 5) AS id;
SELECT qml.enqueue('sched_paused', queue => 'paused', run_at => now() + interval '1 day') AS id;
SELECT qml.pause_queue('paused');
SELECT count(*) FROM qml.fetch('w1', batch => 2);
SELECT qml.fail(3, 'w1', 'e3'), qml.fail(4, 'w1', 'e4');
BEGIN;
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id IN (1, 3, 5);
SELECT * FROM qt_pass();
SELECT id, method, state, attempts, enqueued_at BETWEEN now() AND clock_timestamp() AS enqueued_now, run_at < now() AS due
  FROM qml.jobs ORDER BY id;
COMMIT;
SELECT job_id, from_state, to_state, worker, error FROM qml.job_events
 WHERE to_state = 'enqueued' AND from_state IS NOT NULL ORDER BY job_id;
-- promoted jobs are fetched like any other; the retry keeps counting attempts
SELECT id, attempts FROM qml.fetch('w2', batch => 10) ORDER BY id;
-- a promoted job in a paused queue waits for the queue
SELECT id, method FROM qml.fetch('w2', '{paused}');
SELECT qml.resume_queue('paused');
SELECT id FROM qml.fetch('w2', '{paused}');
-- a second pass has nothing to promote
SELECT qml.maintain() -> 'promoted' AS promoted_again;

--
-- fetch promotes due jobs itself: no scheduler serves this database, so
-- nothing but fetch can have promoted them
--
CALL qt_reset();
SELECT qml.enqueue('head_1', queue => 'dq') AS id;
SELECT qml.enqueue('head_2', queue => 'dq') AS id;
SELECT qml.enqueue('head_3', queue => 'dq') AS id;
SELECT qml.enqueue('old_due', queue => 'dq', run_at => now() + interval '1 day') AS id;
SELECT qml.enqueue('urgent_due', queue => 'dq', priority => 5, run_at => now() + interval '1 day') AS id;
SELECT qml.enqueue('not_due', queue => 'dq', run_at => now() + interval '1 day') AS id;
SELECT qml.enqueue('retry_due', queue => 'dq', max_attempts => 3) AS id;
SELECT qml.enqueue('paused_due', queue => 'dq_paused', run_at => now() + interval '1 day') AS id;
-- job 7 fails once: awaiting_retry, an hour out
SELECT count(*) FROM qml.fetch('w', '{dq}', 10);
SELECT qml.fail(7, 'w', 'first try') AS failed;
UPDATE qml.jobs SET state = 'enqueued', locked_by = NULL, locked_until = NULL,
	   lease_pid = NULL, lease_session = NULL, started_at = NULL, attempts = 0
 WHERE id IN (1, 2, 3);
-- a full claim moves the queue's head to job 2 (queue_head.c) ...
SELECT id FROM qml.fetch('w', '{dq}', 2);
-- ... then jobs 4, 5 and 7 fall due, before the head
UPDATE qml.jobs SET run_at = now() - interval '3 hours' WHERE id = 4;
UPDATE qml.jobs SET run_at = now() - interval '2 hours' WHERE id IN (5, 8);
UPDATE qml.jobs SET run_at = now() - interval '1 hour' WHERE id = 7;
SELECT qml.pause_queue('dq_paused');
-- the enqueued job first; the due jobs fill the rest of the batch, the
-- earliest due promoted first, then claimed in fetch's order
SELECT id, method, state, attempts FROM qml.fetch('w', '{dq}', 3);
SELECT * FROM qt_history(4);
SELECT id, state FROM qml.jobs WHERE id = 7;
-- nothing enqueued is left: the retry is promoted and claimed; what is
-- not due, or due in a paused queue, stays scheduled
SELECT id, method, attempts FROM qml.fetch('w', '{dq,dq_paused}', 10);
SELECT * FROM qt_history(7);
SELECT id, state FROM qml.jobs WHERE id IN (6, 8) ORDER BY id;
-- a claim rolled back undoes its promotion too
UPDATE qml.jobs SET run_at = now() - interval '1 hour' WHERE id = 6;
BEGIN;
SELECT id, method FROM qml.fetch('w', '{dq}');
ROLLBACK;
SELECT id, state FROM qml.jobs WHERE id = 6;
SELECT count(*) AS events_of_6 FROM qml.job_events WHERE job_id = 6;

--
-- rescue: a lease that ran out fails the job like qml.fail() would
--
CALL qt_reset();
SELECT qml.enqueue('expired', max_attempts => 3) AS id;
SELECT qml.enqueue('expired_last', max_attempts => 1) AS id;
SELECT qml.enqueue('alive') AS id;
SELECT id FROM qml.fetch('dead-worker', batch => 2) ORDER BY id;
SELECT id FROM qml.fetch('live-worker');
BEGIN;
UPDATE qml.jobs SET locked_until = now() - interval '1 second' WHERE id IN (1, 2);
SELECT * FROM qt_pass();
SELECT id, state, attempts, locked_by, locked_until IS NULL AS lease_cleared,
	   finished_at IS NOT NULL AS finished, last_error,
	   CASE WHEN state = 'awaiting_retry'
			THEN run_at BETWEEN now() + interval '30 minutes' AND now() + interval '1 hour' END AS backoff
  FROM qml.jobs ORDER BY id;
COMMIT;
SELECT * FROM qt_history(1);
SELECT * FROM qt_history(2);
-- the dead worker lost both jobs: nothing it does changes them
SELECT qt_fingerprint() AS before \gset
SELECT qml.complete(1, 'dead-worker') AS complete, qml.fail(1, 'dead-worker', 'x') AS fail,
	   qml.release(1, 'dead-worker') AS release,
	   (SELECT count(*) FROM qml.heartbeat('{1,2}', 'dead-worker')) AS heartbeats,
	   (SELECT count(*) FROM qml.complete_batch('{1,2}', 'dead-worker')) AS completed;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
-- the live lease was left alone
SELECT * FROM qt_job(3);
-- when its retry comes, another worker gets the rescued job
BEGIN;
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id = 1;
SELECT * FROM qt_pass();
COMMIT;
SELECT id, attempts, locked_by FROM qml.fetch('new-worker');
SELECT qml.complete(1, 'dead-worker') AS old_worker, qml.complete(1, 'new-worker') AS new_worker;

--
-- prune: finished jobs past their queue's retention go, with their history;
-- failed jobs stay unless qml.prune_failed; live jobs always stay
--
CALL qt_reset();
SELECT count(*) FROM qml.enqueue_batch('[
	{"method": "pr_succeeded", "queue": "pr"}, {"method": "pr_failed", "queue": "pr"},
	{"method": "pr_deleted", "queue": "pr"}, {"method": "pr_enqueued", "queue": "pr"},
	{"method": "pr_processing", "queue": "pr"}, {"method": "pr_retry", "queue": "pr"},
	{"method": "keep_succeeded", "queue": "keep"},
	{"method": "old_default", "queue": "keep"},
	{"method": "old_long", "queue": "long"}]');
SELECT count(*) FROM qml.fetch('w', '{pr,keep,long}', 100);
SELECT qml.complete(1, 'w'), qml.fail(2, 'w', 'x', false), qml.delete(3), qml.release(4, 'w'),
	   qml.fail(6, 'w', 'again');
SELECT count(*) FROM qml.complete_batch('{7,8,9}', 'w');
SELECT id, method, state FROM qml.jobs ORDER BY id;
SELECT count(*) AS events_before FROM qml.job_events;
BEGIN;
INSERT INTO qml.queues (name, retention) VALUES ('pr', '0'), ('long', '7 days');
-- older than the default retention (qml.retention, a day), but not older
-- than its queue's
UPDATE qml.jobs SET finished_at = now() - interval '2 days' WHERE id IN (8, 9);
SELECT * FROM qt_pass();
SELECT id, method, state FROM qml.jobs ORDER BY id;
-- history goes with the job, and only with it
SELECT job_id, count(*) AS events FROM qml.job_events GROUP BY job_id ORDER BY job_id;
COMMIT;
SELECT qml.maintain() -> 'pruned' AS pruned_again;
-- a retention of zero prunes as soon as the job finishes (a background
-- pass may get there first, so only the outcome is shown)
SELECT qml.complete(5, 'w');
SELECT qml.maintain() IS NOT NULL AS pass;
SELECT id FROM qml.jobs ORDER BY id;

--
-- history can be turned off per queue or with qml.history; the queue's own
-- setting wins
--
CALL qt_reset();
INSERT INTO qml.queues (name, history) VALUES ('quiet', false), ('loud', true);
SELECT qml.enqueue('q', queue => 'quiet') AS id;
SELECT id FROM qml.fetch('w', '{quiet}');
SELECT qml.complete(1, 'w');
SET qml.history = off;
SELECT qml.enqueue('d') AS id;
SELECT qml.enqueue('l', queue => 'loud') AS id;
SELECT count(*) FROM qml.fetch('w', '{default,loud}', 10);
SELECT count(*) FROM qml.complete_batch('{2,3}', 'w');
RESET qml.history;
SELECT j.id, j.queue, j.state, count(e.id) AS events
  FROM qml.jobs j LEFT JOIN qml.job_events e ON e.job_id = j.id
 GROUP BY j.id, j.queue, j.state ORDER BY j.id;
-- timestamps are kept whether or not history is
SELECT id, started_at IS NOT NULL AS started, finished_at IS NOT NULL AS finished FROM qml.jobs ORDER BY id;
RESET qml.retry_base;
