/*
 * sql_edition/triggers.sql
 *	  The triggers on qml.jobs and qml.queues (src/job_trigger.c,
 *	  src/job_history.c) in PL/pgSQL: stamps, the lease invariant, history
 *	  and wakeups, row by row.
 *
 * The C edition gathers a statement's history into one INSERT and sends a
 * NOTIFY only while a worker waits; here each change writes its event row
 * at once and every job that becomes enqueued notifies its queue
 * (PostgreSQL folds the duplicates of a transaction). The statement
 * triggers keep their names and do nothing: there are no per-session
 * caches or shared-memory counts to flush or invalidate.
 */

/*
 * BEFORE INSERT OR UPDATE, per row. A timestamp is stamped with the clock
 * unless the statement set it itself (an admin's explicit value wins);
 * only a processing job has a lease. Updates are recorded here, inserts by
 * qml.jobs_record (a BEFORE INSERT trigger also sees rows ON CONFLICT DO
 * NOTHING skips).
 */
CREATE FUNCTION qml.jobs_stamp() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	now_ timestamptz := clock_timestamp();
	was qml.job_state;
	final constant qml.job_state[] := '{succeeded,failed,deleted}';
BEGIN
	IF TG_OP = 'INSERT' THEN
		IF NEW.max_attempts IS NULL THEN
			NEW.max_attempts := CASE WHEN coalesce(current_setting('qml.default_max_attempts', true), '') = ''
									 THEN 20
									 ELSE qml.setting('qml.default_max_attempts', '20')::integer END;
		END IF;
	ELSE
		was := OLD.state;
		IF NEW.state IS NOT DISTINCT FROM was OR NEW.state IS NULL THEN
			RETURN NEW;		-- a heartbeat, or an admin's update
		END IF;
	END IF;
	IF NEW.state = 'enqueued' AND (NEW.enqueued_at IS NULL OR
			(TG_OP = 'UPDATE' AND NEW.enqueued_at IS NOT DISTINCT FROM OLD.enqueued_at)) THEN
		NEW.enqueued_at := now_;
	ELSIF NEW.state = 'processing' AND (NEW.started_at IS NULL OR
			(TG_OP = 'UPDATE' AND NEW.started_at IS NOT DISTINCT FROM OLD.started_at)) THEN
		NEW.started_at := now_;
	END IF;
	IF NEW.state = ANY (final) THEN
		IF NEW.finished_at IS NULL OR
		   (TG_OP = 'UPDATE' AND NEW.finished_at IS NOT DISTINCT FROM OLD.finished_at) THEN
			NEW.finished_at := now_;
		END IF;
	ELSIF was = ANY (final) THEN
		NEW.finished_at := NULL;
	END IF;
	IF was = 'processing' AND NEW.state <> 'processing' THEN
		NEW.locked_by := NULL;
		NEW.locked_until := NULL;
		NEW.lease_pid := NULL;
		NEW.lease_session := NULL;
		NEW.locked_role := NULL;
	END IF;
	IF TG_OP = 'UPDATE' THEN
		PERFORM qml.job_changed(NEW.id, NEW.queue, was, NEW.state,
			coalesce(NEW.locked_by, OLD.locked_by),
			CASE WHEN NEW.state IN ('failed', 'awaiting_retry') THEN NEW.last_error
				 -- a rescue that runs the job again says why; a release keeps
				 -- an earlier attempt's error, which is not this change's
				 WHEN was = 'processing' AND NEW.state = 'enqueued'
					  AND NEW.last_error IS DISTINCT FROM OLD.last_error THEN NEW.last_error
			END);
	END IF;
	RETURN NEW;
END
$$;

-- AFTER INSERT, per row: the rows really inserted
CREATE FUNCTION qml.jobs_record() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM qml.job_changed(NEW.id, NEW.queue, NULL, NEW.state, NULL, NULL);
	RETURN NULL;
END
$$;

CREATE FUNCTION qml.jobs_flush() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN NULL;	-- each row's history is written by its row trigger
END
$$;

CREATE FUNCTION qml.jobs_count_delete() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN NULL;	-- qml.stats() counts qml.jobs: no counts to keep
END
$$;

CREATE FUNCTION qml.queues_changed() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN NULL;	-- the history setting is read from qml.queues each time
END
$$;

-- @after-schema

/*
 * Internal to the SQL edition: a job's change of state, recorded in
 * qml.job_events unless its queue (or else qml.history) turns history off,
 * and a job that became enqueued wakes its queue's workers at commit
 * unless qml.wakeups is off.
 */
CREATE FUNCTION qml.job_changed(job_id bigint, queue text, from_state qml.job_state,
								to_state qml.job_state, worker text, error text)
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- per row: qml.setting() only when the setting is there at all (a call
	-- with SET search_path costs more than the lookup)
	IF coalesce((SELECT q.history FROM qml.queues q WHERE q.name = job_changed.queue),
				CASE WHEN coalesce(current_setting('qml.history', true), '') <> ''
					 THEN qml.setting('qml.history', NULL)::boolean END, true) THEN
		INSERT INTO qml.job_events (job_id, from_state, to_state, worker, error)
		VALUES (job_id, from_state, to_state, worker, error);
	END IF;
	IF to_state = 'enqueued' THEN
		PERFORM qml.wake_waiting(queue);
	END IF;
END
$$;

/*
 * Internal to the SQL edition: NOTIFY qml, '<queue>' at commit, when a
 * fetch on the queue came back empty since the last one (qml.wakeups = on,
 * the default), always (always) or never (off). A transaction that
 * notifies holds a lock of the whole cluster from its commit's start to
 * its end, flush included, so notifying every enqueue would serialize all
 * producers' commits; as in the C edition, only waiting workers are woken.
 * SKIP LOCKED: when another transaction is already waking the queue, this
 * one need not.
 */
CREATE FUNCTION qml.wake_waiting(queue text) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mode text := qml.setting('qml.wakeups', 'on');
BEGIN
	IF mode = 'always' THEN
		PERFORM pg_notify('qml', queue);
	ELSIF mode <> 'off' THEN
		DELETE FROM qml.waiting w
		 WHERE w.ctid = (SELECT x.ctid FROM qml.waiting x WHERE x.queue = wake_waiting.queue
						 FOR UPDATE SKIP LOCKED);
		IF FOUND THEN
			PERFORM pg_notify('qml', queue);
		END IF;
	END IF;
END
$$;

-- Internal to the SQL edition: the queues a fetch found empty since the last
-- wakeup (see qml.wake_waiting). Unlogged: after a crash every worker looks
-- again anyway.
CREATE UNLOGGED TABLE qml.waiting (
	queue		text PRIMARY KEY
);
