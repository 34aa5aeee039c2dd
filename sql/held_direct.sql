--
-- held_direct: from 1.3 qml.fail, qml.fail_batch, qml.heartbeat and
-- qml.release write each held job with one heap update, as qml.complete
-- does (src/worker_held.c): one UPDATE record per job in qml.jobs' WAL and
-- no row lock (an UPDATE statement locks each row again for the row
-- trigger first), the row trigger not called. When qml.jobs has something
-- of an admin's own the UPDATE statements run instead: the same scenario
-- is run both ways, in two queues, and the results, rows, history and
-- counts must be the same.
--
CALL qt_reset();
CREATE EXTENSION pg_walinspect;
SET qml.durable_claims = on;
SET track_functions = 'all';

-- what each operation returned (job numbers: 1.. within its queue), and
-- its transaction's now()
CREATE TABLE held_out (q text, op text, job bigint, val text, due timestamptz,
					   at timestamptz DEFAULT now());
-- each operation's transaction, and the row trigger's calls so far (the
-- session reports its statistics when idle: they add up over the CALL)
CREATE TABLE held_xacts (seq serial, q text, op text, xid xid, stamp_calls bigint);

CREATE FUNCTION held_n(q text, id bigint) RETURNS bigint
	LANGUAGE sql STABLE
	RETURN id - (SELECT min(j.id) FROM qml.jobs j WHERE j.queue = q) + 1;
CREATE FUNCTION held_id(q text, n integer) RETURNS bigint
	LANGUAGE sql STABLE
	RETURN (SELECT min(j.id) FROM qml.jobs j WHERE j.queue = q) + n - 1;
CREATE FUNCTION held_ids(q text, lo integer, hi integer) RETURNS bigint[]
	LANGUAGE sql STABLE
	RETURN (SELECT array_agg(held_id(q, g) ORDER BY g) FROM generate_series(lo, hi) g);

CREATE PROCEDURE held_note(q text, op text)
	LANGUAGE sql
AS $$
	INSERT INTO held_xacts (q, op, xid, stamp_calls)
	SELECT q, op, pg_current_xact_id()::text::xid,
		   coalesce((SELECT sum(calls) FROM pg_stat_xact_user_functions
					  WHERE funcid = 'qml.jobs_stamp'::regproc), 0);
$$;

-- 24 jobs claimed by w1; the even ones may run twice, the odd ones once
CREATE PROCEDURE held_run(q text)
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
									'method', 'm' || g, 'queue', q, 'max_attempts', 1 + (g + 1) % 2))
								 FROM generate_series(1, 24) g));
	PERFORM count(*) FROM qml.fetch('w1', ARRAY[q], 24);
	CALL held_note(q, 'claim');
	COMMIT;

	-- fail of one job: it retries (max_attempts 2); a worker that does not
	-- hold a job, or a job that is not there, gets NULL
	INSERT INTO held_out SELECT q, 'fail 2', 2, qml.fail(held_id(q, 2), 'w1', 'boom')::text;
	INSERT INTO held_out SELECT q, 'fail 4 by w2', 4, coalesce(qml.fail(held_id(q, 4), 'w2', 'x')::text, 'NULL');
	INSERT INTO held_out SELECT q, 'fail missing', -1, coalesce(qml.fail(-1, 'w1', 'x')::text, 'NULL');
	CALL held_note(q, 'fail');
	COMMIT;

	-- fail_batch of ten: retry or not, attempts left or not, no error
	-- message, a job named twice, one not held
	INSERT INTO held_out (q, op, job, val, due)
	SELECT q, 'fail_batch', held_n(q, f.job_id), f.state, f.next_run_at
	  FROM qml.fail_batch(held_ids(q, 3, 12) || held_id(q, 3) || held_id(q, 2), 'w1',
						  ARRAY['e3', NULL, 'e5', 'e6', 'e7', 'e8', NULL, 'e10', 'e11', 'e12', 'e3', 'x'],
						  ARRAY[true, true, true, true, false, false, true, true, true, true, true, true]) f;
	CALL held_note(q, 'fail_batch');
	COMMIT;

	-- heartbeat of nine, one named twice, one failed above (not held)
	INSERT INTO held_out
	SELECT q, 'heartbeat', held_n(q, h), 'extended'
	  FROM qml.heartbeat(held_ids(q, 13, 21) || held_id(q, 13) || held_id(q, 2), 'w1',
						 interval '1 hour') h;
	CALL held_note(q, 'heartbeat');
	COMMIT;

	-- release of one; by a worker that does not hold it: false
	INSERT INTO held_out SELECT q, 'release 22 by w2', 22, qml.release(held_id(q, 22), 'w2')::text;
	INSERT INTO held_out SELECT q, 'release 22', 22, qml.release(held_id(q, 22), 'w1')::text;
	CALL held_note(q, 'release');
	COMMIT;

	-- the released job is claimable at once
	INSERT INTO held_out SELECT q, 'fetched', held_n(q, j.id), 'claimed' FROM qml.fetch('w3', ARRAY[q], 5) j;
	COMMIT;
END
$$;

-- the direct path
SELECT pg_current_wal_insert_lsn() AS before \gset
SELECT qml.table_is_original('qml.jobs') AS gate_open;
CALL held_run('direct');

-- the statement path: an admin's trigger on qml.jobs closes the gate
CREATE FUNCTION held_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER held_audit AFTER UPDATE ON qml.jobs FOR EACH ROW EXECUTE FUNCTION held_audit();
SELECT qml.table_is_original('qml.jobs') AS gate_open;
CALL held_run('statement');
DROP TRIGGER held_audit ON qml.jobs;
DROP FUNCTION held_audit();

-- qml.jobs' own WAL for each operation: one heap UPDATE per job written
-- (1 for fail, 10 for fail_batch, 9 for heartbeat, 1 for release), no LOCK,
-- no trigger call on the direct path; a LOCK and a trigger call per job on
-- the statement path
SELECT x.q, x.op, x.stamp_calls - lag(x.stamp_calls) OVER (PARTITION BY x.q ORDER BY x.seq) AS stamp_calls,
	   count(*) FILTER (WHERE r.record_type IN ('UPDATE', 'HOT_UPDATE')) AS updates,
	   count(*) FILTER (WHERE r.record_type = 'LOCK') AS locks,
	   count(*) FILTER (WHERE r.record_type NOT IN ('UPDATE', 'HOT_UPDATE', 'LOCK')) AS other
  FROM held_xacts x
  LEFT JOIN pg_get_wal_records_info_till_end_of_wal(:'before') r
	ON r.xid = x.xid AND r.resource_manager = 'Heap'
   AND r.block_ref ~ ('rel \d+/\d+/' || pg_relation_filenode('qml.jobs') || ' ')
 GROUP BY x.seq, x.q, x.op, x.stamp_calls
 ORDER BY x.q, x.seq;

-- what the functions returned, the same both ways: a retry's due time is
-- its row's run_at, after now(); an extended lease runs from now()
SELECT o.op, o.job,
	   CASE WHEN o.op = 'fail_batch' THEN o.val || ' ' ||
			CASE WHEN o.due IS NULL THEN 'NULL' ELSE (o.due = j.run_at AND j.run_at > o.at)::text END
			WHEN o.op = 'heartbeat' THEN (j.locked_until = o.at + interval '1 hour')::text
			ELSE o.val END AS val,
	   array_agg(o.q ORDER BY o.q) AS paths
  FROM held_out o LEFT JOIN qml.jobs j ON j.queue = o.q AND held_n(o.q, j.id) = o.job
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- the rows, their history and the counts, the same both ways
CREATE VIEW held_rows AS
SELECT j.queue AS q, held_n(j.queue, j.id) AS n, j.state, j.attempts, j.locked_by,
	   j.locked_until IS NOT NULL AS leased, j.last_error,
	   j.run_at > now() AS later, j.enqueued_at > j.started_at AS enqueued_again,
	   j.finished_at IS NOT NULL AS finished,
	   (SELECT string_agg(h.from_state || '>' || h.to_state || ' ' || coalesce(h.worker, '-') ||
						  ' ' || coalesce(h.error, '-'), ', ')
		  FROM qt_history(j.id) h) AS history
  FROM qml.jobs j;
SELECT n, state, attempts, locked_by, leased, last_error, later, enqueued_again,
	   finished, history
  FROM held_rows WHERE q = 'direct' ORDER BY n;
SELECT count(*) AS rows_that_differ
  FROM ((SELECT n, state, attempts, locked_by, leased, last_error, later, enqueued_again,
				finished, history FROM held_rows WHERE q = 'direct'
		 EXCEPT
		 SELECT n, state, attempts, locked_by, leased, last_error, later, enqueued_again,
				finished, history FROM held_rows WHERE q = 'statement')
		UNION ALL
		(SELECT n, state, attempts, locked_by, leased, last_error, later, enqueued_again,
				finished, history FROM held_rows WHERE q = 'statement'
		 EXCEPT
		 SELECT n, state, attempts, locked_by, leased, last_error, later, enqueued_again,
				finished, history FROM held_rows WHERE q = 'direct')) d;
SELECT queue, scheduled, enqueued, processing, awaiting_retry, succeeded, failed, deleted
  FROM qml.stats() WHERE queue IN ('direct', 'statement') ORDER BY queue;
-- the counts the statistics keep are those of a count of the table
SELECT queue, state, count(*) FROM qml.jobs GROUP BY 1, 2 ORDER BY 1, 2;

--
-- The checks and results of version 1.2's PL/pgSQL functions, copied here
-- as held12.*: the C functions give the same SQLSTATE, message and hint,
-- in the same order, for every case; in a read-only transaction too.
--
CREATE SCHEMA held12;
CREATE FUNCTION held12.fail_batch(job_ids bigint[], worker text, errors text[],
							   retry boolean[] DEFAULT NULL)
	RETURNS TABLE (job_id bigint, state qml.job_state, next_run_at timestamptz)
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('worker', worker, 200);
	IF job_ids IS NULL THEN
		RETURN;					-- no jobs, as for complete_batch
	END IF;
	IF errors IS NULL THEN
		RAISE EXCEPTION 'errors must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass one error message (or NULL element) per job.';
	END IF;
	IF coalesce(cardinality(errors), 0) <> coalesce(cardinality(job_ids), 0)
	   OR coalesce(cardinality(retry), 0) NOT IN (0, coalesce(cardinality(job_ids), 0)) THEN
		RAISE EXCEPTION '% has % elements but job_ids has %',
			CASE WHEN coalesce(cardinality(errors), 0) <> coalesce(cardinality(job_ids), 0)
				 THEN 'errors' ELSE 'retry' END,
			CASE WHEN coalesce(cardinality(errors), 0) <> coalesce(cardinality(job_ids), 0)
				 THEN coalesce(cardinality(errors), 0) ELSE coalesce(cardinality(retry), 0) END,
			coalesce(cardinality(job_ids), 0)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give errors (and retry, if given) one element per job id.';
	END IF;
	IF array_position(retry, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'retry must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass true to retry while attempts remain, false to fail for good.';
	END IF;
	RETURN QUERY
	UPDATE qml.jobs j
	   SET state = CASE WHEN f.again AND j.attempts < j.max_attempts
						THEN 'awaiting_retry' ELSE 'failed' END::qml.job_state,
		   run_at = CASE WHEN f.again AND j.attempts < j.max_attempts
						 THEN now() + qml.retry_delay(j.attempts, j.backoff_base, j.backoff_cap)
						 ELSE j.run_at END,
		   last_error = coalesce(f.error, 'failed without an error message')
	  FROM unnest(job_ids, errors, coalesce(retry, array_fill(true, ARRAY[cardinality(job_ids)])))
			 AS f(id, error, again)
	 WHERE j.id = f.id AND j.state = 'processing' AND j.locked_by = worker
	   AND qml.may_act(j.locked_role)
	RETURNING j.id, j.state,
			  CASE WHEN j.state = 'awaiting_retry' THEN j.run_at END;
END
$$;

CREATE FUNCTION held12.fail(job_id bigint, worker text, error text,
						 retry boolean DEFAULT true)
	RETURNS qml.job_state
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	RETURN (SELECT f.state
			  FROM held12.fail_batch(ARRAY[job_id], worker, ARRAY[error], ARRAY[retry]) f);

CREATE FUNCTION held12.heartbeat(job_ids bigint[], worker text,
							  lease interval DEFAULT '5 minutes')
	RETURNS SETOF bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('worker', worker, 200);
	PERFORM qml.check_duration('lease', lease, false);
	RETURN QUERY
	UPDATE qml.jobs j SET locked_until = now() + lease
	 WHERE j.id = ANY (job_ids) AND j.state = 'processing' AND j.locked_by = worker
	   AND qml.may_act(j.locked_role)
	RETURNING j.id;
END
$$;

CREATE FUNCTION held12.release(job_id bigint, worker text) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('worker', worker, 200);
	UPDATE qml.jobs j SET state = 'enqueued', attempts = greatest(j.attempts - 1, 0)
	 WHERE j.id = job_id AND j.state = 'processing' AND j.locked_by = worker
	   AND qml.may_act(j.locked_role);
	RETURN FOUND;
END
$$;

CREATE FUNCTION held_read_only(stmt text) RETURNS text
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM set_config('transaction_read_only', 'on', true);
	RETURN expect_error(stmt, true);
END
$$;

CREATE TABLE held_cases (n serial, stmt text);
INSERT INTO held_cases (stmt) VALUES
	($$SELECT * FROM %s.fail_batch(NULL, NULL, NULL)$$),
	($$SELECT * FROM %s.fail_batch(NULL, '', '{}')$$),
	($$SELECT * FROM %s.fail_batch(NULL, repeat('w', 201), '{}')$$),
	($$SELECT * FROM %s.fail_batch(NULL, 'w', NULL)$$),
	($$SELECT * FROM %s.fail_batch('{1}', 'w', NULL)$$),
	($$SELECT * FROM %s.fail_batch('{1}', 'w', '{a,b}', '{t,f,t}')$$),
	($$SELECT * FROM %s.fail_batch('{1}', 'w', '{a}', '{t,f}')$$),
	($$SELECT * FROM %s.fail_batch('{}', 'w', '{a}')$$),
	($$SELECT * FROM %s.fail_batch('{1}', 'w', '{a}', '{NULL}')$$),
	($$SELECT * FROM %s.fail_batch('{1,2}', 'w', '{a,b}', '{}')$$),
	($$SELECT * FROM %s.fail_batch('{{1,2}}', 'w', '{{a,b}}', '{{t,f}}')$$),
	($$SELECT * FROM %s.fail_batch('{{1,2}}', 'w', '{a,b}')$$),
	($$SELECT * FROM %s.fail_batch('{1,NULL}', 'w', '{a,NULL}', '{t,NULL}')$$),
	($$SELECT %s.fail(1, NULL, 'e')$$),
	($$SELECT %s.fail(NULL, NULL, 'e', NULL)$$),
	($$SELECT %s.fail(NULL, 'w', 'e', NULL)$$),
	($$SELECT %s.fail(1, 'w', NULL, NULL)$$),
	($$SELECT %s.fail(NULL, 'w', NULL)$$),
	($$SELECT %s.heartbeat(NULL, NULL, NULL)$$),
	($$SELECT %s.heartbeat('{1}', 'w', NULL)$$),
	($$SELECT %s.heartbeat('{1}', 'w', '-1 s')$$),
	($$SELECT %s.heartbeat('{1}', 'w', '0')$$),
	($$SELECT %s.heartbeat('{1}', 'w', '1 day -1 s')$$),
	($$SELECT %s.heartbeat('{1}', 'w', '101 years')$$),
	($$SELECT %s.heartbeat(NULL, 'w')$$),
	($$SELECT %s.release(1, NULL)$$),
	($$SELECT %s.release(NULL, '')$$),
	($$SELECT %s.release(NULL, 'w')$$);
SELECT c.n, expect_error(format(c.stmt, 'qml'), true) AS qml,
	   expect_error(format(c.stmt, 'qml'), true) =
	   expect_error(format(c.stmt, 'held12'), true) AS as_in_1_2
  FROM held_cases c ORDER BY c.n;
-- in a read-only transaction: refused as the UPDATE was, the cases that
-- write nothing before their UPDATE too
SELECT c.stmt, held_read_only(format(c.stmt, 'qml')) AS qml,
	   held_read_only(format(c.stmt, 'qml')) = held_read_only(format(c.stmt, 'held12')) AS as_in_1_2
  FROM (VALUES ($$SELECT %s.fail(1, 'w', 'e')$$), ($$SELECT %s.fail(NULL, 'w', 'e')$$),
			   ($$SELECT * FROM %s.fail_batch('{1}', 'w', '{e}')$$),
			   ($$SELECT * FROM %s.fail_batch(NULL, 'w', NULL)$$),
			   ($$SELECT %s.heartbeat(NULL, 'w')$$), ($$SELECT %s.heartbeat('{1}', 'w')$$),
			   ($$SELECT %s.release(NULL, 'w')$$), ($$SELECT %s.release(1, 'w')$$)) c(stmt)
 ORDER BY 1;
DROP TABLE held_cases;
DROP FUNCTION held_read_only(text);
DROP SCHEMA held12 CASCADE;

DROP VIEW held_rows;
DROP PROCEDURE held_run(text), held_note(text, text);
DROP FUNCTION held_n(text, bigint), held_id(text, integer), held_ids(text, integer, integer);
DROP TABLE held_out, held_xacts;
RESET track_functions;
DROP EXTENSION pg_walinspect;
