--
-- bounds: every value the API takes is bounded, so that nothing accepted
-- breaks a later step (issue 13, item 6). Each refusal shows its SQLSTATE
-- and leaves every table as it was (qt_fingerprint). Durations are
-- positive (or zero where zero means "now"), of one sign and at most 100
-- years; run_at is finite and before the year 10000; names and keys have
-- 1 to their limit of characters; arrays fit one allocation. enqueue,
-- schedule and enqueue_batch apply the same rules.
--
CALL qt_reset();
SELECT qml.enqueue('live', queue => 'q', unique_key => 'k') AS live \gset
SELECT id AS held FROM qml.fetch('w', '{q}', session_lease => false) \gset
SELECT qml.enqueue('waiting', queue => 'q') AS waiting \gset
SELECT qt_fingerprint() AS before \gset

--
-- run_at: 'infinity' is a job that never runs and, with a unique_key, one
-- that holds its key for ever
--
SELECT expect_error($$SELECT qml.enqueue('m', run_at => 'infinity')$$);
SELECT expect_error($$SELECT qml.enqueue('m', run_at => '-infinity')$$);
SELECT expect_error($$SELECT qml.enqueue('m', run_at => 'infinity', unique_key => 'k2')$$);
SELECT expect_error($$SELECT qml.enqueue('m', run_at => '10000-01-01 00:00:00+00')$$);
SELECT expect_error($$SELECT qml.enqueue('m', run_at => '294276-12-31 23:59:59+00')$$);
SELECT expect_error($$SELECT qml.schedule('m', run_at => 'infinity')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m"}, {"method": "m", "run_at": "infinity"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "run_at": "-infinity"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "run_at": "12000-01-01"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "unique_key": "u", "run_at": "infinity"}]')$$);
-- a string that is no timestamp: 22023 with the element's position, not
-- the input function's 22007 / 22008
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m"}, {"method": "m", "run_at": "294277-01-01"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m"}, {"method": "m"}, {"method": "m", "run_at": "2020-13-45"}]')$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;

--
-- durations: mixed signs ('1 day -86399 seconds' is a second, or an hour in
-- the past across a DST change), negative, zero where it is no duration,
-- over 100 years (now() + '10000 years' overflows)
--
SELECT expect_error($$SELECT qml.schedule('m', delay => '-1 minute')$$);
SELECT expect_error($$SELECT qml.schedule('m', delay => '1 day -86399 seconds')$$);
SELECT expect_error($$SELECT qml.schedule('m', delay => '200000 years')$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w2', '{q}', lease => '200000 years')$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w2', '{q}', lease => '1 day -86399 seconds')$$);
SELECT expect_error($$SELECT * FROM qml.heartbeat(ARRAY[$$ || :held || $$]::bigint[], 'w', '101 years')$$);
SELECT expect_error($$SELECT * FROM qml.heartbeat(ARRAY[$$ || :held || $$]::bigint[], 'w', '1 month -29 days')$$);
SELECT expect_error($$SELECT qml.enqueue('m', backoff_base => '101 years')$$);
SELECT expect_error($$SELECT qml.enqueue('m', backoff_cap => '1 month -29 days')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "backoff_cap": "1 month -29 days"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "backoff_base": "1000000000 years"}]')$$);
SELECT expect_error($$SELECT qml.configure_queue('keep-forever', retention => '10000 years')$$);
SELECT expect_error($$SELECT qml.configure_queue('keep-forever', retention => '-1 second')$$);
SELECT expect_error($$SELECT qml.configure_queue('keep-forever', retention => '1 year -1 day')$$);
-- ... and written into the table directly: the table's own CHECK
SELECT expect_error($$INSERT INTO qml.queues (name, retention) VALUES ('keep-forever', '10000 years')$$);
-- throughput: '-1 year 365 days 6 hours' is positive as an interval
-- compares (5 days 6 hours) and 0 seconds as extract(epoch) counts
SELECT expect_error($$SELECT * FROM qml.throughput('-1 year 365 days 6 hours')$$);
SELECT expect_error($$SELECT * FROM qml.throughput('1 minute', '-1 year 365 days 6 hours')$$);
SELECT expect_error($$SELECT * FROM qml.throughput('1 minute', '101 years')$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;

--
-- names and keys
--
SELECT expect_error($$SELECT * FROM qml.fetch('w2', '{""}')$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w2', ARRAY['q', repeat('x', 129)])$$);
SELECT left(expect_error($$SELECT * FROM qml.fetch('w2', ARRAY[repeat('x', 1000000)])$$), 50);
SELECT expect_error($$SELECT qml.complete($$ || :held || $$, NULL)$$);
SELECT expect_error($$SELECT qml.complete($$ || :held || $$, '')$$);
SELECT expect_error($$SELECT qml.complete($$ || :held || $$, repeat('w', 201))$$);
SELECT expect_error($$SELECT * FROM qml.complete_batch(ARRAY[$$ || :held || $$]::bigint[], NULL)$$);
SELECT expect_error($$SELECT * FROM qml.complete_batch(ARRAY[$$ || :held || $$]::bigint[], '')$$);
SELECT expect_error($$SELECT * FROM qml.complete_batch(ARRAY[$$ || :held || $$]::bigint[], repeat('w', 201))$$);
SELECT expect_error($$SELECT qml.fail($$ || :held || $$, NULL, 'x')$$);
SELECT expect_error($$SELECT qml.fail($$ || :held || $$, '', 'x')$$);
SELECT expect_error($$SELECT qml.fail($$ || :held || $$, repeat('w', 201), 'x')$$);
SELECT expect_error($$SELECT qml.fail($$ || :held || $$, 'w', 'x', retry => NULL)$$);
SELECT expect_error($$SELECT * FROM qml.heartbeat(ARRAY[$$ || :held || $$]::bigint[], NULL)$$);
SELECT expect_error($$SELECT * FROM qml.heartbeat(ARRAY[$$ || :held || $$]::bigint[], '')$$);
SELECT expect_error($$SELECT * FROM qml.heartbeat(ARRAY[$$ || :held || $$]::bigint[], repeat('w', 201))$$);
SELECT expect_error($$SELECT qml.release($$ || :held || $$, NULL)$$);
SELECT expect_error($$SELECT qml.release($$ || :held || $$, '')$$);
SELECT expect_error($$SELECT qml.release($$ || :held || $$, repeat('w', 201))$$);
-- a unique_key fits the unique index: 1 to 500 characters (3,000 bytes
-- gave 54000 naming the index), on every path
SELECT expect_error($$SELECT qml.enqueue('m', unique_key => repeat('k', 3000))$$);
SELECT expect_error($$SELECT qml.enqueue('m', unique_key => repeat('é', 501))$$);
SELECT expect_error($$SELECT qml.enqueue('m', unique_key => '')$$);
SELECT expect_error($$SELECT qml.schedule('m', delay => '1 hour', unique_key => repeat('k', 501))$$);
SELECT expect_error($$SELECT qml.enqueue_batch(jsonb_build_array(jsonb_build_object('method', 'm', 'unique_key', repeat('k', 3000))))$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "unique_key": ""}]')$$);
-- recurring jobs: the schedule and time zone a parser's message repeats
SELECT expect_error($$SELECT qml.add_recurring('r', repeat('* ', 500000), 'm')$$);
SELECT expect_error($$SELECT qml.add_recurring('r', '@daily', 'm', timezone => repeat('x', 100000))$$);
SELECT expect_error($$SELECT qml.add_recurring('r', '', 'm')$$);
SELECT expect_error($$SELECT qml.add_recurring('r', '1 day -86399 seconds', 'm')$$);
SELECT count(*) AS recurring FROM qml.recurring;
SELECT qt_fingerprint() = :'before' AS nothing_changed;

--
-- arrays: past one allocation's worth, 54000 with the limit, before any
-- work (the NULL elements cost nothing to build)
--
SELECT expect_error($$SELECT qml.enqueue_batch((SELECT jsonb_agg(NULL::jsonb) FROM generate_series(1, 1000001)))$$);
SELECT expect_error($$SELECT * FROM qml.complete_batch(array_fill(NULL::bigint, ARRAY[50000001]), 'w')$$);
-- NULL ids are no job of anyone's: left out
SELECT * FROM qml.complete_batch(ARRAY[NULL]::bigint[], 'w');
SELECT * FROM qml.heartbeat(ARRAY[NULL]::bigint[], 'w');
SELECT qt_fingerprint() = :'before' AS nothing_changed;

--
-- what is taken, and the same on every path: the limits themselves,
-- and JSON null in a batch as a NULL argument of enqueue (the default)
--
SELECT qml.configure_queue('keep-long', retention => '100 years');
SELECT qml.configure_queue('prune-now', retention => '0');
SELECT qml.schedule('m', delay => '0') > 0 AS zero_delay_taken;
SELECT qml.enqueue('far', queue => 'far', run_at => '9999-12-31 23:59:59+00') AS far \gset
SELECT state FROM qml.jobs WHERE id = :far;
SELECT qml.enqueue('m', queue => 'keyed', unique_key => repeat('é', 500)) > 0 AS key_500_taken;
SELECT id AS b FROM qml.enqueue_batch('[{"method": "n", "priority": null, "max_attempts": null, "arguments": null}]') id \gset
SELECT qml.enqueue('n', NULL, priority => NULL, max_attempts => NULL) AS e \gset
SELECT id AS b_keyed FROM qml.enqueue_batch('[{"method": "n", "priority": null, "max_attempts": null, "arguments": null, "unique_key": "n"}]') id \gset
SELECT id, priority, max_attempts, arguments FROM qml.jobs WHERE id IN (:b, :e, :b_keyed) ORDER BY id;
SELECT id AS p1 FROM qml.enqueue_batch('[{"method": "p", "priority": -2147483648}]') id \gset
SELECT qml.enqueue('p', priority => -2147483648) AS p2 \gset
SELECT id, priority FROM qml.jobs WHERE id IN (:p1, :p2) ORDER BY id;
-- a backoff written into qml.jobs directly past the bounds: fail() and the
-- scheduler's rescue saturate (at 100 years, or the shortest delay). A
-- backoff's year is 360 days (backoff.c), so the saturated delay, a random
-- point in the upper half, lies between 18,000 and 36,000 days: '50 years'
-- of the calendar (18,262 days) would fail 1.5% of runs
SELECT qml.enqueue('direct', queue => 'direct', max_attempts => 5) AS direct \gset
UPDATE qml.jobs SET backoff_base = '1000000 years', backoff_cap = '100000000 years' WHERE id = :direct;
SELECT count(*) FROM qml.fetch('wd', '{direct}', session_lease => false);
SELECT qml.fail(:direct, 'wd', 'boom');
SELECT run_at BETWEEN now() + interval '18000 days' AND now() + interval '36000 days' AS saturated
  FROM qml.jobs WHERE id = :direct;
UPDATE qml.jobs SET state = 'enqueued', backoff_base = '-1 day', backoff_cap = '-1 day' WHERE id = :direct;
SELECT count(*) FROM qml.fetch('wd', '{direct}', lease => '1 microsecond', session_lease => false);
SELECT (qml.maintain()->>'rescued')::int AS rescued;
SELECT state, run_at <= now() + interval '1 second' AS due_at_once FROM qml.jobs WHERE id = :direct;
-- a finished job of a queue kept 100 years is older than qml.retention:
-- the prune step keeps it and the pass goes on
UPDATE qml.jobs SET state = 'succeeded', finished_at = now() - interval '3 days'
 WHERE id = :waiting;
UPDATE qml.jobs SET queue = 'keep-long' WHERE id = :waiting;
SELECT (qml.maintain()->>'pruned')::int AS pruned;
SELECT state FROM qml.jobs WHERE id = :waiting;

--
-- unique keys are unique within their queue: the live 'k' of queue q
-- does not block another queue's producers
--
SELECT qml.enqueue('other', queue => 'elsewhere', unique_key => 'k') <> :live AS own_job;
SELECT qml.enqueue('same', queue => 'q', unique_key => 'k') = :live AS same_queue_same_job;
SELECT (SELECT count(*) FROM qml.enqueue_batch('[{"method": "b", "queue": "third", "unique_key": "k"}]')) AS batch_own_job;
SELECT queue, count(*) FROM qml.jobs WHERE unique_key = 'k' GROUP BY queue ORDER BY queue;

-- the internal duration check refuses NULLs it cannot name (it crashed on them)
SELECT expect_error($$SELECT qml.check_duration(NULL, '1 second', true)$$);
SELECT expect_error($$SELECT qml.check_duration('lease', '1 second', NULL)$$);
