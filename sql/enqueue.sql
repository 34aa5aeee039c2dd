--
-- enqueue, enqueue_batch, schedule: normal paths, unique keys, history on
-- insert, and every bad input (specific SQLSTATE, nothing changed).
--
CALL qt_reset();
-- scheduled jobs use far-future run_at so that a background scheduler pass
-- cannot promote them while the test runs

-- defaults
SELECT qml.enqueue('send_email') AS id;
SELECT queue, method, arguments, priority, state, attempts, max_attempts,
	   run_at = created_at AS run_at_is_created_at,
	   enqueued_at BETWEEN created_at AND clock_timestamp() AS enqueued_at_set, started_at, finished_at,
	   locked_by, locked_until, last_error, result, unique_key, backoff_base, backoff_cap
  FROM qml.jobs WHERE id = 1;
SELECT * FROM qt_history(1);

-- every parameter
SELECT qml.enqueue('resize', '{"w": 10}', 'images', 7, NULL, 3, NULL,
				   interval '2 seconds', interval '1 minute') AS id;
SELECT queue, method, arguments, priority, state, max_attempts, backoff_base, backoff_cap
  FROM qml.jobs WHERE id = 2;

-- NULL arguments and priority fall back to their defaults
SELECT qml.enqueue('nulls', NULL, priority => NULL) AS id;
SELECT arguments, priority FROM qml.jobs WHERE id = 3;

-- max_attempts defaults to qml.default_max_attempts
SET qml.default_max_attempts = 3;
SELECT qml.enqueue('three') AS id;
RESET qml.default_max_attempts;
SELECT qml.enqueue('twenty') AS id;
SELECT id, max_attempts FROM qml.jobs WHERE id IN (4, 5) ORDER BY id;

-- run_at: future -> scheduled (no enqueued_at), past or now -> enqueued;
-- a past run_at means "now" (the job does not jump the queue)
SELECT qml.enqueue('later', run_at => now() + interval '1 day') AS id;
SELECT qml.enqueue('earlier', run_at => now() - interval '1 day') AS id;
BEGIN;
SELECT qml.enqueue('right_now', run_at => now()) AS id;
SELECT state, run_at = now() AS run_at_kept FROM qml.jobs WHERE id = 8;
COMMIT;
SELECT id, state, enqueued_at IS NOT NULL AS enqueued_at_set,
	   run_at > now() + interval '23 hours' AS in_a_day,
	   run_at = created_at AS run_at_now
  FROM qml.jobs WHERE id IN (6, 7) ORDER BY id;
SELECT * FROM qt_history(6);
SELECT * FROM qt_history(7);

-- long but allowed names
SELECT qml.enqueue(repeat('m', 1000), queue => repeat('q', 128)) AS id;
SELECT length(method), length(queue) FROM qml.jobs WHERE id = 9;

-- max_attempts 1 is allowed
SELECT qml.enqueue('once', max_attempts => 1) AS id;

--
-- unique_key: one live job per key. A deduplicated call may use up an id,
-- so ids are compared, not printed.
--
CALL qt_reset();
SELECT qml.enqueue('u', unique_key => 'k1') AS k1 \gset
SELECT qml.enqueue('u', unique_key => 'k1') = :k1 AS same;
SELECT qml.enqueue('u', unique_key => 'k2') AS k2 \gset
SELECT :k2 <> :k1 AS other_key_other_job;
-- the key is its queue's: another method in the queue finds the live job,
-- another queue has keys of its own
SELECT qml.enqueue('v', unique_key => 'k1') = :k1 AS same_again;
SELECT qml.enqueue('v', queue => 'elsewhere', unique_key => 'k1') <> :k1 AS other_queue_other_job;
SELECT count(*) AS jobs, count(*) FILTER (WHERE unique_key = 'k1') AS k1_jobs FROM qml.jobs;
-- no event for the deduplicated calls
SELECT count(*) AS events FROM qml.job_events;

-- while the job is processing the key is still taken
SELECT id = :k1 AS fetched_k1, state FROM qml.fetch('w1');
SELECT qml.enqueue('u', unique_key => 'k1') = :k1 AS still_same;
-- once it succeeded the key is free again
SELECT qml.complete(:k1, 'w1');
SELECT qml.enqueue('u', unique_key => 'k1') AS k1_again \gset
SELECT :k1_again > :k1 AS new_job;
-- a scheduled job holds its key too
SELECT qml.enqueue('s', run_at => now() + interval '1 day', unique_key => 'k3') AS k3 \gset
SELECT qml.enqueue('s', unique_key => 'k3') = :k3 AS same_scheduled;
SELECT state FROM qml.jobs WHERE id = :k3;
-- an awaiting_retry job holds its key; deleted and failed ones do not
SELECT qml.enqueue('r', queue => 'rq', max_attempts => 2, unique_key => 'k4',
				   backoff_base => interval '1 day') AS k4 \gset
SELECT id = :k4 AS fetched_k4 FROM qml.fetch('w2', '{rq}');
SELECT qml.fail(:k4, 'w2', 'boom');
SELECT qml.enqueue('r', queue => 'rq', unique_key => 'k4') = :k4 AS same_retrying;
SELECT qml.delete(:k4);
SELECT qml.enqueue('r', queue => 'rq', unique_key => 'k4') AS k4_after_delete \gset
SELECT :k4_after_delete > :k4 AS new_after_delete;
SELECT id = :k4_after_delete AS fetched FROM qml.fetch('w3', '{rq}');
SELECT qml.fail(:k4_after_delete, 'w3', 'boom', retry => false);
SELECT qml.enqueue('r', queue => 'rq', unique_key => 'k4') AS k4_after_failed \gset
SELECT :k4_after_failed > :k4_after_delete AS new_after_failed;
SELECT method, unique_key, state FROM qml.jobs WHERE unique_key IS NOT NULL ORDER BY id;

--
-- enqueue_batch
--
CALL qt_reset();
SELECT qml.enqueue_batch('[]') AS none;
SELECT ord, id FROM qml.enqueue_batch('[
	{"method": "a"},
	{"method": "b", "arguments": [1, 2], "queue": "q2", "priority": -3},
	{"method": "c", "run_at": "2999-01-01T00:00:00Z", "max_attempts": 4},
	{"method": "d", "arguments": {"x": null}, "run_at": "2000-01-01T00:00:00Z",
	 "backoff_base": "1 hour", "backoff_cap": "2 hours"}
]') WITH ORDINALITY AS b(id, ord);
-- as in enqueue(), a past run_at means "now"
SELECT id, method, arguments, queue, priority, state, max_attempts,
	   run_at = '2999-01-01T00:00:00Z' AS far, run_at = created_at AS run_at_now,
	   backoff_base, backoff_cap
  FROM qml.jobs ORDER BY id;
SELECT job_id, from_state, to_state FROM qml.job_events ORDER BY id;

-- with unique keys (taken one at a time): order kept, duplicates collapse,
-- a key already live returns the live job
SELECT qml.enqueue('e', unique_key => 'taken') AS live;
SELECT ord, id FROM qml.enqueue_batch('[
	{"method": "f", "unique_key": "u1"},
	{"method": "g"},
	{"method": "h", "unique_key": "taken"},
	{"method": "i", "unique_key": "u1"},
	{"method": "j", "unique_key": null, "queue": "q3", "priority": 2, "max_attempts": 1,
	 "run_at": "2999-01-01T00:00:00Z", "arguments": [true]}
]') WITH ORDINALITY AS b(id, ord);
SELECT id, method, unique_key, queue, priority, max_attempts, state, arguments
  FROM qml.jobs WHERE id > 5 ORDER BY id;

-- a bigger batch: ids come back in array order
CREATE TEMP TABLE bulk AS
SELECT id, ord
  FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'bulk', 'arguments',
											 jsonb_build_array(g)) ORDER BY g)
							FROM generate_series(1, 500) g)) WITH ORDINALITY AS b(id, ord);
SELECT count(*) AS n, count(DISTINCT id) AS distinct_ids,
	   bool_and(id - ord = (SELECT min(id) - 1 FROM bulk)) AS in_order
  FROM bulk;
SELECT count(*) AS arguments_match_order
  FROM bulk b JOIN qml.jobs j USING (id) WHERE j.arguments->>0 = b.ord::text;

-- a batch whose rows enter different partial indexes: each row is in the
-- indexes its own state admits, none other (a row reuses the predicate
-- answers of the row before only when the columns they read are the same)
SELECT count(*) AS mixed FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
	'method', 'mix', 'queue', 'mix',
	'run_at', CASE WHEN g IN (2, 4, 5) THEN now() + interval '1 day' END) ORDER BY g)
  FROM generate_series(1, 6) g));
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM qml.jobs WHERE queue = 'mix' AND state = 'enqueued';
SELECT count(*) AS via_fetch_idx FROM qml.jobs WHERE queue = 'mix' AND state = 'enqueued';
EXPLAIN (COSTS OFF) SELECT count(*) FROM qml.jobs
 WHERE queue = 'mix' AND state IN ('scheduled', 'awaiting_retry');
SELECT count(*) AS via_queue_due_idx FROM qml.jobs
 WHERE queue = 'mix' AND state IN ('scheduled', 'awaiting_retry');
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT state, count(*) FROM qml.jobs WHERE queue = 'mix' GROUP BY state ORDER BY state;

-- a batch written to the heap in several parts (64 rows each), its rows'
-- queues, priorities and states mixed: each index entry has the key of its
-- own row (the keys are taken before the rows go to the heap)
CREATE TEMP TABLE spread AS
SELECT b.id, b.ord
  FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
	'method', 'spread', 'queue', 'spread' || g % 3, 'priority', g % 5,
	'run_at', CASE WHEN g % 7 = 0 THEN now() + interval '1 day' END) ORDER BY g)
  FROM generate_series(1, 150) g)) WITH ORDINALITY AS b(id, ord);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT sum(f.n) AS found_via_fetch_idx,
	   count(*) FILTER (WHERE f.n <> (SELECT count(*) FROM spread
									   WHERE ord % 3 = q AND ord % 5 = p AND ord % 7 <> 0))
	   AS wrong_keys
  FROM generate_series(0, 2) q, generate_series(0, 4) p,
	   LATERAL (SELECT count(*) AS n FROM qml.jobs j
				 WHERE j.queue = 'spread' || q AND j.priority = p AND j.state = 'enqueued') f;
SELECT sum(f.n) AS found_via_queue_due_idx,
	   count(*) FILTER (WHERE f.n <> (SELECT count(*) FROM spread
									   WHERE ord % 3 = q AND ord % 7 = 0))
	   AS wrong_keys
  FROM generate_series(0, 2) q,
	   LATERAL (SELECT count(*) AS n FROM qml.jobs j
				 WHERE j.queue = 'spread' || q AND j.state IN ('scheduled', 'awaiting_retry')) f;
SELECT count(*) AS found_via_pkey FROM spread s WHERE EXISTS (SELECT FROM qml.jobs j WHERE j.id = s.id);
RESET enable_seqscan;
RESET enable_bitmapscan;

--
-- schedule
--
CALL qt_reset();
BEGIN;
SELECT qml.schedule('at', run_at => now() + interval '2 days') AS id;
SELECT qml.schedule('after', '[1]', delay => interval '3 days', queue => 'sq', priority => 4,
					max_attempts => 2, unique_key => 'sk') AS id;
SELECT id, method, arguments, queue, priority, max_attempts, unique_key, state,
	   run_at - now() AS due_in, enqueued_at IS NULL AS not_enqueued
  FROM qml.jobs ORDER BY id;
COMMIT;
SELECT qml.schedule('after', delay => interval '1 day', queue => 'sq', unique_key => 'sk') AS same_key;
SELECT * FROM qt_history(2);

--
-- bad input: specific SQLSTATE, a message saying what to fix, and nothing
-- changed
--
SELECT qt_fingerprint() AS before \gset
SELECT expect_error($$SELECT qml.enqueue(NULL)$$);
SELECT expect_error($$SELECT qml.enqueue('')$$);
SELECT expect_error($$SELECT qml.enqueue(repeat('m', 1001))$$, true);
SELECT expect_error($$SELECT qml.enqueue('m', queue => NULL)$$);
SELECT expect_error($$SELECT qml.enqueue('m', queue => '')$$);
SELECT expect_error($$SELECT qml.enqueue('m', queue => repeat('q', 129))$$);
SELECT expect_error($$SELECT qml.enqueue('m', queue => repeat('q', 100000))$$);
SELECT expect_error($$SELECT qml.enqueue('m', max_attempts => 0)$$);
SELECT expect_error($$SELECT qml.enqueue('m', max_attempts => -5)$$);
SELECT expect_error($$SELECT qml.enqueue('m', 'not json')$$);
SELECT expect_error($$SELECT qml.enqueue('m', '{"a": }')$$);
SELECT expect_error($$SELECT qml.enqueue('m', backoff_base => interval '0')$$);
SELECT expect_error($$SELECT qml.enqueue('m', backoff_base => interval '-1 second')$$);
SELECT expect_error($$SELECT qml.enqueue('m', backoff_cap => interval '0')$$);
SELECT expect_error($$SELECT qml.enqueue('m', unique_key => 'k', max_attempts => 0)$$);
SELECT expect_error($$SELECT qml.schedule('m')$$, true);
SELECT expect_error($$SELECT qml.schedule('m', run_at => now() + interval '1 day', delay => interval '1 day')$$);
SELECT expect_error($$SELECT qml.schedule(NULL, delay => interval '1 day')$$);
SELECT expect_error($$SELECT qml.schedule('m', delay => interval '1 day', max_attempts => 0)$$);
-- enqueue_batch: the whole batch is checked first, the first bad element named
SELECT expect_error($$SELECT qml.enqueue_batch(NULL)$$, true);
SELECT expect_error($$SELECT qml.enqueue_batch('{"method": "m"}')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('"m"')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('5')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('not json')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[1]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[[{"method": "m"}]]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "ok"}, {"method": "ok", "colour": "red"}]')$$, true);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": 5}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": null}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": ""}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch(jsonb_build_array(jsonb_build_object('method', repeat('m', 1001))))$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "queue": 1}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "queue": ""}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "queue": null}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch(jsonb_build_array(jsonb_build_object('method', 'm', 'queue', repeat('q', 129))))$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "priority": "high"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "priority": 1.5}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "priority": 3000000000}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "max_attempts": 0}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "max_attempts": "3"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "max_attempts": 2.5}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "run_at": 12}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "run_at": "not a time"}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "unique_key": 7}]')$$);
-- a bad element after good ones with unique keys: none of them is inserted
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "unique_key": "z1"}, {"method": "m", "unique_key": "z2"}, {"method": 1}]')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "unique_key": "z1"}, {"method": "m", "unique_key": "z2", "run_at": "never"}]')$$);
-- backoff_base / backoff_cap must be positive intervals, as in enqueue()
-- (only the SQLSTATE is shown: the message is the extension's to choose)
SELECT left(expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "backoff_base": "-1 second"}]')$$), 5) AS sqlstate;
SELECT left(expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "backoff_cap": "0"}]')$$), 5) AS sqlstate;
SELECT left(expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "unique_key": "b", "backoff_base": "0"}]')$$), 5) AS sqlstate;
SELECT left(expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "backoff_base": 5}]')$$), 5) AS sqlstate;
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "backoff_base": "soon"}]')$$);
SELECT qt_fingerprint() = :'before' AS nothing_changed;
SELECT count(*) AS jobs FROM qml.jobs;

--
-- enqueue writes qml.jobs itself, unless the table has something of an
-- admin's own to run on inserts: then it runs an INSERT, so that runs too.
-- Both leave the same row and the same history.
--
CREATE TABLE qt_seen (job_id bigint);
CREATE FUNCTION qt_seen_insert() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO public.qt_seen VALUES (NEW.id); RETURN NULL; END$$;
CREATE TRIGGER zz_admin_audit AFTER INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qt_seen_insert();
SELECT qml.enqueue('via_insert', '{"a": 1}', 'cmp', 2, max_attempts => 4,
				   backoff_base => '3 seconds') AS via_insert \gset
DROP TRIGGER zz_admin_audit ON qml.jobs;
SELECT qml.enqueue('direct', '{"a": 1}', 'cmp', 2, max_attempts => 4,
				   backoff_base => '3 seconds') AS direct \gset
SELECT array_agg(job_id = :via_insert) AS audit_saw_only_the_insert FROM qt_seen;
SELECT to_jsonb(a) - '{id,method,created_at,enqueued_at,run_at,history}'::text[]
	   = to_jsonb(b) - '{id,method,created_at,enqueued_at,run_at,history}'::text[] AS same_row,
	   ARRAY(SELECT qt_history(a.id)) = ARRAY(SELECT qt_history(b.id)) AS same_history,
	   a.enqueued_at >= a.created_at AND b.enqueued_at >= b.created_at AS both_stamped,
	   a.run_at = a.created_at AND b.run_at = b.created_at AS both_due_now
  FROM qml.jobs a, qml.jobs b WHERE a.id = :via_insert AND b.id = :direct;
SELECT * FROM qt_history(:via_insert);
SELECT * FROM qt_history(:direct);
-- enqueue_batch the same way: with the admin's trigger the checked batch
-- goes to an INSERT ... SELECT and the trigger sees it; without, the rows
-- are written directly, and both batches leave the same rows and history
CREATE TRIGGER zz_admin_audit AFTER INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qt_seen_insert();
SELECT array_agg(id ORDER BY id) AS batch_via_insert FROM qml.enqueue_batch('[
	{"method": "b", "queue": "cmpb", "priority": 3, "max_attempts": 2, "arguments": {"x": 1},
	 "backoff_cap": "1 hour"},
	{"method": "b", "queue": "cmpb", "run_at": "2999-01-01T00:00:00Z", "arguments": 7}]') id \gset
DROP TRIGGER zz_admin_audit ON qml.jobs;
SELECT array_agg(id ORDER BY id) AS batch_direct FROM qml.enqueue_batch('[
	{"method": "b", "queue": "cmpb", "priority": 3, "max_attempts": 2, "arguments": {"x": 1},
	 "backoff_cap": "1 hour"},
	{"method": "b", "queue": "cmpb", "run_at": "2999-01-01T00:00:00Z", "arguments": 7}]') id \gset
SELECT count(*) AS audit_saw_the_first_batch FROM qt_seen WHERE job_id = ANY (:'batch_via_insert');
SELECT count(*) AS audit_saw_the_second FROM qt_seen WHERE job_id = ANY (:'batch_direct');
SELECT a.state, to_jsonb(a) - '{id,created_at,enqueued_at,run_at,history}'::text[]
	   = to_jsonb(b) - '{id,created_at,enqueued_at,run_at,history}'::text[] AS same_row,
	   ARRAY(SELECT qt_history(a.id)) = ARRAY(SELECT qt_history(b.id)) AS same_history,
	   (a.enqueued_at IS NULL) = (b.enqueued_at IS NULL) AS same_stamps,
	   CASE a.state WHEN 'enqueued' THEN a.run_at = a.created_at AND b.run_at = b.created_at
	   ELSE a.run_at = b.run_at END AS same_due
  FROM unnest(:'batch_via_insert'::bigint[]) WITH ORDINALITY AS x(id, n)
  JOIN unnest(:'batch_direct'::bigint[]) WITH ORDINALITY AS y(id, n) ON x.n = y.n
  JOIN qml.jobs a ON a.id = x.id JOIN qml.jobs b ON b.id = y.id ORDER BY x.n;
SELECT * FROM qt_history((:'batch_via_insert'::bigint[])[1]);
SELECT * FROM qt_history((:'batch_direct'::bigint[])[1]);
-- in a read-only transaction: refused before anything is written
BEGIN READ ONLY;
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "ro"}]')$$);
ROLLBACK;
-- a whole number written with a decimal point is taken the same way on
-- both paths: directly, and with a unique key by statement
SELECT array_agg(id) AS dec_ids
  FROM qml.enqueue_batch('[{"method": "dec", "priority": 2.0, "max_attempts": 3.0},
						   {"method": "dec", "priority": 2.0, "max_attempts": 3.0, "unique_key": "dec1"}]') id \gset
SELECT priority, max_attempts, unique_key IS NOT NULL AS keyed
  FROM qml.jobs WHERE id = ANY (:'dec_ids') ORDER BY id;
-- an admin's own CHECK constraint holds for enqueue too
ALTER TABLE qml.jobs ADD CONSTRAINT zz_no_forbidden CHECK (method <> 'forbidden');
SELECT expect_error($$SELECT qml.enqueue('forbidden')$$);
ALTER TABLE qml.jobs DROP CONSTRAINT zz_no_forbidden;
SELECT qml.enqueue('forbidden') > :direct AS allowed_again;
-- a scheduled job written directly is stamped like one inserted
SELECT qml.enqueue('sched_direct', run_at => now() + interval '1 day') AS sched \gset
SELECT state, enqueued_at, created_at <= now() AS created_set FROM qml.jobs WHERE id = :sched;
SELECT * FROM qt_history(:sched);
-- a column of an admin's own gets its default: enqueue runs the INSERT
ALTER TABLE qml.jobs ADD COLUMN zz_tenant text NOT NULL DEFAULT 'acme';
SELECT qml.enqueue('with_tenant') AS tenant_job \gset
SELECT zz_tenant FROM qml.jobs WHERE id = :tenant_job;
SELECT count(*) AS fetched FROM qml.fetch('w_tenant', '{default}', 1);
ALTER TABLE qml.jobs DROP COLUMN zz_tenant;
-- and once it is dropped again, the direct write is back and still right
SELECT qml.enqueue('after_drop') AS after_drop \gset
SELECT state, max_attempts > 0 AS has_max_attempts FROM qml.jobs WHERE id = :after_drop;
-- a column the library needs is missing: 55000, with a hint, nothing written
BEGIN;
ALTER TABLE qml.jobs RENAME COLUMN result TO zz_result;
SELECT expect_error($$SELECT qml.enqueue('no_result_column')$$);
ROLLBACK;
SELECT count(*) AS not_written FROM qml.jobs WHERE method = 'no_result_column';
SELECT qml.enqueue('columns_back') > 0 AS enqueued_again;
-- the direct write keeps the table's indexes for the session: an index an
-- admin adds (or drops) is seen at once, partial and unique ones included,
-- and one of another kind sends the write the executor's way
SELECT qml.enqueue('before_index') > 0 AS plan_cached;
CREATE INDEX zz_urgent_idx ON qml.jobs (method) WHERE priority > 5;
SELECT qml.enqueue('urgent_one', priority => 9) AS urgent \gset
SELECT qml.enqueue('calm_one', priority => 1) AS calm \gset
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM qml.jobs WHERE priority > 5 AND method IN ('urgent_one', 'calm_one');
SELECT array_agg(id = :urgent) AS urgent_found_by_its_index
  FROM qml.jobs WHERE priority > 5 AND method IN ('urgent_one', 'calm_one');
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX qml.zz_urgent_idx;
CREATE UNIQUE INDEX zz_one_per_method ON qml.jobs (method) WHERE method LIKE 'solo%';
SELECT qml.enqueue('solo') > 0 AS first_solo;
SELECT expect_error($$SELECT qml.enqueue('solo')$$);
SELECT count(*) AS solos FROM qml.jobs WHERE method = 'solo';
DROP INDEX qml.zz_one_per_method;
CREATE INDEX zz_lower_method ON qml.jobs (lower(method));
SELECT qml.enqueue('Expression_Indexed') AS expr_job \gset
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM qml.jobs WHERE lower(method) = 'expression_indexed';
SELECT id = :expr_job AS found_by_expression FROM qml.jobs WHERE lower(method) = 'expression_indexed';
RESET enable_seqscan;
DROP INDEX qml.zz_lower_method;
SELECT qml.enqueue('after_indexes') > 0 AS enqueued_after_indexes;
DROP TABLE qt_seen;
DROP FUNCTION qt_seen_insert();
