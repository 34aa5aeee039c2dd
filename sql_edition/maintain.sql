/*
 * sql_edition/maintain.sql
 *	  The scheduler's pass (src/maintain.c) as one PL/pgSQL function, and
 *	  the internal helpers the C edition's background worker and shared
 *	  memory answer.
 *
 * There is no background worker: something must call qml.maintain() about
 * every second. libqml's worker runtime does (client/src/
 * maintenance_tick.c), one runtime at a time, elected by an advisory lock;
 * cron, pg_cron or any loop calling it works as well. Every step claims its
 * rows with SKIP LOCKED, so passes may overlap.
 */

/*
 * qml.maintain(): one pass: promote due scheduled and retrying jobs,
 * rescue jobs whose lease expired, fire due recurring jobs, prune finished
 * jobs past their retention. Returns what it did, e.g.
 * {"promoted": 3, "rescued": 0, "fired": 1, "pruned": 120}.
 */
CREATE FUNCTION qml.maintain() RETURNS jsonb
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	batch integer := qml.setting('qml.maintain_batch', '10000')::integer;
	keep interval := qml.setting_interval('qml.retention', interval '1 second',
											   interval '1 day');
	prune_failed boolean := qml.setting_on('qml.prune_failed', false);
	promoted bigint;
	rescued bigint;
	fired integer;
	pruned bigint;
BEGIN
	-- a thousand at a time: a fetch skips the jobs a pass holds
	WITH due AS (
		SELECT j.id FROM qml.jobs j
		 WHERE j.state IN ('scheduled', 'awaiting_retry') AND j.run_at <= now()
		 ORDER BY j.run_at LIMIT least(batch, 1000) FOR UPDATE SKIP LOCKED)
	UPDATE qml.jobs j SET state = 'enqueued' FROM due WHERE j.id = due.id;
	GET DIAGNOSTICS promoted = ROW_COUNT;

	-- a lease that ran out: the job backs off like a fail(), its worker may
	-- still be running it
	WITH gone AS (
		SELECT j.id FROM qml.jobs j
		 WHERE j.state = 'processing' AND j.locked_until < now()
		 ORDER BY j.locked_until LIMIT batch FOR UPDATE SKIP LOCKED)
	UPDATE qml.jobs j
	   SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed'
						ELSE 'awaiting_retry' END::qml.job_state,
		   run_at = CASE WHEN j.attempts >= j.max_attempts THEN j.run_at
						 ELSE now() + qml.retry_delay(j.attempts, j.backoff_base, j.backoff_cap) END,
		   last_error = 'lease expired on worker ' || j.locked_by
	  FROM gone WHERE j.id = gone.id;
	GET DIAGNOSTICS rescued = ROW_COUNT;

	fired := qml.fire_recurring(batch);

	-- finished jobs older than their queue's retention go, with their history
	WITH old AS (
		SELECT j.id FROM qml.jobs j
		  LEFT JOIN qml.queues q ON q.name = j.queue
		 WHERE j.state IN ('succeeded', 'failed', 'deleted')
		   AND (prune_failed OR j.state <> 'failed')
		   AND j.finished_at < (SELECT now() - least(keep, (SELECT min(q2.retention) FROM qml.queues q2)))
		   AND j.finished_at < now() - coalesce(q.retention, keep)
		 LIMIT least(batch, 1000) FOR UPDATE OF j SKIP LOCKED),
	gone AS (DELETE FROM qml.jobs j USING old WHERE j.id = old.id RETURNING j.id),
	events AS (DELETE FROM qml.job_events e USING gone WHERE e.job_id = gone.id)
	SELECT count(*) INTO pruned FROM gone;

	RETURN jsonb_build_object('promoted', promoted, 'rescued', rescued,
							  'fired', fired, 'pruned', pruned);
END
$$;

-- Jobs per queue and state: counted from qml.jobs (no shared memory).
CREATE FUNCTION qml.state_counts(OUT queue text, OUT state text, OUT jobs bigint)
	RETURNS SETOF record
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT j.queue, j.state::text, count(*) FROM qml.jobs j GROUP BY j.queue, j.state
$$;

-- Whether a session still runs (only claims with a session lease ask,
-- which the SQL edition does not make).
CREATE FUNCTION qml.session_alive(pid integer, started timestamptz) RETURNS boolean
	LANGUAGE sql STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT EXISTS (SELECT 1 FROM pg_stat_activity a
				WHERE a.pid = session_alive.pid AND a.backend_start = started)
$$;

-- No scheduler to wake: the next qml.maintain() looks.
CREATE FUNCTION qml.wake_scheduler(at timestamptz) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT
$$;

-- Tells a queue's idle workers at commit that it may have work.
CREATE FUNCTION qml.wake_queue(queue text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_notify('qml', queue) WHERE qml.setting('qml.wakeups', 'on') <> 'off'
$$;

-- No per-minute roll-up: qml.throughput reads qml.jobs.
CREATE FUNCTION qml.stats_live() RETURNS boolean
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT false
$$;

-- No scheduler waits for a background worker slot: the runtimes maintain.
CREATE FUNCTION qml.scheduler_slot_wait_since() RETURNS timestamptz
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT NULL::timestamptz
$$;

-- @additions

/*
 * qml.edition(): 'sql' in the SQL edition (the extension has no such
 * function). libqml's runtime looks for it to know it must run the
 * maintenance passes itself.
 */
CREATE FUNCTION qml.edition() RETURNS text
	LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT 'sql'::text
$$;
