--
-- held_edges: the corners of the writes of held jobs (complete,
-- complete_batch, fail, fail_batch, heartbeat, release), each run on the
-- direct path (src/worker_write.c) and again on the statements
-- (src/worker_held.c, an admin's trigger on qml.jobs), in a queue of its
-- own: what each call returned, the rows, their history and the counts
-- must be the same both ways.
--
CALL qt_reset();

-- what a call returned: its value, or its error
CREATE TABLE edge_out (q text, step text, val text);
CREATE FUNCTION edge_n(q text, id bigint) RETURNS bigint
	LANGUAGE sql STABLE
	RETURN id - (SELECT min(j.id) FROM qml.jobs j WHERE j.queue = q) + 1;
CREATE FUNCTION edge_id(q text, n integer) RETURNS bigint
	LANGUAGE sql STABLE
	RETURN (SELECT min(j.id) FROM qml.jobs j WHERE j.queue = q) + n - 1;
-- runs `stmt` (a query of one text value; %1$s is the queue, %2$s, %3$s
-- ... job 1, 2 ... of it) and notes what it returned, or its error
CREATE PROCEDURE edge(q text, step text, stmt text)
	LANGUAGE plpgsql
AS $$
DECLARE
	v text;
	ids text[] := ARRAY(SELECT edge_id(q, g)::text FROM generate_series(1, 20) g);
BEGIN
	BEGIN
		EXECUTE format(stmt, VARIADIC q || ids) INTO v;
	EXCEPTION WHEN OTHERS THEN
		v := SQLSTATE || ': ' || SQLERRM;
	END;
	INSERT INTO edge_out VALUES (q, step, v);
END
$$;

CREATE TEMP TABLE big AS
SELECT repeat(md5('e'), 100000) AS t, jsonb_build_object('r', repeat(md5('r'), 100000)) AS j;

CREATE PROCEDURE edge_run(q text)
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm' || g, 'queue', q,
																	'max_attempts', 2))
								 FROM generate_series(1, 20) g));
	PERFORM count(*) FROM qml.fetch('w1', ARRAY[q], 20, interval '1 hour');
	COMMIT;

	-- results[i] goes to job_ids[i], whatever the arrays' bounds and shape
	CALL edge(q, 'results, ids from 0', $s$
		SELECT string_agg(edge_n('%1$s', c)::text, ',') FROM qml.complete_batch('[0:1]={%2$s,%3$s}', 'w1',
			'[5:6]={"\"r1\"","\"r2\""}') c$s$);
	CALL edge(q, 'results, ids of two dimensions', $s$
		SELECT string_agg(edge_n('%1$s', c)::text, ',') FROM qml.complete_batch('{{%4$s},{%5$s}}', 'w1',
			ARRAY['"r3"', '"r4"']::jsonb[]) c$s$);
	-- a job named twice gets the result of its first place
	CALL edge(q, 'results, a job twice', $s$
		SELECT string_agg(edge_n('%1$s', c)::text, ',') FROM qml.complete_batch(ARRAY[%6$s, %6$s], 'w1',
			ARRAY['"first"', '"second"']::jsonb[]) c$s$);
	-- no result, a NULL result, JSON's null
	CALL edge(q, 'results, NULL and null', $s$
		SELECT string_agg(edge_n('%1$s', c)::text, ',') FROM qml.complete_batch(ARRAY[%7$s, %8$s], 'w1',
			ARRAY[NULL, 'null']::jsonb[]) c$s$);
	COMMIT;

	-- jobs already finished, of another worker, missing, NULL: nothing
	CALL edge(q, 'not held: complete_batch', $s$
		SELECT count(*)::text FROM qml.complete_batch(ARRAY[%2$s, NULL, -1, %9$s], 'w2') c$s$);
	CALL edge(q, 'not held: fail_batch', $s$
		SELECT count(*)::text FROM qml.fail_batch(ARRAY[%2$s, NULL, -1, %9$s], 'w2', '{a,b,c,d}') c$s$);
	CALL edge(q, 'not held: heartbeat', $s$
		SELECT count(*)::text FROM qml.heartbeat(ARRAY[%2$s, NULL, -1, %9$s], 'w2') c$s$);
	CALL edge(q, 'not held: release', $s$ SELECT qml.release(%9$s, 'w2')::text $s$);
	CALL edge(q, 'not held: complete', $s$ SELECT qml.complete(%2$s, 'w1')::text $s$);
	COMMIT;

	-- a job the caller changed earlier in its transaction: the change is
	-- seen (one attempt allowed now: failed, not retried)
	UPDATE qml.jobs SET max_attempts = 1, priority = 7 WHERE id = edge_id(q, 9);
	CALL edge(q, 'changed before', $s$ SELECT qml.fail(%10$s, 'w1', 'e9')::text $s$);
	COMMIT;

	-- a completion undone by its subtransaction: the job is still held
	BEGIN
		PERFORM qml.complete(edge_id(q, 10), 'w1');
		RAISE EXCEPTION 'undo';
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	CALL edge(q, 'after a rolled back savepoint', $s$ SELECT qml.release(%11$s, 'w1')::text $s$);
	COMMIT;
	-- the released job, fetched and completed in one statement
	CALL edge(q, 'fetch and complete at once', $s$
		SELECT string_agg(edge_n('%1$s', f.id) || ' ' || qml.complete(f.id, 'w3'), ',')
		  FROM qml.fetch('w3', ARRAY['%1$s']) f$s$);
	COMMIT;

	-- a completion whose transaction rolls back
	PERFORM qml.complete(edge_id(q, 11), 'w1');
	ROLLBACK;
	CALL edge(q, 'after a rolled back transaction', $s$
		SELECT string_agg(f.state::text, ',') FROM qml.fail_batch(ARRAY[%12$s], 'w1', '{e11}', '{t}') f$s$);
	COMMIT;

	-- values TOASTed in another table, and huge ones
	CALL edge(q, 'toast: fail', $s$ SELECT qml.fail(%13$s, 'w1', (SELECT t FROM big))::text $s$);
	CALL edge(q, 'toast: complete', $s$ SELECT qml.complete(%14$s, 'w1', (SELECT j FROM big))::text $s$);
	CALL edge(q, 'toast: complete_batch', $s$
		SELECT string_agg(edge_n('%1$s', c)::text, ',') FROM qml.complete_batch(ARRAY[%15$s], 'w1',
			ARRAY[(SELECT j FROM big)]) c$s$);
	CALL edge(q, 'toast: fail_batch', $s$
		SELECT string_agg(f.state::text, ',') FROM qml.fail_batch(ARRAY[%16$s], 'w1',
			ARRAY[(SELECT t FROM big) || 'x'], '{f}') f$s$);
	COMMIT;

	-- in a session that replays replicated rows (qml's triggers off for
	-- its own UPDATEs): the API's writes stamp and record all the same
	PERFORM set_config('session_replication_role', 'replica', true);
	CALL edge(q, 'replica: fail', $s$ SELECT qml.fail(%21$s, 'w1', 'e20', false)::text $s$);
	COMMIT;
END
$$;

-- the direct path
SELECT qml.table_is_original('qml.jobs') AS gate_open;
CALL edge_run('direct');
-- two-phase commit: a completion and a release committed, a failure
-- rolled back
BEGIN;
SELECT qml.complete(edge_id('direct', 17), 'w1'), qml.release(edge_id('direct', 18), 'w1');
PREPARE TRANSACTION 'edge_direct_1';
BEGIN;
SELECT qml.fail(edge_id('direct', 19), 'w1', 'e19');
PREPARE TRANSACTION 'edge_direct_2';
COMMIT PREPARED 'edge_direct_1';
ROLLBACK PREPARED 'edge_direct_2';

-- the statements: an admin's trigger on qml.jobs closes the gate
CREATE FUNCTION edge_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER edge_audit BEFORE UPDATE ON qml.jobs FOR EACH ROW EXECUTE FUNCTION edge_audit();
SELECT qml.table_is_original('qml.jobs') AS gate_open;
CALL edge_run('statement');
BEGIN;
SELECT qml.complete(edge_id('statement', 17), 'w1'), qml.release(edge_id('statement', 18), 'w1');
PREPARE TRANSACTION 'edge_statement_1';
BEGIN;
SELECT qml.fail(edge_id('statement', 19), 'w1', 'e19');
PREPARE TRANSACTION 'edge_statement_2';
COMMIT PREPARED 'edge_statement_1';
ROLLBACK PREPARED 'edge_statement_2';
DROP TRIGGER edge_audit ON qml.jobs;
DROP FUNCTION edge_audit();

-- what the calls returned, and where the paths differ
SELECT step, val, array_agg(q ORDER BY q) AS paths
  FROM edge_out GROUP BY step, val ORDER BY min(ctid), paths;

-- the rows and their history, the same both ways
CREATE VIEW edge_rows AS
SELECT j.queue AS q, edge_n(j.queue, j.id) AS n, j.state, j.attempts, j.max_attempts,
	   j.priority, j.locked_by, j.locked_until IS NOT NULL AS leased,
	   left(j.last_error, 12) AS last_error, md5(j.last_error) AS error_md5,
	   left(j.result::text, 12) AS result, md5(j.result::text) AS result_md5,
	   j.finished_at IS NOT NULL AS finished, j.run_at > now() AS later,
	   (SELECT string_agg(h.from_state || '>' || h.to_state || ' ' || coalesce(h.worker, '-') ||
						  ' ' || coalesce(left(h.error, 12), '-'), ', ')
		  FROM qt_history(j.id) h) AS history
  FROM qml.jobs j;
SELECT n, state, attempts, max_attempts, priority, locked_by, leased, last_error, result,
	   finished, later, history
  FROM edge_rows WHERE q = 'direct' ORDER BY n;
SELECT count(*) AS rows_that_differ
  FROM ((SELECT n, state, attempts, max_attempts, priority, locked_by, leased, error_md5,
				result_md5, finished, later, history FROM edge_rows WHERE q = 'direct'
		 EXCEPT
		 SELECT n, state, attempts, max_attempts, priority, locked_by, leased, error_md5,
				result_md5, finished, later, history FROM edge_rows WHERE q = 'statement')
		UNION ALL
		(SELECT n, state, attempts, max_attempts, priority, locked_by, leased, error_md5,
				result_md5, finished, later, history FROM edge_rows WHERE q = 'statement'
		 EXCEPT
		 SELECT n, state, attempts, max_attempts, priority, locked_by, leased, error_md5,
				result_md5, finished, later, history FROM edge_rows WHERE q = 'direct')) d;
-- the counts kept are a count of the table
SELECT queue, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted
  FROM qml.stats() WHERE queue IN ('direct', 'statement') ORDER BY queue;
SELECT queue, state, count(*) FROM qml.jobs GROUP BY 1, 2 ORDER BY 1, 2;

DROP VIEW edge_rows;
DROP PROCEDURE edge_run(text), edge(text, text, text);
DROP FUNCTION edge_n(text, bigint), edge_id(text, integer);
DROP TABLE edge_out, big;
