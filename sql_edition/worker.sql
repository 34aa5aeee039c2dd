/*
 * sql_edition/worker.sql
 *	  The worker's hot path (src/worker_api.c) in PL/pgSQL: qml.fetch,
 *	  qml.complete and qml.complete_batch, one statement each, with the
 *	  same checks and messages.
 *
 * What the C edition does beyond the statements is absent here: no queue
 * head (each claim walks jobs_fetch_idx from the start of the queue), no
 * session leases (session_lease is accepted and ignored: time leases
 * only), and a fetch with `wait` polls every 50 ms instead of sleeping
 * until a commit wakes it. A fetch that comes back empty notes its queues
 * in qml.waiting, so that the next enqueue wakes the LISTENing workers.
 */

CREATE FUNCTION qml.fetch(worker text, queues text[] DEFAULT '{default}',
						  batch integer DEFAULT 1,
						  lease interval DEFAULT '5 minutes',
						  wait interval DEFAULT NULL,
						  session_lease boolean DEFAULT false)
	RETURNS SETOF qml.jobs
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	deadline timestamptz;
	q text;
	wanted integer;
	got integer;
	lease_start timestamptz := now();
	round integer;
	claimer oid := qml.lease_role();
BEGIN
	IF wait IS NOT NULL THEN
		PERFORM qml.check_duration('wait', wait, true);
		-- waits are cut to 366 days
		deadline := clock_timestamp() + least(wait, interval '366 days');
	END IF;
	PERFORM qml.check_name('worker', worker, 200);
	IF batch IS NULL OR queues IS NULL THEN
		RAISE EXCEPTION '% must not be null', CASE WHEN queues IS NULL THEN 'queues' ELSE 'batch' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF batch < 1 OR batch > 1000 THEN
		RAISE EXCEPTION 'batch must be between 1 and 1000, not %', batch
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Fetch more jobs in several calls.';
	END IF;
	PERFORM qml.check_duration('lease', lease, false);
	IF array_ndims(queues) IS DISTINCT FROM 1 THEN
		RAISE EXCEPTION 'queues must be a non-empty array of queue names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOREACH q IN ARRAY queues LOOP
		IF q IS NULL THEN
			RAISE EXCEPTION 'queues must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
		END IF;
		PERFORM qml.check_name('queue', q, 128);
	END LOOP;
	IF session_lease IS NULL THEN
		RAISE EXCEPTION 'session_lease must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass true to have the jobs rescued when this session ends, false to rely on the lease alone.';
	END IF;
	LOOP
		wanted := batch;
		FOREACH q IN ARRAY queues LOOP
			EXIT WHEN wanted = 0;
			FOR round IN 1..2 LOOP
				-- SKIP LOCKED: a row another session holds is passed over
				RETURN QUERY
				WITH claimed AS (
					UPDATE qml.jobs j
					   SET state = 'processing', attempts = j.attempts + 1,
						   started_at = clock_timestamp(), locked_by = worker,
						   locked_until = lease_start + lease, locked_role = claimer
					 WHERE j.ctid = ANY (ARRAY(
							SELECT c.ctid FROM qml.jobs c
							 WHERE c.state = 'enqueued' AND c.queue = q
							   AND NOT EXISTS (SELECT 1 FROM qml.queues p
												WHERE p.name = q AND p.paused)
							 ORDER BY c.priority DESC, c.run_at, c.id
							 LIMIT wanted FOR UPDATE SKIP LOCKED))
					RETURNING j.*)
				SELECT * FROM claimed c ORDER BY c.priority DESC, c.run_at, c.id;
				GET DIAGNOSTICS got = ROW_COUNT;
				wanted := wanted - got;
				-- then due jobs no maintenance pass promoted yet, as many as
				-- the claim takes
				EXIT WHEN wanted = 0 OR round = 2 OR qml.promote_due(q, wanted) = 0;
			END LOOP;
		END LOOP;
		EXIT WHEN wanted < batch;
		IF deadline IS NULL OR clock_timestamp() >= deadline THEN
			-- empty: the next enqueue on these queues notifies (qml.wake_waiting)
			INSERT INTO qml.waiting (queue) SELECT DISTINCT unnest(queues)
			ON CONFLICT DO NOTHING;
			EXIT;
		END IF;
		IF current_setting('transaction_isolation') IN ('repeatable read', 'serializable') THEN
			RAISE EXCEPTION 'fetch cannot wait in a REPEATABLE READ or SERIALIZABLE transaction'
				USING ERRCODE = 'feature_not_supported',
					  DETAIL = 'The transaction''s snapshot would never show the new jobs.',
					  HINT = 'Wait in a READ COMMITTED transaction, or fetch without wait.';
		END IF;
		PERFORM pg_sleep(least(0.05, extract(epoch FROM deadline - clock_timestamp())));
		-- the lease runs from the claim, not from the transaction's start
		lease_start := clock_timestamp();
	END LOOP;
END
$$;

CREATE FUNCTION qml.complete(job_id bigint, worker text, result jsonb DEFAULT NULL)
	RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('worker', worker, 200);
	IF job_id IS NULL THEN
		RETURN false;
	END IF;
	RETURN EXISTS (SELECT FROM qml.finish_held(ARRAY[job_id], worker, ARRAY[result],
											   'qml.complete()'));
END
$$;

CREATE FUNCTION qml.complete_batch(job_ids bigint[], worker text,
								   results jsonb[] DEFAULT NULL)
	RETURNS SETOF bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := coalesce(cardinality(job_ids), 0);
BEGIN
	PERFORM qml.check_name('worker', worker, 200);
	IF job_ids IS NULL THEN
		RETURN;
	END IF;
	IF n > 50000000 THEN
		RAISE EXCEPTION 'job_ids has % elements, more than %', n, 50000000
			USING ERRCODE = 'program_limit_exceeded', HINT = 'Split it over several calls.';
	END IF;
	IF results IS NOT NULL AND cardinality(results) <> n THEN
		RAISE EXCEPTION 'results has % elements but job_ids has %', cardinality(results), n
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass one result per job, or none at all.';
	END IF;
	IF results IS NOT NULL THEN
		-- finish_held pairs them by subscript: results[i] for job_ids[i]
		-- by ordinal, whatever the caller's bounds and shape
		job_ids := ARRAY(SELECT unnest(job_ids));
		results := ARRAY(SELECT unnest(results));
	END IF;
	RETURN QUERY SELECT * FROM qml.finish_held(job_ids, worker, results, 'qml.complete_batch()');
END
$$;

-- @after-schema

/*
 * Internal to the SQL edition: processing -> succeeded for the jobs of
 * job_ids that `worker` holds and the session may act on (qml.may_act),
 * with results[i] for job_ids[i] when results is given; returns their ids.
 * The caller's role is looked up once: a call per row was most of the cost.
 * `caller` names the API function in the read-only error.
 */
CREATE FUNCTION qml.finish_held(job_ids bigint[], worker text, results jsonb[],
								caller text)
	RETURNS SETOF bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	claimer oid := qml.lease_role();
BEGIN
	PERFORM qml.check_writable(caller);
	RETURN QUERY
	UPDATE qml.jobs j
	   SET state = 'succeeded', finished_at = clock_timestamp(), locked_by = NULL,
		   locked_until = NULL, lease_pid = NULL, lease_session = NULL, locked_role = NULL,
		   result = CASE WHEN results IS NOT NULL
						 THEN results[array_position(job_ids, j.id) - 1 + array_lower(results, 1)] END
	 WHERE j.id = ANY (job_ids) AND j.state = 'processing' AND j.locked_by = worker
	   AND (j.locked_role = claimer OR qml.may_act(j.locked_role))
	RETURNING j.id;
END
$$;

/*
 * Internal to the SQL edition: up to `wanted` due scheduled and retrying
 * jobs of one queue become enqueued, earliest due first, so that a claim
 * need not wait for the next maintenance pass. Returns how many.
 */
CREATE FUNCTION qml.promote_due(queue text, wanted integer) RETURNS integer
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	UPDATE qml.jobs j SET state = 'enqueued'
	 WHERE j.ctid = ANY (ARRAY(
			SELECT c.ctid FROM qml.jobs c
			 WHERE c.state IN ('scheduled', 'awaiting_retry')
			   AND c.queue = promote_due.queue AND c.run_at <= clock_timestamp()
			   AND NOT EXISTS (SELECT 1 FROM qml.queues p
								WHERE p.name = promote_due.queue AND p.paused)
			 ORDER BY c.run_at LIMIT wanted FOR UPDATE SKIP LOCKED));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
