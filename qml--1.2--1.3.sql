/*
 * qml--1.2--1.3.sql
 *	  Updates a database's qml from version 1.2 to 1.3 (ALTER EXTENSION qml
 *	  UPDATE, or `qml migrate`). It leaves the catalog CREATE EXTENSION qml
 *	  makes at 1.3 (test/upgrade/catalog.sh compares the two). The
 *	  definitions below are qml--1.3.sql's, with their comments; what is
 *	  only here says why.
 *
 * 1.3 makes qml.fail, qml.fail_batch, qml.heartbeat and qml.release C
 * functions that write each held job's row directly, as qml.complete and
 * qml.complete_batch already do (src/worker_held.c): same signatures,
 * results and errors. CREATE OR REPLACE keeps each function's owner,
 * grants and oid, so the roles granted them by qml.grant_worker keep
 * them, and nothing else changes: no table is touched, and the update
 * takes no lock on qml.jobs. A session that called the PL/pgSQL
 * functions before calls the C ones at its next call. Run it with the
 * 1.3 library installed: the library serves a database on 1.0, 1.1, 1.2
 * or 1.3 (src/catalog.c).
 *
 * 1.3 also refuses bad arguments that 1.2 let through to a wrong answer
 * (docs/errors.md): a NULL job_id to qml.delete and qml.requeue (22004,
 * not P0002), a NULL, empty or over-long name to qml.remove_recurring and
 * qml.run_recurring (22004, 22023, 22001, not false or P0002), and a
 * qml.throughput bucket_width with months or years (22023 at once, not
 * 0A000 from date_bin once a finished job is in range). Function bodies
 * only, replaced as above.
 */

\echo Use "ALTER EXTENSION qml UPDATE TO '1.3'" to load this file. \quit

-- qml.fail was a SQL function over qml.fail_batch; as C it depends on it no more.
/*
 * qml.fail_batch: qml.fail for many jobs in one statement (errors[i] and,
 * when given, retry[i] for job_ids[i]; retry NULL: retry every one).
 * Returns a row for each job this worker still held: its new state and,
 * when it awaits a retry, when that is due (a runtime logs it). NULL
 * job_ids: no rows. 22004 for NULL errors, a NULL in retry or a NULL
 * worker; 22023 when the arrays differ in length. qml.fail is this for one
 * job. From 1.3 on C, as complete_batch: each job's row is written
 * directly (src/worker_held.c).
 */
CREATE OR REPLACE FUNCTION qml.fail_batch(job_ids bigint[], worker text, errors text[],
							   retry boolean[] DEFAULT NULL)
	RETURNS TABLE (job_id bigint, state qml.job_state, next_run_at timestamptz)
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fail_batch';

/*
 * qml.fail: processing -> awaiting_retry (with backoff) while attempts
 * remain and retry is true, else -> failed. Returns the new state, or NULL
 * when the worker no longer holds the job.
 */
CREATE OR REPLACE FUNCTION qml.fail(job_id bigint, worker text, error text,
						 retry boolean DEFAULT true)
	RETURNS qml.job_state
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fail';

/*
 * qml.heartbeat: extends the leases this worker still holds; returns them.
 */
CREATE OR REPLACE FUNCTION qml.heartbeat(job_ids bigint[], worker text,
							  lease interval DEFAULT '5 minutes')
	RETURNS SETOF bigint
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_heartbeat';

/*
 * qml.release: gives a held job back unrun (e.g. at shutdown); the attempt
 * it was fetched with is not counted.
 */
CREATE OR REPLACE FUNCTION qml.release(job_id bigint, worker text) RETURNS boolean
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_release';

-- Raises P0002 when no job has this id, 22004 when it is NULL (no job
-- has it, but that is the caller's mistake, not a job pruned).
CREATE OR REPLACE FUNCTION qml.check_job_exists(job_id bigint) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF job_id IS NULL THEN
		RAISE EXCEPTION 'job_id must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass the id qml.enqueue returned.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM qml.jobs j WHERE j.id = job_id) THEN
		RAISE EXCEPTION 'job % does not exist', job_id
			USING ERRCODE = 'no_data_found',
				  HINT = 'It may have been pruned after qml.retention.';
	END IF;
END
$$;

/*
 * qml.throughput: succeeded and failed jobs per time bucket over the last
 * `since`, per queue (or for one queue). Where the scheduler serves the
 * database it reads the per-minute roll-up (qml.throughput_minutes, one
 * minute resolution, up to a second behind); elsewhere it reads qml.jobs.
 * 22004 for a NULL bucket_width or since; 22023 for one that is not a
 * positive duration of at most 100 years, or a bucket_width with months
 * or years (date_bin cannot bin by them); 54000 over 100,000 buckets.
 */
CREATE OR REPLACE FUNCTION qml.throughput(bucket_width interval DEFAULT '1 minute',
							   since interval DEFAULT '1 hour',
							   for_queue text DEFAULT NULL)
	RETURNS TABLE (bucket timestamptz, queue text, succeeded bigint, failed bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_duration('bucket_width', bucket_width, false);
	-- date_bin bins by a fixed length: refused here, whatever the data,
	-- rather than by date_bin (0A000) once a finished job is in range
	IF extract(year FROM bucket_width) <> 0 OR extract(month FROM bucket_width) <> 0 THEN
		RAISE EXCEPTION 'bucket_width must not have months or years, not %', bucket_width
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A month or a year has no fixed length to bin by.',
				  HINT = 'Use days, such as ''30 days''.';
	END IF;
	PERFORM qml.check_duration('since', since, false);
	IF extract(epoch FROM since) / extract(epoch FROM bucket_width) > 100000 THEN
		RAISE EXCEPTION 'too many buckets: % / % is over 100000', since, bucket_width
			USING ERRCODE = 'program_limit_exceeded',
				  HINT = 'Use a larger bucket or a shorter since.';
	END IF;
	-- the scheduler's per-minute roll-up when there is one (see stats.c)
	IF qml.stats_live() THEN
		RETURN QUERY
		SELECT date_bin(bucket_width, t.minute, timestamptz '2000-01-01') AS b,
			   t.queue, sum(t.succeeded)::bigint, sum(t.failed)::bigint
		  FROM qml.throughput_minutes t
		 WHERE t.minute > now() - since - interval '1 minute'
		   AND (for_queue IS NULL OR t.queue = for_queue)
		 GROUP BY 1, 2
		HAVING sum(t.succeeded) + sum(t.failed) > 0
		 ORDER BY 1, 2;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT date_bin(bucket_width, j.finished_at, timestamptz '2000-01-01') AS b,
		   j.queue,
		   count(*) FILTER (WHERE j.state = 'succeeded'),
		   count(*) FILTER (WHERE j.state = 'failed')
	  FROM qml.jobs j
	 WHERE j.state IN ('succeeded', 'failed')
	   AND j.finished_at >= now() - since
	   AND (for_queue IS NULL OR j.queue = for_queue)
	 GROUP BY 1, 2
	 ORDER BY 1, 2;
END
$$;

/*
 * qml.remove_recurring: stops a recurring job (jobs it already enqueued
 * stay). False when there is no recurring job of that name; 22004,
 * 22023, 22001 for a NULL, empty or over-long (200) name, as add_recurring.
 */
CREATE OR REPLACE FUNCTION qml.remove_recurring(name text) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('name', remove_recurring.name, 200);
	DELETE FROM qml.recurring c WHERE c.name = remove_recurring.name;
	RETURN FOUND;
END
$$;

/*
 * qml.run_recurring: enqueues a recurring job's job once now, outside its
 * schedule (next_run_at and last_run_at do not move: they describe the
 * schedule). Returns the new job's id; P0002 when there is no recurring
 * job of that name; 22004, 22023, 22001 for a NULL, empty or over-long
 * (200) name, as add_recurring.
 */
CREATE OR REPLACE FUNCTION qml.run_recurring(name text) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r qml.recurring;
BEGIN
	PERFORM qml.check_name('name', run_recurring.name, 200);
	SELECT * INTO r FROM qml.recurring c WHERE c.name = run_recurring.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'recurring job "%" does not exist', run_recurring.name
			USING ERRCODE = 'no_data_found',
				  HINT = 'qml.recurring lists the recurring jobs.';
	END IF;
	RETURN qml.enqueue(method => r.method, arguments => r.arguments, queue => r.queue,
					   priority => r.priority, max_attempts => r.max_attempts);
END
$$;

-- The admin functions that write qml.jobs and qml.queues by plain
-- statements run as session_replication_role = origin (qml--1.3.sql says
-- why); ALTER keeps their oids and grants.
ALTER FUNCTION qml.delete(bigint) SET session_replication_role = origin;
ALTER FUNCTION qml.requeue(bigint) SET session_replication_role = origin;
ALTER FUNCTION qml.configure_queue(text, boolean, interval) SET session_replication_role = origin;
ALTER FUNCTION qml.pause_queue(text) SET session_replication_role = origin;
ALTER FUNCTION qml.resume_queue(text) SET session_replication_role = origin;
