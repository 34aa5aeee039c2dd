--
-- fail and retries: qml.retry_delay's exponential backoff with jitter and
-- its cap, fail() while attempts remain, fail(retry => false), running out
-- of attempts, and fail() by a worker that does not hold the job.
--
-- Backoff is random: ranges are checked, never values. Each attempt n of
-- base b and cap c waits a random point in [d/2, d], d = min(b * 2^(n-1), c).
--
CALL qt_reset();

CREATE TEMP TABLE delays AS
SELECT a.attempt, a.base, a.cap, a.lo, a.hi, qml.retry_delay(a.attempt, a.base, a.cap) AS d
  FROM (VALUES (1, interval '1 s', interval '1 h', interval '0.5 s', interval '1 s'),
			   (2, '1 s', '1 h', '1 s', '2 s'),
			   (3, '1 s', '1 h', '2 s', '4 s'),
			   (5, '1 s', '1 h', '8 s', '16 s'),
			   (11, '1 s', '1 h', '512 s', '1024 s'),
			   -- the cap
			   (5, '1 s', '10 s', '5 s', '10 s'),
			   (30, '1 s', '10 s', '5 s', '10 s'),
			   (1000, '1 s', '10 s', '5 s', '10 s'),
			   (2147483647, '1 s', '10 s', '5 s', '10 s'),
			   (40, '1 s', '1 day', '12 h', '24 h'),
			   -- attempts below 1 count as the first
			   (0, '1 s', '1 h', '0.5 s', '1 s'),
			   (-3, '1 s', '1 h', '0.5 s', '1 s'),
			   -- a base above the cap is the cap
			   (1, '1 min', '10 s', '5 s', '10 s'),
			   -- days and months are 24 hours and 30 days long
			   (1, '1 day', '1 year', '12 h', '24 h'),
			   (1, '1 mon', '1 year', '360 h', '720 h'),
			   (2, '250 ms', '1 h', '250 ms', '500 ms')) AS a(attempt, base, cap, lo, hi),
	   generate_series(1, 200) AS g;
SELECT attempt, base, cap, bool_and(d BETWEEN lo AND hi) AS in_range,
	   count(DISTINCT d) > 1 AS jittered
  FROM delays GROUP BY attempt, base, cap ORDER BY base, cap, attempt;
-- on average the delay grows with every attempt until the cap
SELECT attempt, avg_s > lag(avg_s) OVER (ORDER BY attempt) AS grows
  FROM (SELECT attempt, avg(extract(epoch FROM d)) AS avg_s
		  FROM delays WHERE base = '1 s' AND cap = '1 h' AND attempt BETWEEN 1 AND 11
		 GROUP BY attempt) x
 ORDER BY attempt;
-- NULL attempt is the first
SELECT bool_and(qml.retry_delay(NULL, '1 s', '1 h') BETWEEN '0.5 s' AND '1 s') AS null_attempt
  FROM generate_series(1, 50);
-- a very large cap must not overflow into a zero or negative delay: it is
-- cut to the longest duration the API takes, 100 years
SELECT bool_and(qml.retry_delay(100, '1 s', '285000 years') BETWEEN interval '50 years' AND interval '100 years')
	   AS huge_cap_respected
  FROM generate_series(1, 20);

-- a backoff that enqueue() accepts never makes fail() raise (a raising fail
-- would abort the worker's transaction, and the same delay computed in a
-- rescue would fail every qml.maintain() pass of the database): either
-- enqueue refuses the absurd value or fail() works with it
CREATE FUNCTION pg_temp.fail_with_backoff(base interval, cap interval) RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	j bigint;
	st text;
BEGIN
	BEGIN
		j := qml.enqueue('absurd_backoff', queue => 'absurd', backoff_base => base, backoff_cap => cap);
	EXCEPTION WHEN invalid_parameter_value THEN
		RETURN 'refused by enqueue';
	END;
	PERFORM qml.fetch('absurd', '{absurd}');
	BEGIN
		st := qml.fail(j, 'absurd', 'x');
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
		DELETE FROM qml.jobs WHERE id = j;
		RETURN 'fail() raised ' || st;
	END;
	DELETE FROM qml.jobs WHERE id = j;
	RETURN 'fail() -> ' || st;
END
$$;
SELECT b.base, b.cap, pg_temp.fail_with_backoff(b.base, b.cap)
	   IN ('refused by enqueue', 'fail() -> awaiting_retry') AS consistent
  FROM (VALUES (interval '300000 years', NULL::interval), (NULL, interval '300000 years'),
			   (interval '1 s', interval '1 day')) AS b(base, cap);

-- NULL base and cap follow qml.retry_base and qml.retry_cap
SET qml.retry_base = '2s';
SET qml.retry_cap = '3s';
SELECT bool_and(qml.retry_delay(1) BETWEEN '1 s' AND '2 s') AS first,
	   bool_and(qml.retry_delay(2) BETWEEN '1.5 s' AND '3 s') AS capped,
	   bool_and(qml.retry_delay(2, '100 ms') BETWEEN '100 ms' AND '200 ms') AS own_base,
	   bool_and(qml.retry_delay(9, NULL, '10 min') BETWEEN '256 s' AND '512 s') AS own_cap
  FROM generate_series(1, 100);
RESET qml.retry_base;
RESET qml.retry_cap;
SELECT bool_and(qml.retry_delay(1) BETWEEN '2.5 s' AND '5 s') AS default_base_5s,
	   bool_and(qml.retry_delay(100) BETWEEN '30 min' AND '1 hour') AS default_cap_1h
  FROM generate_series(1, 100);

-- a base or cap that is not positive (the API refuses it; one written into
-- qml.jobs directly reaches here from every fail and rescue) is taken as
-- the shortest delay, not raised on
SELECT qml.retry_delay(1, interval '0', interval '1 h') <= interval '1 microsecond' AS zero_base,
	   qml.retry_delay(1, interval '-1 s', interval '1 h') <= interval '1 microsecond' AS negative_base,
	   qml.retry_delay(1, interval '1 s', interval '0') <= interval '1 microsecond' AS zero_cap;
SELECT expect_error($$SET qml.retry_base = 0$$);
SELECT expect_error($$SET qml.retry_cap = '-1s'$$);

--
-- fail() while attempts remain: awaiting_retry, run_at pushed out by the
-- backoff of the job (an hour here, so no scheduler pass can promote it
-- while the test runs)
--
CALL qt_reset();
SELECT qml.enqueue('flaky', max_attempts => 3, backoff_base => interval '1 hour',
				   backoff_cap => interval '3 hours') AS id;
SELECT id, attempts FROM qml.fetch('w1');
BEGIN;
SELECT qml.fail(1, 'w1', 'connection refused') AS state;
SELECT run_at BETWEEN now() + interval '30 minutes' AND now() + interval '1 hour' AS backoff_1
  FROM qml.jobs WHERE id = 1;
COMMIT;
SELECT * FROM qt_job(1);
SELECT * FROM qt_history(1);
-- an awaiting_retry job is not fetched, and cannot be failed again
SELECT id, method FROM qml.fetch('w1');
SELECT qml.fail(1, 'w1', 'again') AS fail_again;

-- promote it (what the scheduler does when run_at comes), fetch, fail again:
-- the second delay is twice as long
BEGIN;
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id = 1;
SELECT qml.maintain() -> 'promoted' AS promoted;
COMMIT;
SELECT id, attempts FROM qml.fetch('w2');
BEGIN;
SELECT qml.fail(1, 'w2', 'timeout') AS state;
SELECT run_at BETWEEN now() + interval '1 hour' AND now() + interval '2 hours' AS backoff_2
  FROM qml.jobs WHERE id = 1;
COMMIT;
-- third and last attempt: failed, run_at untouched
BEGIN;
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id = 1;
SELECT qml.maintain() -> 'promoted' AS promoted;
COMMIT;
SELECT id, attempts FROM qml.fetch('w3');
SELECT run_at AS run_at_before FROM qml.jobs WHERE id = 1 \gset
SELECT qml.fail(1, 'w3', 'gave up') AS state;
SELECT run_at = :'run_at_before' AS run_at_kept FROM qml.jobs WHERE id = 1;
SELECT * FROM qt_job(1);
SELECT * FROM qt_history(1);
-- a failed job is not fetched
SELECT id, method FROM qml.fetch('w1');

-- the cap holds: base 1 hour, cap 90 minutes, fourth attempt (d = 8 hours)
SELECT qml.enqueue('capped', max_attempts => 5, backoff_base => interval '1 hour',
				   backoff_cap => interval '90 minutes') AS id;
UPDATE qml.jobs SET attempts = 3 WHERE id = 2;
SELECT id, attempts FROM qml.fetch('w1');
BEGIN;
SELECT qml.fail(2, 'w1', 'x') AS state;
SELECT run_at BETWEEN now() + interval '45 minutes' AND now() + interval '90 minutes' AS capped
  FROM qml.jobs WHERE id = 2;
COMMIT;

-- without a backoff of its own a job follows qml.retry_base / qml.retry_cap
SET qml.retry_base = '2h';
SET qml.retry_cap = '3h';
SELECT qml.enqueue('gucs', max_attempts => 2) AS id;
SELECT id FROM qml.fetch('w1');
BEGIN;
SELECT qml.fail(3, 'w1', 'x') AS state;
SELECT run_at BETWEEN now() + interval '1 hour' AND now() + interval '2 hours' AS from_gucs
  FROM qml.jobs WHERE id = 3;
COMMIT;
-- from here on, retries wait an hour or more
SET qml.retry_base = '1h';

--
-- fail(retry => false): failed at once, whatever attempts are left
--
CALL qt_reset();
SELECT qml.enqueue('fatal', max_attempts => 10) AS id;
SELECT id FROM qml.fetch('w1');
SELECT qml.fail(1, 'w1', 'bad arguments', retry => false) AS state;
SELECT * FROM qt_job(1);
SELECT * FROM qt_history(1);

-- max_attempts 1: the first failure is final
SELECT qml.enqueue('once', max_attempts => 1) AS id;
SELECT id FROM qml.fetch('w1');
SELECT qml.fail(2, 'w1', 'no luck') AS state;

-- a NULL error still leaves a message
SELECT qml.enqueue('silent') AS id;
SELECT id FROM qml.fetch('w1');
SELECT qml.fail(3, 'w1', NULL) AS state;
SELECT last_error FROM qml.jobs WHERE id = 3;
SELECT * FROM qt_history(3);

--
-- fail() by a worker that does not hold the job: NULL, nothing changed
--
CALL qt_reset();
SELECT qml.enqueue('held') AS id;
SELECT qml.enqueue('not_fetched', queue => 'idle') AS id;
SELECT id FROM qml.fetch('owner');
SELECT qt_fingerprint() AS before \gset
SELECT qml.fail(1, 'intruder', 'x') AS other_worker;
SELECT expect_error($$SELECT qml.fail(1, NULL, 'x')$$) AS null_worker;
SELECT qml.fail(2, 'owner', 'x') AS enqueued_job;
SELECT qml.fail(99, 'owner', 'x') AS missing_job;
SELECT qml.fail(NULL, 'owner', 'x') AS null_job;
SELECT qml.fail(1, 'intruder', 'x', retry => false) AS other_worker_final;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT * FROM qt_job(1);

-- a failed job is requeued with its attempts counted afresh
SELECT qml.fail(1, 'owner', 'x', retry => false) AS state;
SELECT qml.requeue(1) AS requeued;
SELECT * FROM qt_job(1);
SELECT id, attempts FROM qml.fetch('again');
SELECT qml.complete(1, 'again') AS done;
SELECT * FROM qt_history(1);
RESET qml.retry_base;

--
-- fail_batch: many failures in one statement; each job this worker held
-- comes back with its new state and, awaiting a retry, its next run time
-- (what libqml's runtime logs); the others are left out
--
CALL qt_reset();
SET qml.retry_base = '10s';
SELECT qml.enqueue('fb', max_attempts => 3) FROM generate_series(1, 4);
SELECT qml.enqueue('fb_last', max_attempts => 1) AS id;
SELECT count(*) FROM qml.fetch('fbw', batch => 4);
SELECT count(*) FROM qml.fetch('other', batch => 1);
CREATE TEMP TABLE fb AS
SELECT * FROM qml.fail_batch(ARRAY[1, 2, 3, 5, 99, NULL], 'fbw',
							 ARRAY['e1', NULL, 'e3', 'e5', 'e99', 'enull'],
							 ARRAY[true, true, false, true, true, true]);
SELECT f.job_id, f.state,
	   f.next_run_at = j.run_at AS next_is_run_at,
	   f.next_run_at - now() BETWEEN interval '4 s' AND interval '10 s' AS backoff_of_attempt_1
  FROM fb f JOIN qml.jobs j ON j.id = f.job_id
 ORDER BY f.job_id;
SELECT id, state, last_error FROM qml.jobs ORDER BY id;
-- retry left out: every job retried while attempts remain
SELECT job_id, state, next_run_at IS NOT NULL AS has_next FROM qml.fail_batch('{4}', 'fbw', '{e4}');
-- nothing to fail: no rows
SELECT count(*) FROM qml.fail_batch(NULL, 'fbw', NULL);
SELECT count(*) FROM qml.fail_batch('{}', 'fbw', '{}');
-- bad input: an error, nothing changed
SELECT qml.enqueue('fb_bad') AS id \gset
SELECT count(*) FROM qml.fetch('fbw');
SELECT qt_fingerprint() AS before \gset
SELECT expect_error($$SELECT * FROM qml.fail_batch(ARRAY[6], 'fbw', ARRAY['a', 'b'])$$) AS errors_longer;
SELECT expect_error($$SELECT * FROM qml.fail_batch(ARRAY[6], 'fbw', ARRAY['a'], ARRAY[true, false])$$) AS retry_longer;
SELECT expect_error($$SELECT * FROM qml.fail_batch(ARRAY[6], 'fbw', NULL)$$) AS null_errors;
SELECT expect_error($$SELECT * FROM qml.fail_batch(ARRAY[6], 'fbw', ARRAY['a'], ARRAY[NULL::boolean])$$) AS null_retry;
SELECT expect_error($$SELECT * FROM qml.fail_batch(ARRAY[6], NULL, ARRAY['a'])$$) AS null_worker;
SELECT expect_error($$SELECT qml.fail(6, 'fbw', 'a', NULL)$$) AS fail_null_retry;
SELECT qt_fingerprint() = :'before' AS nothing_changed;
RESET qml.retry_base;
