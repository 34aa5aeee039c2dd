/*
 * qml--1.0--1.1.sql
 *	  Updates a database's qml from version 1.0 to 1.1 (ALTER EXTENSION qml
 *	  UPDATE, or `qml migrate`). It leaves the catalog CREATE EXTENSION qml
 *	  makes at 1.1 (test/upgrade/catalog.sh compares the two) and keeps
 *	  every job, its history, the queues' settings, the recurring jobs and
 *	  the statistics. The definitions below are qml--1.1.sql's, with their
 *	  comments; what is only here says why.
 *
 * It runs in one transaction while producers and workers go on: they wait
 * for it at their next statement on qml.jobs and continue on 1.1 when it
 * commits (docs/upgrading.md). Run it with the 1.1 library installed: the
 * library serves a database on either version (src/catalog.c).
 */

\echo Use "ALTER EXTENSION qml UPDATE TO '1.1'" to load this file. \quit

-- The tables this script alters, first and in the order the API takes them
-- (qml.jobs, then qml.queues, as fetch does): taking qml.queues while a
-- worker that holds it waits for qml.jobs behind us would be a deadlock.
LOCK TABLE qml.jobs IN ACCESS EXCLUSIVE MODE;
LOCK TABLE qml.queues IN ACCESS EXCLUSIVE MODE;

/* ---------------------------------------------------------------------
 * qml.jobs: the role that claimed a job (src/lease_role.c; the leases
 * taken under 1.0 get theirs at the end), a unique_key per queue, the
 * identity sequences dumped, the counts' delete triggers.
 * --------------------------------------------------------------------- */

ALTER TABLE qml.jobs ADD COLUMN locked_role oid;

-- A key unique in all queues is unique in its own: the live jobs of 1.0
-- all fit the new index.
DROP INDEX qml.jobs_unique_key_idx;
-- At most one live job per unique_key in a queue: a key is its queue's
-- (what the queue's producers expect, and what a table distributed by queue
-- can enforce).
CREATE UNIQUE INDEX jobs_unique_key_idx ON qml.jobs (queue, unique_key)
	WHERE unique_key IS NOT NULL
	  AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry');

SELECT pg_catalog.pg_extension_config_dump('qml.jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('qml.job_events_id_seq', '');

-- A deleted job leaves the counts qml.stats() reads; a TRUNCATE makes the
-- scheduler count the table again (src/job_counts.c).
CREATE FUNCTION qml.jobs_count_delete() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_count_delete';
CREATE TRIGGER jobs_count_delete AFTER DELETE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_count_delete();
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON qml.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION qml.jobs_count_delete();

/* ---------------------------------------------------------------------
 * The shape of qml.jobs and qml.job_events (src/direct_gate.c). The API
 * writes their rows without an executor only while both are exactly what
 * this script created; qml.table_shape() describes a table from the catalog
 * by definition (columns, constraints either way, triggers, rules,
 * policies, indexes, inheritance, access method, row security), the end of
 * this script records both, and each session compares them again whenever
 * either table's relcache entry is invalidated. Not dumped: CREATE
 * EXTENSION records it afresh in a restored database.
 * --------------------------------------------------------------------- */

CREATE TABLE qml.table_shapes (
	relname		name PRIMARY KEY,
	shape		text NOT NULL
);

-- Deparsing follows settings a caller may change: they are pinned, so that
-- the same catalog always reads the same.
CREATE FUNCTION qml.table_shape(rel regclass) RETURNS text
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	SET quote_all_identifiers = off
	SET DateStyle = 'ISO, YMD'
	SET IntervalStyle = postgres
	SET extra_float_digits = 1
	SET standard_conforming_strings = on
AS $$
SELECT concat_ws(E'\n',
	(SELECT format('table kind %s am %s partition %s row security %s force %s',
				   c.relkind, a.amname, c.relispartition, c.relrowsecurity,
				   c.relforcerowsecurity)
	   FROM pg_class c LEFT JOIN pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
	  WHERE c.oid OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('column %I %s not null %s default %s generated %s identity %s collation %s',
							  a.attname, format_type(a.atttypid, a.atttypmod),
							  a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
							  a.attgenerated, a.attidentity,
							  a.attcollation::regcollation),
					   E'\n' ORDER BY a.attnum)
	   FROM pg_attribute a
	   LEFT JOIN pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid
							 AND d.adnum OPERATOR(pg_catalog.=) a.attnum
	  WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attnum OPERATOR(pg_catalog.>) 0
		AND NOT a.attisdropped),
	(SELECT string_agg(format('constraint %I on %s: %s valid %s', k.conname,
							  k.conrelid::regclass, pg_get_constraintdef(k.oid),
							  k.convalidated),
					   E'\n' ORDER BY k.conrelid::regclass::text, k.conname)
	   FROM pg_constraint k
	  WHERE k.conrelid OPERATOR(pg_catalog.=) rel
		 OR k.confrelid OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('trigger %s enabled %s function %s %s',
							  pg_get_triggerdef(t.oid), t.tgenabled, p.probin,
							  p.prosrc),
					   E'\n' ORDER BY t.tgname)
	   FROM pg_trigger t JOIN pg_proc p ON p.oid OPERATOR(pg_catalog.=) t.tgfoid
	  WHERE t.tgrelid OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('rule %s enabled %s', pg_get_ruledef(r.oid), r.ev_enabled),
					   E'\n' ORDER BY r.rulename)
	   FROM pg_rewrite r WHERE r.ev_class OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('policy %I for %s permissive %s to %s using %s check %s',
							  p.polname, p.polcmd, p.polpermissive,
							  p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid),
							  pg_get_expr(p.polwithcheck, p.polrelid)),
					   E'\n' ORDER BY p.polname)
	   FROM pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('index %s', pg_get_indexdef(i.indexrelid)),
					   E'\n' ORDER BY i.indexrelid::regclass::text)
	   FROM pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('inherits %s', h.inhparent::regclass), E'\n'
					   ORDER BY h.inhparent::regclass::text)
	   FROM pg_inherits h WHERE h.inhrelid OPERATOR(pg_catalog.=) rel),
	(SELECT string_agg(format('inherited by %s', h.inhrelid::regclass), E'\n'
					   ORDER BY h.inhrelid::regclass::text)
	   FROM pg_inherits h WHERE h.inhparent OPERATOR(pg_catalog.=) rel))
$$;

-- Whether the table's shape is the one recorded (src/direct_gate.c calls
-- it, as owner: qml.table_shapes is granted to nobody).
CREATE FUNCTION qml.table_is_original(rel regclass) RETURNS boolean
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT s.shape OPERATOR(pg_catalog.=) qml.table_shape(rel)
  FROM qml.table_shapes s JOIN pg_class c ON c.relname OPERATOR(pg_catalog.=) s.relname
 WHERE c.oid OPERATOR(pg_catalog.=) rel
   AND c.relnamespace OPERATOR(pg_catalog.=) 'qml'::regnamespace
$$;

-- The history's INSERT statement, as owner: what job_history.c writes
-- directly while qml.job_events is as created, and through this otherwise,
-- so that whatever an admin added to it (a trigger, rule, constraint,
-- default, column, index) runs as for any INSERT. The time is the column's
-- default.
CREATE FUNCTION qml.record_events(job_ids bigint[], from_states qml.job_state[],
								  to_states qml.job_state[], workers text[],
								  errors text[])
	RETURNS void
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
INSERT INTO qml.job_events (job_id, from_state, to_state, worker, error)
SELECT * FROM unnest(job_ids, from_states, to_states, workers, errors)
$$;

/* ---------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

-- Raises 22023 unless `value` is a duration qml takes for `what`: positive
-- (or zero when zero_ok), no parts of opposite signs, at most 100 years.
CREATE FUNCTION qml.check_duration(what text, value interval, zero_ok boolean)
	RETURNS void
	LANGUAGE c IMMUTABLE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_check_duration_sql';

-- Whether qml.check_duration would take `value`: qml.queues' CHECK, so that
-- a retention written into the table directly cannot break pruning either.
CREATE FUNCTION qml.duration_ok(value interval, zero_ok boolean) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_duration_ok_sql';

-- 1.0's CHECK (retention >= 0) took values the new one refuses: a
-- retention over 100 years means "keep for ever" either way, and becomes
-- 100 years; one that mixes signs has no clear meaning and stops the
-- update, naming its queue.
UPDATE qml.queues SET retention = interval '100 years'
 WHERE retention > interval '100 years';
DO $$
DECLARE
	bad text;
BEGIN
	SELECT string_agg(pg_catalog.quote_literal(q.name), ', ') INTO bad
	  FROM qml.queues q
	 WHERE q.retention IS NOT NULL AND NOT qml.duration_ok(q.retention, true);
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'queue retention mixes positive and negative parts: %', bad
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Version 1.1 takes retentions of one sign, at most 100 years.',
				  HINT = 'Set each with qml.configure_queue(queue, retention => ...), then update again.';
	END IF;
END
$$;
ALTER TABLE qml.queues DROP CONSTRAINT queues_retention_check;
ALTER TABLE qml.queues ADD CONSTRAINT queues_retention_check
	CHECK (qml.duration_ok(retention, true));

-- The role a claim records as the lease's (the session's role: SET ROLE
-- counts, the SECURITY DEFINER switch does not), and whether the session
-- may act on a lease held by `locked_role`: it is that role, or an admin
-- (may call qml.delete). See src/lease_role.c. C, resolving no name
-- through search_path; heartbeat calls qml.may_act once per job.
CREATE FUNCTION qml.lease_role() RETURNS oid
	LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'qml_lease_role_sql';
CREATE FUNCTION qml.may_act(locked_role oid) RETURNS boolean
	LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'qml_may_act_sql';

/* ---------------------------------------------------------------------
 * The API functions 1.1 changed, in place: their OIDs and grants stay.
 * --------------------------------------------------------------------- */

/*
 * qml.schedule: a job for later, at run_at or after delay (exactly one).
 */
CREATE OR REPLACE FUNCTION qml.schedule(method text, arguments jsonb DEFAULT '[]',
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
	IF delay IS NOT NULL THEN
		PERFORM qml.check_duration('delay', delay, true);
	END IF;
	RETURN qml.enqueue(method, arguments, queue, priority,
					   coalesce(run_at, now() + delay), max_attempts, unique_key);
END
$$;

/*
 * qml.enqueue_batch_by_statement(jobs jsonb): a batch qml.enqueue_batch
 * has checked, by statement: through qml.enqueue one job at a time when
 * one has a unique_key (its conflict handling), else one INSERT ...
 * SELECT, which runs whatever an admin put on qml.jobs. Granted to
 * nobody; qml.enqueue_batch calls it as owner. Numbers go through numeric:
 * a whole number written 2.0 passed the check, as it does on the direct
 * path.
 */
CREATE OR REPLACE FUNCTION qml.enqueue_batch_by_statement(jobs jsonb) RETURNS SETOF bigint
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
									coalesce(nullif(elem->'arguments', 'null'), '[]'),
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
			   coalesce(nullif(i.j->'arguments', 'null'), '[]'),
			   coalesce((i.j->>'priority')::numeric::integer, 0),
			   CASE WHEN i.due > now() THEN 'scheduled' ELSE 'enqueued' END::qml.job_state,
			   (i.j->>'max_attempts')::numeric::integer, i.due,
			   (i.j->>'backoff_base')::interval, (i.j->>'backoff_cap')::interval
		  FROM input i ORDER BY i.ord
		RETURNING id)
	SELECT ins.id FROM ins ORDER BY ins.id;
END
$$;

-- session_lease is off by default in 1.1 (see qml--1.1.sql).
CREATE OR REPLACE FUNCTION qml.fetch(worker text, queues text[] DEFAULT '{default}',
						  batch integer DEFAULT 1,
						  lease interval DEFAULT '5 minutes',
						  wait interval DEFAULT NULL,
						  session_lease boolean DEFAULT false)
	RETURNS SETOF qml.jobs
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fetch';

/*
 * qml.fail_batch: qml.fail for many jobs in one statement (errors[i] and,
 * when given, retry[i] for job_ids[i]; retry NULL: retry every one).
 * Returns a row for each job this worker still held: its new state and,
 * when it awaits a retry, when that is due (a runtime logs it). NULL
 * job_ids: no rows. 22004 for NULL errors, a NULL in retry or a NULL
 * worker; 22023 when the arrays differ in length. qml.fail is this for one
 * job.
 */
CREATE FUNCTION qml.fail_batch(job_ids bigint[], worker text, errors text[],
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

/*
 * qml.fail: processing -> awaiting_retry (with backoff) while attempts
 * remain and retry is true, else -> failed. Returns the new state, or NULL
 * when the worker no longer holds the job.
 */
CREATE OR REPLACE FUNCTION qml.fail(job_id bigint, worker text, error text,
						 retry boolean DEFAULT true)
	RETURNS qml.job_state
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	RETURN (SELECT f.state
			  FROM qml.fail_batch(ARRAY[job_id], worker, ARRAY[error], ARRAY[retry]) f);

/*
 * qml.heartbeat: extends the leases this worker still holds; returns them.
 */
CREATE OR REPLACE FUNCTION qml.heartbeat(job_ids bigint[], worker text,
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

-- heartbeat was its last caller
DROP FUNCTION qml.check_lease(interval);

/*
 * qml.release: gives a held job back unrun (e.g. at shutdown); the attempt
 * it was fetched with is not counted.
 */
CREATE OR REPLACE FUNCTION qml.release(job_id bigint, worker text) RETURNS boolean
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

/*
 * qml.configure_queue: a queue's own history and retention; NULL means
 * "follow qml.history / qml.retention". 22023 for a retention that is
 * negative, mixes signs or is over 100 years.
 */
CREATE OR REPLACE FUNCTION qml.configure_queue(queue text, history boolean DEFAULT NULL,
									retention interval DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_name('queue', queue, 128);
	IF retention IS NOT NULL THEN
		PERFORM qml.check_duration('retention', retention, true);
	END IF;
	INSERT INTO qml.queues AS q (name, history, retention)
	VALUES (configure_queue.queue, configure_queue.history, configure_queue.retention)
	ON CONFLICT (name) DO UPDATE
		SET history = excluded.history, retention = excluded.retention;
END
$$;

/* ---------------------------------------------------------------------
 * Counts and statistics
 * --------------------------------------------------------------------- */

-- Both tables start empty, as in a fresh 1.1: with no basis recorded,
-- qml.state_counts() counts qml.jobs, and the scheduler's next pass builds
-- the table from qml.jobs (src/job_counts.c). Counting here would not help:
-- the basis names the server's shared memory, which only the library knows.
-- Jobs per queue and state, kept as jobs change and rolled up by the
-- scheduler (src/job_counts.c); the basis says which shared memory the
-- counts came from: when it is not the current one, the counts are built
-- again from qml.jobs. Not dumped: a restored database counts afresh.
CREATE TABLE qml.queue_state_counts (
	queue		text NOT NULL,
	state		qml.job_state NOT NULL,
	jobs		bigint NOT NULL,
	PRIMARY KEY (queue, state)
);
CREATE TABLE qml.queue_state_counts_basis (
	instance	bigint NOT NULL,
	losses		bigint NOT NULL
);

-- Internal: jobs per queue and state, from the counts where they are kept
-- and whole, else from a scan of qml.jobs.
CREATE FUNCTION qml.state_counts(OUT queue text, OUT state text, OUT jobs bigint)
	RETURNS SETOF record
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'qml_state_counts';

-- qml.stats returns a column more (oldest_waiting), so it is a new
-- function; the roles granted the old one are granted it below.
ALTER FUNCTION qml.stats(text) RENAME TO stats_1_0;

/*
 * qml.stats: jobs per queue and state (all queues, or one), and how long
 * the job at the head of the queue (the next one fetch hands out) has
 * been waiting. Where a scheduler serves the database the counts are kept
 * as jobs change (no scan of qml.jobs); elsewhere qml.jobs is counted.
 */
CREATE FUNCTION qml.stats(queue text DEFAULT NULL)
	RETURNS TABLE (queue text, paused boolean, scheduled bigint, enqueued bigint,
				   processing bigint, awaiting_retry bigint, succeeded bigint,
				   failed bigint, deleted bigint, oldest_waiting interval)
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(c.queue, q.name), coalesce(q.paused, false),
		   coalesce(c.scheduled, 0), coalesce(c.enqueued, 0),
		   coalesce(c.processing, 0), coalesce(c.awaiting_retry, 0),
		   coalesce(c.succeeded, 0), coalesce(c.failed, 0), coalesce(c.deleted, 0),
		   CASE WHEN c.enqueued > 0 THEN
				(SELECT now() - h.enqueued_at FROM qml.jobs h
				  WHERE h.queue = c.queue AND h.state = 'enqueued'
				  ORDER BY h.priority DESC, h.run_at, h.id LIMIT 1) END
	  FROM (SELECT s.queue,
				   sum(s.jobs) FILTER (WHERE s.state = 'scheduled')::bigint AS scheduled,
				   sum(s.jobs) FILTER (WHERE s.state = 'enqueued')::bigint AS enqueued,
				   sum(s.jobs) FILTER (WHERE s.state = 'processing')::bigint AS processing,
				   sum(s.jobs) FILTER (WHERE s.state = 'awaiting_retry')::bigint AS awaiting_retry,
				   sum(s.jobs) FILTER (WHERE s.state = 'succeeded')::bigint AS succeeded,
				   sum(s.jobs) FILTER (WHERE s.state = 'failed')::bigint AS failed,
				   sum(s.jobs) FILTER (WHERE s.state = 'deleted')::bigint AS deleted
			  FROM qml.state_counts() s
			 WHERE stats.queue IS NULL OR s.queue = stats.queue
			 GROUP BY s.queue) c
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
CREATE OR REPLACE FUNCTION qml.throughput(bucket_width interval DEFAULT '1 minute',
							   since interval DEFAULT '1 hour',
							   for_queue text DEFAULT NULL)
	RETURNS TABLE (bucket timestamptz, queue text, succeeded bigint, failed bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.check_duration('bucket_width', bucket_width, false);
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

/* ---------------------------------------------------------------------
 * Privileges
 * --------------------------------------------------------------------- */

-- Worker: fail_batch (new in 1.1) besides 1.0's calls.
CREATE OR REPLACE FUNCTION qml.grant_worker(role regrole) RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	RETURN qml.grant_to(role, ARRAY['qml.fetch(text,text[],integer,interval,interval,boolean)',
									'qml.complete(bigint,text,jsonb)',
									'qml.complete_batch(bigint[],text,jsonb[])',
									'qml.fail(bigint,text,text,boolean)',
									'qml.fail_batch(bigint[],text,text[],boolean[])',
									'qml.heartbeat(bigint[],text,interval)',
									'qml.release(bigint,text)',
									'qml.stats(text)', 'qml.throughput(interval,interval,text)'],
						false);

-- Admin: everything a producer and a worker may do, plus delete, requeue,
-- pause/resume, maintain, recurring jobs, and reading every table.
CREATE OR REPLACE FUNCTION qml.grant_admin(role regrole) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.grant_producer(role);
	PERFORM qml.grant_worker(role);
	PERFORM qml.grant_to(role, ARRAY['qml.delete(bigint)', 'qml.requeue(bigint)',
									 'qml.pause_queue(text)', 'qml.resume_queue(text)',
									 'qml.configure_queue(text,boolean,interval)',
									 'qml.maintain()', 'qml.scheduler_slot_wait_since()',
									 'qml.add_recurring(text,text,text,jsonb,text,integer,integer,text)',
									 'qml.remove_recurring(text)', 'qml.run_recurring(text)'],
						 true);
END
$$;

-- Takes back every right on qml from a role.
CREATE OR REPLACE FUNCTION qml.revoke_all(role regrole) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA qml FROM %s', role);
	EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA qml FROM %s', role);
	EXECUTE format('REVOKE ALL ON SCHEMA qml FROM %s', role);
END
$$;

/* ---------------------------------------------------------------------
 * Recurring jobs
 * --------------------------------------------------------------------- */

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
 * argument; 22001 name/method/queue/schedule/timezone too long (200,
 * 1000, 128, 1000, 255 characters); 23505 the name exists.
 */
CREATE OR REPLACE FUNCTION qml.add_recurring(name text, schedule text, method text,
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
	-- a cron line or interval is short; the parser's message repeats it
	PERFORM qml.check_name('schedule', add_recurring.schedule, 1000);
	IF add_recurring.timezone IS NOT NULL THEN
		PERFORM qml.check_name('timezone', add_recurring.timezone, 255);
	END IF;
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
 * qml.run_recurring: enqueues a recurring job's job once now, outside its
 * schedule (next_run_at and last_run_at do not move: they describe the
 * schedule). Returns the new job's id; P0002 when there is no recurring
 * job of that name.
 */
CREATE FUNCTION qml.run_recurring(name text) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r qml.recurring;
BEGIN
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

/*
 * qml.scheduler_slot_wait_since() returns timestamptz
 * Since when this database's scheduler has been waiting for a free
 * background worker slot (raise max_worker_processes); NULL when it is not
 * waiting, or when the library is not preloaded. qml status shows it.
 */
CREATE FUNCTION qml.scheduler_slot_wait_since() RETURNS timestamptz
	LANGUAGE c VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_scheduler_slot_wait_since';

/* ---------------------------------------------------------------------
 * What the update carries over
 * --------------------------------------------------------------------- */

-- Roles granted a right under 1.0 get what the grant functions give at
-- 1.1: qml.stats to those who had it, qml.run_recurring and
-- qml.scheduler_slot_wait_since to those who may remove recurring jobs
-- (admins), qml.fail_batch to those who may call qml.fail (workers),
-- SELECT on the new tables to those who
-- may read qml.jobs (admins).
DO $$
DECLARE
	g record;
BEGIN
	FOR g IN
		SELECT e.grantee::regrole AS role, e.is_grantable, x.target
		  FROM (VALUES ('qml.stats_1_0(text)'::regprocedure, 'FUNCTION qml.stats(text)'),
					   ('qml.remove_recurring(text)'::regprocedure, 'FUNCTION qml.run_recurring(text)'),
					   ('qml.remove_recurring(text)'::regprocedure, 'FUNCTION qml.scheduler_slot_wait_since()'),
					   ('qml.fail(bigint,text,text,boolean)'::regprocedure,
						'FUNCTION qml.fail_batch(bigint[],text,text[],boolean[])')) x(fn, target),
			   pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) e
		 WHERE p.oid OPERATOR(pg_catalog.=) x.fn
		   AND e.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND e.grantee NOT IN (0, p.proowner)
		UNION ALL
		SELECT e.grantee::regrole, e.is_grantable, 'TABLE ' || t.name
		  FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) e,
			   unnest(ARRAY['qml.table_shapes', 'qml.queue_state_counts',
							'qml.queue_state_counts_basis']) t(name)
		 WHERE c.oid OPERATOR(pg_catalog.=) 'qml.jobs'::regclass
		   AND e.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		   AND e.grantee NOT IN (0, c.relowner)
	LOOP
		-- a regrole prints as a quoted identifier already: %s, not %I
		EXECUTE format(CASE WHEN g.target LIKE 'FUNCTION %' THEN 'GRANT EXECUTE ON %s TO %s%s'
							ELSE 'GRANT SELECT ON %s TO %s%s' END,
					   g.target, g.role,
					   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;
DROP FUNCTION qml.stats_1_0(text);

-- The leases taken under 1.0 recorded no role, and a lease without one is
-- an admin's alone (src/lease_role.c). A session lease whose session still
-- runs was taken by that session's user, which gets it; other leases end
-- as leases do (completed by an admin, or rescued when they expire).
UPDATE qml.jobs j SET locked_role = a.usesysid
  FROM pg_catalog.pg_stat_activity a
 WHERE j.state OPERATOR(pg_catalog.=) 'processing'
   AND a.pid OPERATOR(pg_catalog.=) j.lease_pid
   AND a.backend_start OPERATOR(pg_catalog.=) j.lease_session;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA qml FROM PUBLIC;

-- Last: the shapes of qml.jobs and qml.job_events as this script left them
-- (see qml.table_shape).
INSERT INTO qml.table_shapes (relname, shape)
SELECT c.relname, qml.table_shape(c.oid)
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'qml'::regnamespace
   AND c.relname OPERATOR(pg_catalog.=) ANY ('{jobs,job_events}');

