/*
 * qml--1.3--1.4.sql
 *	  Updates a database's qml from version 1.3 to 1.4 (ALTER EXTENSION qml
 *	  UPDATE TO '1.4'; 1.3 stays the default). It leaves the catalog
 *	  CREATE EXTENSION qml VERSION '1.4' makes (test/upgrade/catalog.sh
 *	  compares the two, grants included). The definitions below are
 *	  qml--1.4.sql's, with their comments; what is only here says why.
 *
 * 1.4 makes qml.jobs a ring of list partitions (docs/partitions.md,
 * "Schema 1.4"). A plain table cannot become a partitioned one, so the
 * update builds the new qml.jobs beside the old one and copies every row,
 * each column as it was (ids, history, leases): the unfinished jobs
 * (scheduled, enqueued, processing, awaiting_retry) into slot 0, the
 * current slot of generation 0, and the finished ones (succeeded, failed,
 * deleted) into qml.jobs_archive, where a rotation would put them (so that
 * the first rotation of slot 0 has no finished jobs to move, under its
 * ACCESS EXCLUSIVE lock, while workers run). No row trigger fires for the
 * copy (the new table has none yet): no history is added, no wakeup sent,
 * and the counts (qml.queue_state_counts) stay as they were, exact. The
 * identity sequence is the new table's, set to the old one's position, so
 * that no id is handed out twice (ids a session had cached from the old
 * sequence are never used: its nextval() names the new one). The live
 * keys go to qml.job_keys. Grants on the old table, its sequence, the
 * view qml.job_events and qml.fetch (whose result is qml.jobs' row type,
 * so it is made again) are given again on the new ones, to every
 * partition and, for SELECT, to qml.generations and qml.job_keys, as
 * qml.grant_admin gives on a fresh 1.4; roles that may call qml.maintain()
 * may call qml.rotate().
 *
 * The update holds qml.jobs ACCESS EXCLUSIVE for the copy: producers,
 * workers and the scheduler wait for it (docs/upgrading.md says how
 * long). What an admin put on the old table (indexes, triggers, rules,
 * policies of their own) goes with it. Run it with a library that serves
 * 1.4 (src/catalog.c).
 */

\echo Use "ALTER EXTENSION qml UPDATE TO '1.4'" to load this file. \quit

-- The table this script replaces, first, as the API takes it.
LOCK TABLE qml.jobs IN ACCESS EXCLUSIVE MODE;

/* ---------------------------------------------------------------------
 * The old qml.jobs steps aside: the table, its indexes (whose names the
 * new ones take), its identity sequence, the view over it and qml.fetch
 * (which returns its row type) are renamed, and dropped at the end, once
 * their rows and grants are copied.
 * --------------------------------------------------------------------- */

ALTER TABLE qml.jobs RENAME TO jobs_1_3;
ALTER SEQUENCE qml.jobs_id_seq RENAME TO jobs_1_3_id_seq;
ALTER VIEW qml.job_events RENAME TO job_events_1_3;
ALTER FUNCTION qml.fetch(text, text[], integer, interval, interval, boolean) RENAME TO fetch_1_3;
-- (the names of CHECK constraints are chosen unique in the schema, so
-- the old ones are renamed too, else the new ones would end in 1)
DO $$
DECLARE
	i regclass;
	k name;
BEGIN
	FOR i IN SELECT x.indexrelid::regclass FROM pg_catalog.pg_index x
			  WHERE x.indrelid = 'qml.jobs_1_3'::regclass LOOP
		EXECUTE format('ALTER INDEX %s RENAME TO %I', i,
					   left((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = i), 50) || '_1_3');
	END LOOP;
	FOR k IN SELECT c.conname FROM pg_catalog.pg_constraint c
			  WHERE c.conrelid = 'qml.jobs_1_3'::regclass AND c.contype = 'c' LOOP
		EXECUTE format('ALTER TABLE qml.jobs_1_3 RENAME CONSTRAINT %I TO %I', k,
					   left(k, 50) || '_1_3');
	END LOOP;
END
$$;

-- The ring (docs/partitions.md): time is cut into generations of
-- qml.generation_length; generation g keeps its new jobs in slot g mod 19
-- of qml.jobs. One row per slot that has held a generation: the
-- generation it holds, the first id the identity handed out in it (ids
-- stay plain sequence values: a JavaScript number holds them), and when
-- it opened. The current generation is the highest. qml.rotate() opens
-- the next one.
CREATE TABLE qml.generations (
	slot		smallint PRIMARY KEY CHECK (slot BETWEEN 0 AND 18),
	generation	bigint NOT NULL UNIQUE CHECK (generation >= 0),
	first_id	bigint NOT NULL,
	opened_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO qml.generations (slot, generation, first_id) VALUES (0, 0, 1);

-- The slot a new job goes into: the current generation's. C
-- (src/generations.c): it waits for a rotation under way to commit and
-- reads the table with the latest snapshot, so that a job inserted while
-- a rotation empties a slot goes into the generation it opens.
CREATE FUNCTION qml.current_slot() RETURNS smallint
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'qml_current_slot';

CREATE TABLE qml.jobs (
	id			bigint GENERATED ALWAYS AS IDENTITY (CACHE 32),
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
	lease_session timestamptz,	-- ... and its start time (NULL: time lease only)
	locked_role oid,			-- the role that claimed it (src/lease_role.c)
	history		bytea,			-- its state changes (src/history_inline.c)
	slot		smallint NOT NULL DEFAULT qml.current_slot(),	-- its partition
	PRIMARY KEY (id, slot)
) PARTITION BY LIST (slot);

-- The ring's 19 slots, qml.jobs_00 to qml.jobs_18, and qml.jobs_archive
-- (slot -1): finished jobs still within their retention whose slot came
-- round again, pruned by DELETE as before. The storage parameters are
-- each partition's (a partitioned table has no storage).
DO $$
BEGIN
	FOR i IN 0..18 LOOP
		EXECUTE format('CREATE TABLE qml.%I PARTITION OF qml.jobs FOR VALUES IN (%s)'
					   ' WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01,'
					   ' autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0,'
					   ' autovacuum_analyze_scale_factor = 0.02)',
					   'jobs_' || lpad(i::text, 2, '0'), i);
	END LOOP;
END
$$;
CREATE TABLE qml.jobs_archive PARTITION OF qml.jobs FOR VALUES IN (-1);

-- Every job of 1.3, as it was: the live ones in the current slot, the
-- finished ones in the archive (see the top of this file).
INSERT INTO qml.jobs (id, queue, method, arguments, priority, state, attempts,
					  max_attempts, run_at, created_at, enqueued_at, started_at,
					  finished_at, locked_by, locked_until, last_error, result,
					  unique_key, backoff_base, backoff_cap, lease_pid,
					  lease_session, locked_role, history, slot)
OVERRIDING SYSTEM VALUE
SELECT id, queue, method, arguments, priority, state, attempts,
	   max_attempts, run_at, created_at, enqueued_at, started_at,
	   finished_at, locked_by, locked_until, last_error, result,
	   unique_key, backoff_base, backoff_cap, lease_pid,
	   lease_session, locked_role, history,
	   CASE WHEN state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry')
			THEN 0 ELSE -1 END
  FROM qml.jobs_1_3;
-- The sequence goes on where the old one was.
SELECT pg_catalog.setval('qml.jobs_id_seq', s.last_value, s.is_called)
  FROM qml.jobs_1_3_id_seq s;

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
-- No deduplication: its key ends with the unique id, so no two entries
-- are ever equal, and btree would try (and fail) to deduplicate a full
-- leaf page before every split of it.
CREATE INDEX jobs_fetch_idx ON qml.jobs (queue, priority DESC, run_at, id)
	WITH (deduplicate_items = off)
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
-- At most one live job per unique_key in a queue: a key is its queue's
-- (what the queue's producers expect, and what a table distributed by queue
-- can enforce). A unique index of a partitioned table must hold the
-- partition key, and so would hold per slot only: the live keys are kept
-- in a table of their own instead, by the trigger jobs_keys below, and
-- enqueue with a key takes the key first (src/producer_api.c).
CREATE TABLE qml.job_keys (
	queue		text NOT NULL,
	unique_key	text NOT NULL,
	job_id		bigint NOT NULL,
	PRIMARY KEY (queue, unique_key)
);
-- The live keys 1.3's unique index held (unique per queue, so they fit).
INSERT INTO qml.job_keys (queue, unique_key, job_id)
SELECT j.queue, j.unique_key, j.id FROM qml.jobs j
 WHERE j.unique_key IS NOT NULL
   AND j.state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry');

-- Every change has an id from qml.job_events_id_seq, as every row of the
-- table had: the rows recorded before 1.2 keep theirs. Ids are not in time
-- order across sessions (each takes blocks of 32); a job's changes are in
-- the order of ordinal, NULL for the rows recorded before 1.2.
CREATE VIEW qml.job_events AS
SELECT e.id, e.job_id, e.from_state, e.to_state, e.at, e.worker, e.error,
	   NULL::bigint AS ordinal
  FROM qml.job_events_1_1 e
UNION ALL
SELECT h.id, j.id, h.from_state, h.to_state, h.at, h.worker, h.error, h.ordinal
  FROM qml.jobs j CROSS JOIN LATERAL qml.history_events(j.history) h;

-- pg_dump dumps the rows of every table holding user data and the values
-- of the identity sequences (without them a restored database would hand
-- out ids its jobs already have). A restore loads the rows as they are:
-- the triggers record nothing for a COPY into qml.jobs (job_trigger.c).
SELECT pg_catalog.pg_extension_config_dump('qml.jobs', '');
-- A partitioned table has no rows of its own: pg_dump dumps each
-- partition's. qml.generations and qml.job_keys are not dumped: a
-- restored database starts its ring afresh at generation 0 (its jobs stay
-- in their slots and move when their slot comes round), and the trigger
-- jobs_keys takes each restored live job's key again as its row is loaded.
DO $$
BEGIN
	FOR i IN 0..18 LOOP
		PERFORM pg_catalog.pg_extension_config_dump(
			format('qml.%I', 'jobs_' || lpad(i::text, 2, '0'))::regclass, '');
	END LOOP;
END
$$;
SELECT pg_catalog.pg_extension_config_dump('qml.jobs_archive', '');
SELECT pg_catalog.pg_extension_config_dump('qml.jobs_id_seq', '');

-- The triggers of 1.3, on the new table (their functions are kept).
CREATE TRIGGER jobs_stamp_insert BEFORE INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_stamp_update BEFORE UPDATE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_record_insert AFTER INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_record();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_count_delete();
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON qml.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION qml.jobs_count_delete();

-- The live keys (qml.job_keys): a job that becomes live with a key takes
-- it, 23505 when another live job of its queue has it (the unique index's
-- error in 1.3); a job that stops being live, or goes, gives it back. The
-- key an enqueue took for the job itself (src/producer_api.c) is its own.
CREATE FUNCTION qml.jobs_keys() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	live CONSTANT qml.job_state[] := '{scheduled,enqueued,processing,awaiting_retry}';
	had boolean := TG_OP <> 'INSERT' AND OLD.unique_key IS NOT NULL AND OLD.state = ANY (live);
	has boolean := TG_OP <> 'DELETE' AND NEW.unique_key IS NOT NULL AND NEW.state = ANY (live);
BEGIN
	IF had AND has AND OLD.queue = NEW.queue AND OLD.unique_key = NEW.unique_key
	   AND OLD.id = NEW.id THEN
		RETURN NULL;
	END IF;
	IF had THEN
		DELETE FROM qml.job_keys k
		 WHERE k.queue = OLD.queue AND k.unique_key = OLD.unique_key AND k.job_id = OLD.id;
	END IF;
	IF has THEN
		INSERT INTO qml.job_keys AS k (queue, unique_key, job_id)
		VALUES (NEW.queue, NEW.unique_key, NEW.id)
		ON CONFLICT (queue, unique_key) DO NOTHING;
		IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM qml.job_keys k
									  WHERE k.queue = NEW.queue
										AND k.unique_key = NEW.unique_key
										AND k.job_id = NEW.id) THEN
			RAISE EXCEPTION 'duplicate key value violates unique constraint "job_keys_pkey"'
				USING ERRCODE = 'unique_violation',
					  DETAIL = format('Another live job of queue %s has unique_key %s.',
									  NEW.queue, NEW.unique_key),
					  SCHEMA = 'qml', TABLE = 'job_keys', CONSTRAINT = 'job_keys_pkey';
		END IF;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER jobs_keys AFTER INSERT OR UPDATE OR DELETE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_keys();
CREATE FUNCTION qml.jobs_keys_truncate() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	TRUNCATE qml.job_keys;
	RETURN NULL;
END
$$;
CREATE TRIGGER jobs_keys_truncate AFTER TRUNCATE ON qml.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION qml.jobs_keys_truncate();
-- qml.stats reads the new table (a body of BEGIN ATOMIC names the table
-- it was made with): made again in place, which keeps its grants.
/*
 * qml.stats: jobs per queue and state (all queues, or one), and how long
 * the job at the head of the queue (the next one fetch hands out) has
 * been waiting. Where a scheduler serves the database the counts are kept
 * as jobs change (no scan of qml.jobs); elsewhere qml.jobs is counted.
 */
CREATE OR REPLACE FUNCTION qml.stats(queue text DEFAULT NULL)
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
 * qml.fetch, made again: it returns the new qml.jobs' row type (the
 * column slot last), which the old function's was not.
 *
 * qml.fetch: claims up to `batch` (1..1000) enqueued jobs for `worker`,
 * queues in the order given, then higher priority, then oldest first.
 * Paused queues yield nothing. Rows locked by other sessions are skipped,
 * never waited for. Errors: 22004 a NULL argument or queue, 22023 empty worker,
 * bad batch, lease not positive, empty queues, negative wait; 22001 worker
 * too long; 0A000 wait in a REPEATABLE READ or SERIALIZABLE transaction.
 *
 * wait: when nothing is there, block in the server until a commit makes a
 * job of these queues enqueued (or a promotion does), at most this long;
 * cancel and terminate interrupt it. session_lease: the jobs are also
 * rescued as soon as this session ends. Off by default, since a worker may
 * fetch on one connection and complete on another (psql -c, a pooler, a
 * driver per request); a runtime that keeps its connection, as libqml's
 * does, turns it on. Both need the library preloaded; without it a wait
 * polls and the lease alone applies.
 */
CREATE FUNCTION qml.fetch(worker text, queues text[] DEFAULT '{default}',
						  batch integer DEFAULT 1,
						  lease interval DEFAULT '5 minutes',
						  wait interval DEFAULT NULL,
						  session_lease boolean DEFAULT false)
	RETURNS SETOF qml.jobs
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fetch';

/* ---------------------------------------------------------------------
 * The ring's rotation (docs/partitions.md, "Schema 1.4")
 * --------------------------------------------------------------------- */

/*
 * qml.rotate_slots: internal, the rotation qml.rotate() and each
 * scheduler pass run (src/generations.c passes the settings). When the
 * current generation is older than generation_length seconds, the slot
 * of the next one is emptied and the next generation opened there, in
 * this transaction: finished jobs past their retention are deleted as
 * prune deletes them (the row trigger counts them out), the slot's
 * unfinished jobs move to the current slot and its other finished jobs to
 * qml.jobs_archive (qml.rotate_move), and the slot is truncated. Returns
 * the current generation's row, the new one when it rotated.
 *
 * Its locks are waited for 200 ms at most, else it leaves the ring as it
 * is until the next pass (the current generation lasts longer, which
 * harms nothing): while a lock request waits, every statement that needs
 * the table queues behind it, and a transaction left open after any
 * UPDATE of qml.jobs (which locks every partition) would stop every
 * claim and completion for as long as it stays open.
 */
CREATE FUNCTION qml.rotate_slots(retention_s float8, prune_failed boolean,
								 generation_length float8)
	RETURNS qml.generations
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cur qml.generations;
	next_slot smallint;
	part text;
	timeout text := current_setting('lock_timeout');
BEGIN
	SELECT * INTO cur FROM qml.generations g ORDER BY g.generation DESC LIMIT 1;
	IF cur.opened_at > clock_timestamp() - make_interval(secs => generation_length) THEN
		RETURN cur;
	END IF;
	BEGIN
		-- (undone with the block when a lock is not granted)
		PERFORM set_config('lock_timeout', '200ms', true);
		-- one rotation at a time; qml.current_slot() waits for this one to end
		LOCK TABLE qml.generations IN EXCLUSIVE MODE;
		-- again under the lock: another rotation may have committed
		SELECT * INTO cur FROM qml.generations g ORDER BY g.generation DESC LIMIT 1;
		IF cur.opened_at <= clock_timestamp() - make_interval(secs => generation_length) THEN
			next_slot := (cur.generation + 1) % 19;
			part := format('qml.%I', 'jobs_' || lpad(next_slot::text, 2, '0'));
			EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', part);
		END IF;
		-- the caller's lock_timeout again, whether it rotates or not (the
		-- block's end keeps what it set)
		PERFORM set_config('lock_timeout', timeout, true);
	EXCEPTION WHEN lock_not_available THEN
		RETURN cur;
	END;
	IF part IS NULL THEN
		RETURN cur;		-- another rotation opened it meanwhile
	END IF;
	EXECUTE format($q$DELETE FROM %s j
		 WHERE j.state = ANY ('{succeeded,failed,deleted}'::qml.job_state[])
		   AND ($2 OR j.state <> 'failed')
		   AND j.finished_at < now() - coalesce((SELECT q.retention FROM qml.queues q
												  WHERE q.name = j.queue),
												 make_interval(secs => $1))$q$, part)
		USING retention_s, prune_failed;
	PERFORM qml.rotate_move(next_slot, cur.slot);
	INSERT INTO qml.generations AS g (slot, generation, first_id, opened_at)
	VALUES (next_slot, cur.generation + 1,
			coalesce(pg_sequence_last_value('qml.jobs_id_seq'), 0) + 1, clock_timestamp())
	ON CONFLICT (slot) DO UPDATE
		SET generation = excluded.generation, first_id = excluded.first_id,
			opened_at = excluded.opened_at
	RETURNING g.* INTO cur;
	RETURN cur;
END
$$;

/*
 * qml.rotate_move: internal, a step of qml.rotate_slots. Moves what is
 * left in slot from_slot (locked ACCESS EXCLUSIVE by the caller): its
 * unfinished jobs to slot to_slot, the rest (finished, within retention)
 * to qml.jobs_archive, every column as it is, and truncates the slot. The
 * jobs neither change nor come or go, so qml's row triggers must not act
 * (no history, no wakeup, no count): session_replication_role = replica
 * keeps them from firing, for this function only.
 */
CREATE FUNCTION qml.rotate_move(from_slot smallint, to_slot smallint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET session_replication_role = replica
AS $$
DECLARE
	cols text;
	from_part text := format('qml.%I', 'jobs_' || lpad(from_slot::text, 2, '0'));
	to_part text := format('qml.%I', 'jobs_' || lpad(to_slot::text, 2, '0'));
BEGIN
	SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
	  FROM pg_attribute a
	 WHERE a.attrelid = 'qml.jobs'::regclass AND a.attnum > 0
	   AND NOT a.attisdropped AND a.attname <> 'slot';
	EXECUTE format('INSERT INTO %s (%s, slot) SELECT %s, %s FROM %s j'
				   ' WHERE j.state = ANY (''{scheduled,enqueued,processing,awaiting_retry}''::qml.job_state[])',
				   to_part, cols, cols, to_slot, from_part);
	EXECUTE format('INSERT INTO qml.jobs_archive (%s, slot) SELECT %s, -1 FROM %s j'
				   ' WHERE j.state = ANY (''{succeeded,failed,deleted}''::qml.job_state[])',
				   cols, cols, from_part);
	EXECUTE format('TRUNCATE %s', from_part);
END
$$;

/*
 * qml.rotate() returns bigint: opens the next generation of the ring if
 * the current one is older than qml.generation_length (0: always), as
 * every scheduler pass does. Returns the current generation. Admins may
 * call it.
 */
CREATE FUNCTION qml.rotate() RETURNS bigint
	LANGUAGE c SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_rotate';

-- Admins may rotate (qml.grant_admin below gives it from now on).
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
									 'qml.maintain()', 'qml.rotate()',
									 'qml.scheduler_slot_wait_since()',
									 'qml.add_recurring(text,text,text,jsonb,text,integer,integer,text)',
									 'qml.remove_recurring(text)', 'qml.run_recurring(text)'],
						 true);
END
$$;

/* ---------------------------------------------------------------------
 * Privileges: the new objects get what the old ones had, as a fresh 1.4
 * after the same qml.grant_* calls; then the old objects go.
 * --------------------------------------------------------------------- */

-- The new functions start, as every function of a fresh 1.4, without
-- EXECUTE for PUBLIC (REVOKE ... ON ALL FUNCTIONS would also take back
-- what an admin granted PUBLIC on the others since).
REVOKE EXECUTE ON FUNCTION qml.current_slot(), qml.jobs_keys(), qml.jobs_keys_truncate(),
	qml.fetch(text, text[], integer, interval, interval, boolean),
	qml.rotate_slots(float8, boolean, float8), qml.rotate_move(smallint, smallint),
	qml.rotate() FROM PUBLIC;

DO $$
DECLARE
	a record;
	target text;
	grantee text;
BEGIN
	-- tables, the sequence and the view: each grant of the old object
	FOR a IN
		SELECT o.old, o.new, o.only_select, x.privilege_type, x.grantee, x.is_grantable
		  FROM (VALUES ('qml.jobs_1_3'::regclass, 'qml.jobs'::regclass, false),
					   ('qml.jobs_1_3', 'qml.jobs_archive', false),
					   ('qml.jobs_1_3', 'qml.generations', true),
					   ('qml.jobs_1_3', 'qml.job_keys', true),
					   ('qml.jobs_1_3_id_seq', 'qml.jobs_id_seq', false),
					   ('qml.job_events_1_3', 'qml.job_events', false)) o(old, new, only_select),
			   pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
		 WHERE c.oid = o.old AND x.grantee <> c.relowner
		UNION ALL
		SELECT 'qml.jobs_1_3'::regclass, format('qml.%I', 'jobs_' || lpad(i::text, 2, '0'))::regclass,
			   false, x.privilege_type, x.grantee, x.is_grantable
		  FROM generate_series(0, 18) i, pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
		 WHERE c.oid = 'qml.jobs_1_3'::regclass AND x.grantee <> c.relowner
	LOOP
		CONTINUE WHEN a.only_select AND a.privilege_type <> 'SELECT';
		grantee := CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END;
		EXECUTE format('GRANT %s ON %s TO %s%s', a.privilege_type, a.new, grantee,
					   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
	-- qml.fetch's, and qml.rotate() for whoever may call qml.maintain()
	FOR a IN
		SELECT o.new, x.grantee, x.is_grantable
		  FROM (VALUES ('qml.fetch_1_3(text,text[],integer,interval,interval,boolean)'::regprocedure,
						'qml.fetch(text,text[],integer,interval,interval,boolean)'::regprocedure),
					   ('qml.maintain()', 'qml.rotate()')) o(old, new),
			   pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) x
		 WHERE p.oid = o.old AND x.grantee <> p.proowner AND x.privilege_type = 'EXECUTE'
	LOOP
		grantee := CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END;
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', a.new, grantee,
					   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;

-- Out of the extension first: that takes the old table and its sequence
-- off the list of what pg_dump dumps (a DROP leaves their oids on it).
ALTER EXTENSION qml DROP SEQUENCE qml.jobs_1_3_id_seq;
ALTER EXTENSION qml DROP TABLE qml.jobs_1_3;
DROP VIEW qml.job_events_1_3;
DROP FUNCTION qml.fetch_1_3(text, text[], integer, interval, interval, boolean);
DROP TABLE qml.jobs_1_3;

-- Last: the shape of qml.jobs as this script left it (see qml.table_shape).
UPDATE qml.table_shapes SET shape = qml.table_shape('qml.jobs') WHERE relname = 'jobs';
