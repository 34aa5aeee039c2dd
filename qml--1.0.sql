/*
 * qml--1.0.sql
 *	  The qml schema: job store, SQL job API, history and NOTIFY triggers,
 *	  and privileges. See DESIGN.md, "The SQL contract".
 *
 * Conventions: every name is qualified with qml. or pg_catalog.; every
 * function pins search_path but qml.enqueue, which says why; only the
 * role-gated API is SECURITY DEFINER;
 * nothing is granted to PUBLIC (see qml.grant_producer and friends).
 * Errors use SQLSTATEs listed in README.md.
 */

\echo Use "CREATE EXTENSION qml" to load this file. \quit

CREATE SCHEMA qml;
REVOKE ALL ON SCHEMA qml FROM PUBLIC;

CREATE TYPE qml.job_state AS ENUM (
	'scheduled', 'enqueued', 'processing', 'succeeded', 'failed',
	'awaiting_retry', 'deleted'
);

/* ---------------------------------------------------------------------
 * Storage
 * --------------------------------------------------------------------- */

-- Per-queue settings. A queue needs no row here to exist: jobs name their
-- queue, and a row appears when a queue is paused or given settings.
CREATE TABLE qml.queues (
	name		text PRIMARY KEY
				CHECK (length(name) BETWEEN 1 AND 128),
	paused		boolean NOT NULL DEFAULT false,
	history		boolean,		-- NULL: follow qml.history
	retention	interval,		-- NULL: follow qml.retention
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE qml.jobs (
	id			bigint GENERATED ALWAYS AS IDENTITY (CACHE 32) PRIMARY KEY,
	queue		text NOT NULL DEFAULT 'default'
				CHECK (length(queue) BETWEEN 1 AND 128),
	method		text NOT NULL CHECK (length(method) BETWEEN 1 AND 1000),
	arguments	jsonb NOT NULL DEFAULT '[]',
	priority	integer NOT NULL DEFAULT 0,
	state		qml.job_state NOT NULL,
	attempts	integer NOT NULL DEFAULT 0,
	max_attempts integer NOT NULL CHECK (max_attempts >= 1),
	run_at		timestamptz NOT NULL DEFAULT now(),
	created_at	timestamptz NOT NULL DEFAULT now(),
	enqueued_at timestamptz,
	started_at	timestamptz,
	finished_at timestamptz,
	locked_by	text,
	locked_until timestamptz,
	last_error	text,
	result		jsonb,
	unique_key	text,
	backoff_base interval,		-- NULL: follow qml.retry_base
	backoff_cap interval,		-- NULL: follow qml.retry_cap
	lease_pid	integer,		-- session lease: the claiming backend's pid
	lease_session timestamptz	-- ... and its start time (NULL: time lease only)
) WITH (fillfactor = 50,
	   autovacuum_vacuum_scale_factor = 0.01,
	   autovacuum_vacuum_threshold = 1000,
	   autovacuum_vacuum_cost_delay = 0,
	   autovacuum_analyze_scale_factor = 0.02);
-- Every job is updated at least twice (claim, completion) and no update can
-- be HOT (state is in the partial indexes' predicates): the free half of
-- each page keeps the new row versions on the same page instead of
-- extending the table under a lock. Measured: about 1.3 x the claim and
-- completion rate of fillfactor 100 at 16 clients.
-- Vacuum early and at full speed: every claim leaves a dead entry at the
-- head of jobs_fetch_idx, and each claim walks the dead entries before it
-- finds a live one until VACUUM removes them (a profile of one client
-- showed 30% of its time there). The default (20% of the table dead)
-- would let a deep queue's head rot for a long time.

-- The claim: fetch walks this index in (priority desc, run_at, id) order
-- within one queue and stops after `batch` rows, whatever the depth.
CREATE INDEX jobs_fetch_idx ON qml.jobs (queue, priority DESC, run_at, id)
	WHERE state = 'enqueued';
-- Promotion of due scheduled and retrying jobs: the scheduler's, across
-- queues in due order, and fetch's, of the queue it claims from (a
-- (run_at) range would make a fetch walk every other queue's due jobs).
CREATE INDEX jobs_due_idx ON qml.jobs (run_at)
	WHERE state IN ('scheduled', 'awaiting_retry');
CREATE INDEX jobs_queue_due_idx ON qml.jobs (queue, run_at)
	WHERE state IN ('scheduled', 'awaiting_retry');
-- Rescue of expired leases. Only statements that say locked_until IS NOT
-- NULL (or compare it) can use it: a completion's "id = ... AND state =
-- 'processing'" otherwise got a generic plan that walked this whole index,
-- dead entries of every finished job included, instead of the primary key.
CREATE INDEX jobs_lease_idx ON qml.jobs (locked_until)
	WHERE state = 'processing' AND locked_until IS NOT NULL;
-- Pruning and throughput over finished jobs.
CREATE INDEX jobs_finished_idx ON qml.jobs (finished_at)
	WHERE state IN ('succeeded', 'failed', 'deleted');
-- At most one live job per unique_key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON qml.jobs (unique_key)
	WHERE unique_key IS NOT NULL
	  AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry');

-- Audit trail: one row per state change. No foreign key: checking one on
-- every event would lock the job row again; pruning deletes both together.
CREATE TABLE qml.job_events (
	id			bigint GENERATED ALWAYS AS IDENTITY (CACHE 32),
	job_id		bigint NOT NULL,
	from_state	qml.job_state,	-- NULL when the job was created
	to_state	qml.job_state NOT NULL,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	worker		text,
	error		text
);
CREATE INDEX job_events_job_idx ON qml.job_events (job_id);

SELECT pg_catalog.pg_extension_config_dump('qml.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('qml.job_events', '');
SELECT pg_catalog.pg_extension_config_dump('qml.queues', '');

/* ---------------------------------------------------------------------
 * Triggers (C, see src/job_trigger.c and src/job_history.c): per row,
 * timestamps, the lease invariant, wakeups and the change for the history;
 * per statement, the history of all of the statement's changes in one
 * INSERT. The update trigger has no WHEN clause (the executor would read
 * it back from the catalog for every statement); when the state did not
 * change it returns at once (a heartbeat), after noting a waiting job's
 * new place for queue_head.c.
 * --------------------------------------------------------------------- */

CREATE FUNCTION qml.jobs_stamp() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_stamp';
CREATE FUNCTION qml.jobs_record() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_record';
CREATE FUNCTION qml.jobs_flush() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_flush';

CREATE TRIGGER jobs_stamp_insert BEFORE INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_stamp_update BEFORE UPDATE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_record_insert AFTER INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_record();
CREATE TRIGGER jobs_flush AFTER INSERT OR UPDATE ON qml.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION qml.jobs_flush();

-- Each session keeps the queues' own history settings (job_history.c)
-- instead of reading qml.queues on every flush; a change to the table
-- sends every session a relcache invalidation at commit, to read it again.
CREATE FUNCTION qml.queues_changed() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_queues_changed';
CREATE TRIGGER queues_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON qml.queues FOR EACH STATEMENT EXECUTE FUNCTION qml.queues_changed();

/* ---------------------------------------------------------------------
 * Helpers (not granted to anyone; the API calls them as owner)
 * --------------------------------------------------------------------- */

/*
 * qml.retry_delay(attempt, base, cap): backoff before the next attempt.
 * NULL base/cap mean the qml.retry_base / qml.retry_cap settings.
 */
CREATE FUNCTION qml.retry_delay(attempt integer, base interval DEFAULT NULL,
								cap interval DEFAULT NULL)
	RETURNS interval
	LANGUAGE c VOLATILE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'qml_retry_delay';

-- Raises 22004 / 22023 / 22001 unless `value` is a usable name of `what`
-- (1..maxlen characters). The C functions run the same check.
CREATE FUNCTION qml.check_name(what text, value text, maxlen integer)
	RETURNS void
	LANGUAGE c IMMUTABLE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_check_name_sql';

-- Raises 22023 unless a lease is a positive interval.
CREATE FUNCTION qml.check_lease(lease interval) RETURNS void
	LANGUAGE c IMMUTABLE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_check_lease_sql';

-- Raises P0002 when no job has this id.
CREATE FUNCTION qml.check_job_exists(job_id bigint) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM qml.jobs j WHERE j.id = job_id) THEN
		RAISE EXCEPTION 'job % does not exist', coalesce(job_id::text, 'NULL')
			USING ERRCODE = 'no_data_found',
				  HINT = 'It may have been pruned after qml.retention.';
	END IF;
END
$$;

/* ---------------------------------------------------------------------
 * Producer API
 * --------------------------------------------------------------------- */

/*
 * qml.enqueue: a new job, `scheduled` when run_at is in the future, else
 * `enqueued`. With unique_key, while a live job (scheduled, enqueued,
 * processing, awaiting_retry) has that key, its id is returned instead.
 * Errors: 22004 null method/queue, 22023 empty method/queue, max_attempts
 * < 1 or bad backoff, 22001 method/queue too long, 25006 in a read-only
 * transaction.
 *
 * The one API function that is neither SECURITY DEFINER nor SET
 * search_path, because in PostgreSQL 15 those two cost 8% of an enqueue's
 * throughput at 16 clients (README, "What keeps enqueue and fetch
 * cheap"): leaving the function walks every setting to restore the path,
 * and the caller's next statement parses its own path again. It needs
 * neither: it writes the row by OID
 * (src/direct_insert.c), resolving no name and checking no privilege, as
 * COPY's insert does. Whatever takes an INSERT statement (a unique_key, or
 * a qml.jobs with a trigger, constraint, column or index of an admin's
 * own, or a qml.job_events with an index of an admin's own) it
 * hands to qml.enqueue_as_owner, which is SECURITY DEFINER with the path
 * pinned. EXECUTE on qml.enqueue stays the gate.
 */
CREATE FUNCTION qml.enqueue(method text, arguments jsonb DEFAULT '[]',
							queue text DEFAULT 'default',
							priority integer DEFAULT 0,
							run_at timestamptz DEFAULT NULL,
							max_attempts integer DEFAULT NULL,
							unique_key text DEFAULT NULL,
							backoff_base interval DEFAULT NULL,
							backoff_cap interval DEFAULT NULL)
	RETURNS bigint
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'qml_enqueue';

/*
 * qml.enqueue_as_owner: qml.enqueue by INSERT statement, run as the
 * extension's owner. Granted to nobody; qml.enqueue calls it.
 */
CREATE FUNCTION qml.enqueue_as_owner(method text, arguments jsonb, queue text,
									 priority integer, run_at timestamptz,
									 max_attempts integer, unique_key text,
									 backoff_base interval, backoff_cap interval)
	RETURNS bigint
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_enqueue_as_owner';

/*
 * qml.schedule: a job for later, at run_at or after delay (exactly one).
 */
CREATE FUNCTION qml.schedule(method text, arguments jsonb DEFAULT '[]',
							 run_at timestamptz DEFAULT NULL,
							 delay interval DEFAULT NULL,
							 queue text DEFAULT 'default',
							 priority integer DEFAULT 0,
							 max_attempts integer DEFAULT NULL,
							 unique_key text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (run_at IS NULL) = (delay IS NULL) THEN
		RAISE EXCEPTION 'schedule needs exactly one of run_at and delay'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Call qml.schedule(''m'', run_at => ...) or qml.schedule(''m'', delay => ''10 minutes'').';
	END IF;
	RETURN qml.enqueue(method, arguments, queue, priority,
					   coalesce(run_at, now() + delay), max_attempts, unique_key);
END
$$;

/*
 * qml.enqueue_batch(jobs jsonb): many jobs in one statement. `jobs` is an
 * array of objects with the parameters of qml.enqueue as keys (method is
 * required). Returns the ids in the order of the array. The whole batch is
 * checked before anything is inserted; the first bad element is reported
 * with its position (22023). C (src/producer_batch.c): it checks each
 * element and writes the rows as enqueue does, or hands the checked batch
 * to qml.enqueue_batch_by_statement.
 */
CREATE FUNCTION qml.enqueue_batch(jobs jsonb) RETURNS SETOF bigint
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_enqueue_batch';

/*
 * qml.enqueue_batch_by_statement(jobs jsonb): a batch qml.enqueue_batch
 * has checked, by statement: through qml.enqueue one job at a time when
 * one has a unique_key (its conflict handling), else one INSERT ...
 * SELECT, which runs whatever an admin put on qml.jobs. Granted to
 * nobody; qml.enqueue_batch calls it as owner. Numbers go through numeric:
 * a whole number written 2.0 passed the check, as it does on the direct
 * path.
 */
CREATE FUNCTION qml.enqueue_batch_by_statement(jobs jsonb) RETURNS SETOF bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	elem jsonb;
BEGIN
	IF EXISTS (SELECT 1 FROM jsonb_array_elements(jobs) j
				WHERE j->>'unique_key' IS NOT NULL) THEN
		FOR elem IN SELECT j FROM jsonb_array_elements(jobs) j LOOP
			RETURN NEXT qml.enqueue(elem->>'method',
									coalesce(elem->'arguments', '[]'),
									coalesce(elem->>'queue', 'default'),
									coalesce((elem->>'priority')::numeric::integer, 0),
									(elem->>'run_at')::timestamptz,
									(elem->>'max_attempts')::numeric::integer,
									elem->>'unique_key',
									(elem->>'backoff_base')::interval,
									(elem->>'backoff_cap')::interval);
		END LOOP;
		RETURN;
	END IF;

	RETURN QUERY
	WITH input AS (
		-- a past run_at means now, as in enqueue: the job does not jump the queue
		SELECT a.ord, a.j, greatest((a.j->>'run_at')::timestamptz, now()) AS due
		  FROM jsonb_array_elements(jobs) WITH ORDINALITY AS a(j, ord)),
	ins AS (
		INSERT INTO qml.jobs (queue, method, arguments, priority, state,
							  max_attempts, run_at, backoff_base, backoff_cap)
		SELECT coalesce(i.j->>'queue', 'default'), i.j->>'method',
			   coalesce(i.j->'arguments', '[]'),
			   coalesce((i.j->>'priority')::numeric::integer, 0),
			   CASE WHEN i.due > now() THEN 'scheduled' ELSE 'enqueued' END::qml.job_state,
			   (i.j->>'max_attempts')::numeric::integer, i.due,
			   (i.j->>'backoff_base')::interval, (i.j->>'backoff_cap')::interval
		  FROM input i ORDER BY i.ord
		RETURNING id)
	SELECT ins.id FROM ins ORDER BY ins.id;
END
$$;

/* ---------------------------------------------------------------------
 * Worker API. A worker names itself; only the lease holder may finish,
 * fail, extend or release a job. Losing a lease is a race, not an error:
 * these functions then return false, NULL or leave the job out.
 * --------------------------------------------------------------------- */

/*
 * qml.fetch: claims up to `batch` (1..1000) enqueued jobs for `worker`,
 * queues in the order given, then higher priority, then oldest first.
 * Paused queues yield nothing. Rows locked by other sessions are skipped,
 * never waited for. Errors: 22004 null worker or queue, 22023 empty worker,
 * bad batch, lease not positive, empty queues, negative wait; 22001 worker
 * too long; 0A000 wait in a REPEATABLE READ or SERIALIZABLE transaction.
 *
 * wait: when nothing is there, block in the server until a commit makes a
 * job of these queues enqueued (or a promotion does), at most this long;
 * cancel and terminate interrupt it. session_lease: the jobs are rescued
 * as soon as this session ends (false for pooled connections, where only
 * the lease applies). Both need the library preloaded; without it a wait
 * polls and the lease alone applies.
 */
CREATE FUNCTION qml.fetch(worker text, queues text[] DEFAULT '{default}',
						  batch integer DEFAULT 1,
						  lease interval DEFAULT '5 minutes',
						  wait interval DEFAULT NULL,
						  session_lease boolean DEFAULT true)
	RETURNS SETOF qml.jobs
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fetch';

/*
 * qml.complete: processing -> succeeded, for the lease holder only.
 */
CREATE FUNCTION qml.complete(job_id bigint, worker text, result jsonb DEFAULT NULL)
	RETURNS boolean
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_complete';

/*
 * qml.complete_batch: completes the jobs this worker still holds, with
 * results[i] for job_ids[i] when results is given; returns their ids.
 * 22023 when results and job_ids differ in length.
 */
CREATE FUNCTION qml.complete_batch(job_ids bigint[], worker text,
								   results jsonb[] DEFAULT NULL)
	RETURNS SETOF bigint
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_complete_batch';

/*
 * qml.fail: processing -> awaiting_retry (with backoff) while attempts
 * remain and retry is true, else -> failed. Returns the new state, or NULL
 * when the worker no longer holds the job.
 */
CREATE FUNCTION qml.fail(job_id bigint, worker text, error text,
						 retry boolean DEFAULT true)
	RETURNS qml.job_state
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_state qml.job_state;
BEGIN
	UPDATE qml.jobs j
	   SET state = CASE WHEN retry AND j.attempts < j.max_attempts
						THEN 'awaiting_retry' ELSE 'failed' END::qml.job_state,
		   run_at = CASE WHEN retry AND j.attempts < j.max_attempts
						 THEN now() + qml.retry_delay(j.attempts, j.backoff_base, j.backoff_cap)
						 ELSE j.run_at END,
		   last_error = coalesce(error, 'failed without an error message')
	 WHERE j.id = job_id AND j.state = 'processing' AND j.locked_by = worker
	RETURNING j.state INTO new_state;
	RETURN new_state;
END
$$;

/*
 * qml.heartbeat: extends the leases this worker still holds; returns them.
 */
CREATE FUNCTION qml.heartbeat(job_ids bigint[], worker text,
							  lease interval DEFAULT '5 minutes')
	RETURNS SETOF bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_lease(lease);
	RETURN QUERY
	UPDATE qml.jobs j SET locked_until = now() + lease
	 WHERE j.id = ANY (job_ids) AND j.state = 'processing' AND j.locked_by = worker
	RETURNING j.id;
END
$$;

/*
 * qml.release: gives a held job back unrun (e.g. at shutdown); the attempt
 * it was fetched with is not counted.
 */
CREATE FUNCTION qml.release(job_id bigint, worker text) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE qml.jobs j SET state = 'enqueued', attempts = greatest(j.attempts - 1, 0)
	 WHERE j.id = job_id AND j.state = 'processing' AND j.locked_by = worker;
	RETURN FOUND;
END
$$;

/* ---------------------------------------------------------------------
 * Admin API
 * --------------------------------------------------------------------- */

/*
 * qml.delete: soft delete of a job that has not finished; the row and its
 * history stay until pruned. False when it had already finished; P0002 when
 * there is no such job. A worker holding it finds its lease gone.
 */
CREATE FUNCTION qml.delete(job_id bigint) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE qml.jobs j SET state = 'deleted'
	 WHERE j.id = job_id
	   AND j.state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry');
	IF FOUND THEN
		RETURN true;
	END IF;
	PERFORM qml.check_job_exists(job_id);
	RETURN false;
END
$$;

/*
 * qml.requeue: a finished job (succeeded, failed, deleted) runs again, with
 * its attempts counted afresh. False when it is still live; P0002 when
 * there is no such job; 23505 when another live job now has its unique_key.
 */
CREATE FUNCTION qml.requeue(job_id bigint) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	BEGIN
		UPDATE qml.jobs j
		   SET state = 'enqueued', attempts = 0, run_at = now(), result = NULL
		 WHERE j.id = job_id AND j.state IN ('succeeded', 'failed', 'deleted');
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'job % cannot be requeued: another live job has its unique_key', job_id
			USING ERRCODE = 'unique_violation',
				  HINT = 'Delete or finish the other job first.';
	END;
	IF FOUND THEN
		RETURN true;
	END IF;
	PERFORM qml.check_job_exists(job_id);
	RETURN false;
END
$$;

-- Pause or resume handing out a queue's jobs; true when the state changed.
CREATE FUNCTION qml.set_queue_paused(queue text, paused boolean) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	was boolean;
BEGIN
	PERFORM qml.check_name('queue', queue, 128);
	SELECT q.paused INTO was FROM qml.queues q WHERE q.name = queue FOR UPDATE;
	IF NOT FOUND THEN
		INSERT INTO qml.queues (name, paused) VALUES (queue, paused)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;
		RETURN paused;
	END IF;
	UPDATE qml.queues q SET paused = set_queue_paused.paused WHERE q.name = queue;
	IF NOT paused THEN
		-- idle workers of this queue may be waiting: notify and wake them
		PERFORM qml.wake_queue(queue);
	END IF;
	RETURN was IS DISTINCT FROM paused;
END
$$;

/*
 * qml.configure_queue: a queue's own history and retention; NULL means
 * "follow qml.history / qml.retention". 22023 for a negative retention.
 */
CREATE FUNCTION qml.configure_queue(queue text, history boolean DEFAULT NULL,
									retention interval DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('queue', queue, 128);
	IF retention < interval '0' THEN
		RAISE EXCEPTION 'retention must not be negative, not %', retention
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use 0 to prune finished jobs at the next pass.';
	END IF;
	INSERT INTO qml.queues AS q (name, history, retention)
	VALUES (configure_queue.queue, configure_queue.history, configure_queue.retention)
	ON CONFLICT (name) DO UPDATE
		SET history = excluded.history, retention = excluded.retention;
END
$$;

CREATE FUNCTION qml.pause_queue(queue text) RETURNS boolean
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	RETURN qml.set_queue_paused(queue, true);

CREATE FUNCTION qml.resume_queue(queue text) RETURNS boolean
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	RETURN qml.set_queue_paused(queue, false);

/*
 * qml.stats: jobs per queue and state (all queues, or one).
 */
CREATE FUNCTION qml.stats(queue text DEFAULT NULL)
	RETURNS TABLE (queue text, paused boolean, scheduled bigint, enqueued bigint,
				   processing bigint, awaiting_retry bigint, succeeded bigint,
				   failed bigint, deleted bigint)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(c.queue, q.name), coalesce(q.paused, false),
		   coalesce(c.scheduled, 0), coalesce(c.enqueued, 0),
		   coalesce(c.processing, 0), coalesce(c.awaiting_retry, 0),
		   coalesce(c.succeeded, 0), coalesce(c.failed, 0), coalesce(c.deleted, 0)
	  FROM (SELECT j.queue,
				   count(*) FILTER (WHERE j.state = 'scheduled') AS scheduled,
				   count(*) FILTER (WHERE j.state = 'enqueued') AS enqueued,
				   count(*) FILTER (WHERE j.state = 'processing') AS processing,
				   count(*) FILTER (WHERE j.state = 'awaiting_retry') AS awaiting_retry,
				   count(*) FILTER (WHERE j.state = 'succeeded') AS succeeded,
				   count(*) FILTER (WHERE j.state = 'failed') AS failed,
				   count(*) FILTER (WHERE j.state = 'deleted') AS deleted
			  FROM qml.jobs j
			 WHERE stats.queue IS NULL OR j.queue = stats.queue
			 GROUP BY j.queue) c
	  FULL JOIN (SELECT * FROM qml.queues q0
				  WHERE stats.queue IS NULL OR q0.name = stats.queue) q
		ON q.name = c.queue
	 ORDER BY 1;
END;

/*
 * qml.throughput: succeeded and failed jobs per time bucket over the last
 * `since`, per queue (or for one queue). Where the scheduler serves the
 * database it reads the per-minute roll-up (qml.throughput_minutes, one
 * minute resolution, up to a second behind); elsewhere it reads qml.jobs.
 */
CREATE FUNCTION qml.throughput(bucket_width interval DEFAULT '1 minute',
							   since interval DEFAULT '1 hour',
							   for_queue text DEFAULT NULL)
	RETURNS TABLE (bucket timestamptz, queue text, succeeded bigint, failed bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF bucket_width IS NULL OR bucket_width <= interval '0' OR since IS NULL OR since <= interval '0' THEN
		RAISE EXCEPTION 'bucket and since must be positive intervals'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
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
 * qml.maintain: one scheduler pass by hand (promote, rescue, prune).
 */
CREATE FUNCTION qml.maintain() RETURNS jsonb
	LANGUAGE c SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_maintain';

/* ---------------------------------------------------------------------
 * Privileges: nothing to PUBLIC; three kinds of rights, granted per role.
 * --------------------------------------------------------------------- */

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA qml FROM PUBLIC;

CREATE FUNCTION qml.grant_to(role regrole, functions text[], tables boolean)
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f text;
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- a regrole prints as a quoted identifier already: %s, not %I
	EXECUTE format('GRANT USAGE ON SCHEMA qml TO %s', role);
	FOREACH f IN ARRAY functions LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
	END LOOP;
	IF tables THEN
		EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA qml TO %s', role);
	END IF;
END
$$;

-- Producer: enqueue and schedule jobs, read statistics.
CREATE FUNCTION qml.grant_producer(role regrole) RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	RETURN qml.grant_to(role, ARRAY['qml.enqueue(text,jsonb,text,integer,timestamptz,integer,text,interval,interval)',
									'qml.enqueue_batch(jsonb)',
									'qml.schedule(text,jsonb,timestamptz,interval,text,integer,integer,text)',
									'qml.stats(text)', 'qml.throughput(interval,interval,text)'],
						false);

-- Worker: claim jobs and report on them, read statistics.
CREATE FUNCTION qml.grant_worker(role regrole) RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	RETURN qml.grant_to(role, ARRAY['qml.fetch(text,text[],integer,interval,interval,boolean)',
									'qml.complete(bigint,text,jsonb)',
									'qml.complete_batch(bigint[],text,jsonb[])',
									'qml.fail(bigint,text,text,boolean)',
									'qml.heartbeat(bigint[],text,interval)',
									'qml.release(bigint,text)',
									'qml.stats(text)', 'qml.throughput(interval,interval,text)'],
						false);

-- Admin: everything a producer and a worker may do, plus delete, requeue,
-- pause/resume, maintain, recurring jobs, and reading every table.
CREATE FUNCTION qml.grant_admin(role regrole) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.grant_producer(role);
	PERFORM qml.grant_worker(role);
	PERFORM qml.grant_to(role, ARRAY['qml.delete(bigint)', 'qml.requeue(bigint)',
									 'qml.pause_queue(text)', 'qml.resume_queue(text)',
									 'qml.configure_queue(text,boolean,interval)',
									 'qml.maintain()',
									 'qml.add_recurring(text,text,text,jsonb,text,integer,integer,text)',
									 'qml.remove_recurring(text)'],
						 true);
END
$$;

-- Takes back every right on qml from a role.
CREATE FUNCTION qml.revoke_all(role regrole) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA qml FROM %s', role);
	EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA qml FROM %s', role);
	EXECUTE format('REVOKE ALL ON SCHEMA qml FROM %s', role);
END
$$;

/* ---------------------------------------------------------------------
 * Scheduler (src/launcher.c, scheduler.c, maintain.c, wakeup.c,
 * session_lease.c, stats.c, recurring.c): recurring jobs, per-minute
 * statistics, and the internal helpers the background worker, qml.fetch
 * and the triggers use. See README.md, "Scheduler".
 * --------------------------------------------------------------------- */

-- A queue's own retention cannot be negative (23514).
ALTER TABLE qml.queues ADD CONSTRAINT queues_retention_check
	CHECK (retention >= interval '0');

-- Recurring jobs: the scheduler enqueues one job per due time. next_run_at
-- moves in the same transaction as the enqueue, under the row's lock.
CREATE TABLE qml.recurring (
	name		text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
	schedule	text NOT NULL,	-- cron, @macro or interval; see qml.add_recurring
	timezone	text,			-- NULL: UTC (or the schedule's CRON_TZ=)
	method		text NOT NULL CHECK (length(method) BETWEEN 1 AND 1000),
	arguments	jsonb NOT NULL DEFAULT '[]',
	queue		text NOT NULL DEFAULT 'default'
				CHECK (length(queue) BETWEEN 1 AND 128),
	priority	integer NOT NULL DEFAULT 0,
	max_attempts integer CHECK (max_attempts >= 1),
	next_run_at timestamptz NOT NULL,
	last_run_at timestamptz,	-- the due time the last job was enqueued for
	last_job_id bigint,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recurring_next_idx ON qml.recurring (next_run_at);

-- Jobs enqueued, succeeded and failed per queue per minute, rolled up by
-- the scheduler from counts kept in shared memory (qml.stats_retention).
CREATE TABLE qml.throughput_minutes (
	minute		timestamptz NOT NULL,
	queue		text NOT NULL,
	enqueued	bigint NOT NULL DEFAULT 0,
	succeeded	bigint NOT NULL DEFAULT 0,
	failed		bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (minute, queue)
);

SELECT pg_catalog.pg_extension_config_dump('qml.recurring', '');
SELECT pg_catalog.pg_extension_config_dump('qml.throughput_minutes', '');

-- Internal: whether the session (pid, backend start) of a claim still runs.
CREATE FUNCTION qml.session_alive(pid integer, started timestamptz) RETURNS boolean
	LANGUAGE c STRICT VOLATILE
	AS 'MODULE_PATHNAME', 'qml_session_alive_sql';

-- Internal: wake the scheduler at commit if it would sleep past `at`
-- (NULL: now).
CREATE FUNCTION qml.wake_scheduler(at timestamptz) RETURNS void
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'qml_wake_scheduler';

-- Internal: tell a queue's idle workers at commit that it may have work.
CREATE FUNCTION qml.wake_queue(queue text) RETURNS void
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'qml_wake_queue';

-- Internal: whether this database's statistics are rolled up (preloaded
-- library, database served by a scheduler).
CREATE FUNCTION qml.stats_live() RETURNS boolean
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'qml_stats_live';

/*
 * qml.next_run(schedule, timezone, due, now): internal. The run of
 * `schedule` after the one due at `due`, never earlier than `now`.
 * Errors: 22023 invalid schedule (the parser's reason in DETAIL), unknown
 * time zone, a schedule that never runs; 22004 null schedule.
 */
CREATE FUNCTION qml.next_run(schedule text, timezone text, due timestamptz,
							 now timestamptz)
	RETURNS timestamptz
	LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'qml_next_run';

/*
 * qml.fire_recurring(batch): internal, a step of the scheduler's pass.
 * Enqueues one job for each recurring job that is due (its run_at is the
 * due time, which also keeps its place among older jobs) and moves next_run_at on, in this transaction, under the row's
 * lock (SKIP LOCKED: two passes never fire the same run). Runs missed while
 * nobody passed fire once. A row whose schedule no longer parses is logged
 * and looked at again in an hour. Returns the number fired.
 */
CREATE FUNCTION qml.fire_recurring(batch integer) RETURNS integer
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	job bigint;
	fired integer := 0;
BEGIN
	FOR r IN SELECT * FROM qml.recurring c
			  WHERE c.next_run_at <= now()
			  ORDER BY c.next_run_at LIMIT batch
			  FOR UPDATE SKIP LOCKED
	LOOP
		BEGIN
			-- the job's run_at is the due time it stands for
			INSERT INTO qml.jobs (queue, method, arguments, priority, state,
								  max_attempts, run_at)
			VALUES (r.queue, r.method, r.arguments, r.priority, 'enqueued',
					r.max_attempts, r.next_run_at)
			RETURNING id INTO job;
			UPDATE qml.recurring c
			   SET last_run_at = r.next_run_at, last_job_id = job,
				   next_run_at = qml.next_run(r.schedule, r.timezone, r.next_run_at, now())
			 WHERE c.name = r.name;
			fired := fired + 1;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'recurring job "%" could not fire: %', r.name, SQLERRM
				USING HINT = 'Remove it with qml.remove_recurring() and add it again.';
			UPDATE qml.recurring c SET next_run_at = now() + interval '1 hour'
			 WHERE c.name = r.name;
		END;
	END LOOP;
	RETURN fired;
END
$$;

/*
 * qml.add_recurring: a job enqueued by the scheduler at every run of
 * `schedule`. Returns its first run.
 *
 * schedule: 5-field cron ('*\/5 * * * *', ranges, lists, steps, month and
 * day names), a macro (@yearly @monthly @weekly @daily @hourly), or an
 * interval ('30 seconds', 'every 5 minutes', 1 second to 366 days). Cron
 * fields are read in `timezone` (or a 'CRON_TZ=Area/City ' prefix), UTC
 * when neither is given. Interval runs keep their cadence from the first.
 * Errors: 22023 invalid schedule (the parser's reason in DETAIL), unknown
 * time zone, max_attempts < 1, empty name/method/queue; 22004 null
 * argument; 22001 name/method/queue too long; 23505 the name exists.
 */
CREATE FUNCTION qml.add_recurring(name text, schedule text, method text,
								  arguments jsonb DEFAULT '[]',
								  queue text DEFAULT 'default',
								  priority integer DEFAULT 0,
								  max_attempts integer DEFAULT NULL,
								  timezone text DEFAULT NULL)
	RETURNS timestamptz
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	first_run timestamptz;
BEGIN
	PERFORM qml.check_name('name', add_recurring.name, 200);
	PERFORM qml.check_name('method', add_recurring.method, 1000);
	PERFORM qml.check_name('queue', add_recurring.queue, 128);
	IF add_recurring.max_attempts < 1 THEN
		RAISE EXCEPTION 'max_attempts must be at least 1, not %', add_recurring.max_attempts
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	first_run := qml.next_run(add_recurring.schedule, add_recurring.timezone, now(), now());

	INSERT INTO qml.recurring AS c (name, schedule, timezone, method, arguments,
									queue, priority, max_attempts, next_run_at)
	VALUES (add_recurring.name, add_recurring.schedule, add_recurring.timezone,
			add_recurring.method, coalesce(add_recurring.arguments, '[]'),
			add_recurring.queue, coalesce(add_recurring.priority, 0),
			add_recurring.max_attempts, first_run)
	ON CONFLICT ON CONSTRAINT recurring_pkey DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'recurring job "%" already exists', add_recurring.name
			USING ERRCODE = 'unique_violation',
				  HINT = 'Remove it first with qml.remove_recurring(), or choose another name.';
	END IF;
	PERFORM qml.wake_scheduler(first_run);
	RETURN first_run;
END
$$;

/*
 * qml.remove_recurring: stops a recurring job (jobs it already enqueued
 * stay). False when there is no recurring job of that name.
 */
CREATE FUNCTION qml.remove_recurring(name text) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM qml.recurring c WHERE c.name = remove_recurring.name;
	RETURN FOUND;
END
$$;

-- A scheduler idling in this database (no extension yet) starts at commit.
SELECT qml.wake_scheduler(NULL);

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA qml FROM PUBLIC;
