/*
 * qml--1.4.sql
 *	  The qml schema: job store, SQL job API, history and NOTIFY triggers,
 *	  and privileges. See DESIGN.md, "The SQL contract".
 *
 * Version 1.4 is 1.3 with qml.jobs partitioned into a ring of rotating
 * slots (docs/partitions.md, "Schema 1.4"): a slot whose generation has
 * passed is emptied by TRUNCATE, which no held xmin horizon stops. Not
 * the default version yet; the library serves it through the SQL
 * statements only (src/direct_gate.c keeps the direct writes off a
 * partitioned qml.jobs).
 *
 * Conventions: every name is qualified with qml. or pg_catalog.; every
 * function pins search_path but qml.enqueue, which says why; only the
 * role-gated API is SECURITY DEFINER;
 * nothing is granted to PUBLIC (see qml.grant_producer and friends).
 * Errors use SQLSTATEs listed in docs/errors.md.
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

-- The history: one row per state change in qml.job_events, a view. Each
-- job carries its own changes in qml.jobs.history (src/history_inline.c):
-- the tuple a transition writes anyway gains a few bytes, where a row of a
-- table of its own cost an insert, an index entry and an identity value
-- (the sixth of the server's CPU), and it goes with its job. What version
-- 1.1 and earlier recorded stays in qml.job_events_1_1, the table that was
-- qml.job_events (written no more, pruned with its jobs); its identity
-- numbers the changes still, 32 at a time: a session takes a block of 32
-- ids with one nextval() and hands them out itself (history_inline.c),
-- without a call per change; the cache of 32 blocks spares most of those
-- calls the sequence's page.
CREATE TABLE qml.job_events_1_1 (
	id			bigint GENERATED ALWAYS AS IDENTITY
				(SEQUENCE NAME qml.job_events_id_seq INCREMENT BY 32 CACHE 32),
	job_id		bigint NOT NULL,
	from_state	qml.job_state,	-- NULL when the job was created
	to_state	qml.job_state NOT NULL,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	worker		text,
	error		text
);
CREATE INDEX job_events_1_1_job_idx ON qml.job_events_1_1 (job_id);

-- The changes of one qml.jobs.history, in order; ordinal is a change's
-- place in the job's history (1: its creation). Changes omitted to keep
-- the history bounded are one row: error 'N earlier changes omitted', the
-- first of their ordinals, the other columns NULL. C, resolving no name
-- through search_path. Workers and admins may call it (qml.grant_worker). 22P02
-- for a value that is not a history.
CREATE FUNCTION qml.history_events(history bytea, OUT id bigint,
								   OUT from_state qml.job_state,
								   OUT to_state qml.job_state,
								   OUT at timestamptz, OUT worker text,
								   OUT error text, OUT ordinal bigint)
	RETURNS SETOF record
	LANGUAGE c STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'qml_history_events';

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
SELECT pg_catalog.pg_extension_config_dump('qml.job_events_1_1', '');
SELECT pg_catalog.pg_extension_config_dump('qml.job_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('qml.queues', '');

/* ---------------------------------------------------------------------
 * Triggers (C, see src/job_trigger.c): per row, timestamps, the lease
 * invariant, wakeups and the change appended to the row's history. The
 * update trigger has no WHEN clause (the executor would read
 * it back from the catalog for every statement); when the state did not
 * change it returns at once (a heartbeat), after noting a waiting job's
 * new place for queue_head.c.
 * --------------------------------------------------------------------- */

CREATE FUNCTION qml.jobs_stamp() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_stamp';
CREATE FUNCTION qml.jobs_record() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_record';

CREATE TRIGGER jobs_stamp_insert BEFORE INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_stamp_update BEFORE UPDATE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_record_insert AFTER INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qml.jobs_record();
-- A deleted job leaves the counts qml.stats() reads; a TRUNCATE makes the
-- scheduler count the table again (src/job_counts.c).
CREATE FUNCTION qml.jobs_count_delete() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_jobs_count_delete';
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

-- Each session keeps the queues' own history settings (job_history.c)
-- instead of reading qml.queues on every flush; a change to the table
-- sends every session a relcache invalidation at commit, to read it again.
CREATE FUNCTION qml.queues_changed() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'qml_queues_changed';
CREATE TRIGGER queues_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON qml.queues FOR EACH STATEMENT EXECUTE FUNCTION qml.queues_changed();

/* ---------------------------------------------------------------------
 * The shape of qml.jobs (src/direct_gate.c). The API writes its rows
 * without an executor only while it is exactly what
 * this script created; qml.table_shape() describes a table from the catalog
 * by definition (columns, constraints either way, triggers, rules,
 * policies, indexes, inheritance, access method, row security), the end of
 * this script records it, and each session compares it again whenever the
 * table's relcache entry is invalidated. Not dumped: CREATE
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

-- Raises P0002 when no job has this id, 22004 when it is NULL (no job
-- has it, but that is the caller's mistake, not a job pruned).
CREATE FUNCTION qml.check_job_exists(job_id bigint) RETURNS void
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

/* ---------------------------------------------------------------------
 * Producer API
 * --------------------------------------------------------------------- */

/*
 * qml.enqueue: a new job, `scheduled` when run_at is in the future, else
 * `enqueued`. With unique_key, while a live job (scheduled, enqueued,
 * processing, awaiting_retry) has that key, its id is returned instead.
 * Errors: 22004 null method/queue, 22023 empty method/queue/unique_key,
 * max_attempts < 1, bad backoff, an infinite run_at or one in the year
 * 10000 or later, 22001 method/queue/unique_key too long, 25006 in a
 * read-only transaction. A unique_key is unique within its queue.
 *
 * The one API function that is neither SECURITY DEFINER nor SET
 * search_path, because in PostgreSQL 15 those two cost 8% of an enqueue's
 * throughput at 16 clients (README, "What keeps enqueue and fetch
 * cheap"): leaving the function walks every setting to restore the path,
 * and the caller's next statement parses its own path again. It needs
 * neither: it writes the row by OID
 * (src/direct_insert.c), resolving no name and checking no privilege, as
 * COPY's insert does. Whatever takes an INSERT statement (a unique_key, or
 * a qml.jobs that is not exactly as this script made it: see
 * qml.table_shape) it hands to qml.enqueue_as_owner, which is SECURITY
 * DEFINER with the path pinned. EXECUTE on qml.enqueue stays the gate.
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
	IF delay IS NOT NULL THEN
		PERFORM qml.check_duration('delay', delay, true);
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
 * with its position (22023); more than 1,000,000 jobs is 54000. JSON null
 * is a NULL argument of enqueue (the default). C (src/producer_batch.c):
 * it checks each element and writes the rows as enqueue does, or hands
 * the checked batch to qml.enqueue_batch_by_statement.
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

/* ---------------------------------------------------------------------
 * Worker API. A worker names itself; only the lease holder may finish,
 * fail, extend or release a job: the same worker name, called by the role
 * that claimed the job (locked_role) or by an admin (qml.may_act). Losing
 * a lease is a race, not an error: these functions then return false, NULL
 * or leave the job out.
 * --------------------------------------------------------------------- */

/*
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
 * qml.fail_batch: qml.fail for many jobs in one statement (errors[i] and,
 * when given, retry[i] for job_ids[i]; retry NULL: retry every one).
 * Returns a row for each job this worker still held: its new state and,
 * when it awaits a retry, when that is due (a runtime logs it). NULL
 * job_ids: no rows. 22004 for NULL errors, a NULL in retry or a NULL
 * worker; 22023 when the arrays differ in length. qml.fail is this for one
 * job. From 1.3 on C, as complete_batch: each job's row is written
 * directly (src/worker_held.c).
 */
CREATE FUNCTION qml.fail_batch(job_ids bigint[], worker text, errors text[],
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
CREATE FUNCTION qml.fail(job_id bigint, worker text, error text,
						 retry boolean DEFAULT true)
	RETURNS qml.job_state
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fail';

/*
 * qml.heartbeat: extends the leases this worker still holds; returns them.
 */
CREATE FUNCTION qml.heartbeat(job_ids bigint[], worker text,
							  lease interval DEFAULT '5 minutes')
	RETURNS SETOF bigint
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_heartbeat';

/*
 * qml.release: gives a held job back unrun (e.g. at shutdown); the attempt
 * it was fetched with is not counted.
 */
CREATE FUNCTION qml.release(job_id bigint, worker text) RETURNS boolean
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_release';

/* ---------------------------------------------------------------------
 * Admin API
 * --------------------------------------------------------------------- */

-- The admin functions below write qml.jobs and qml.queues by plain
-- statements, whose stamps, history, counts and wakeups are those tables'
-- triggers. They run as session_replication_role = origin, so that a
-- session at replica (a tool that applies replicated rows, a restore with
-- triggers off) still gets what they promise, as the C functions' statements
-- do (qml_execute_plan). In a session at origin the SET changes nothing.
/*
 * qml.delete: soft delete of a job that has not finished; the row and its
 * history stay until pruned. False when it had already finished; P0002 when
 * there is no such job; 22004 for a NULL job_id. A worker holding it finds
 * its lease gone.
 */
CREATE FUNCTION qml.delete(job_id bigint) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET session_replication_role = origin
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
 * there is no such job; 22004 for a NULL job_id; 23505 when another live
 * job now has its unique_key.
 */
CREATE FUNCTION qml.requeue(job_id bigint) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET session_replication_role = origin
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
 * "follow qml.history / qml.retention". 22023 for a retention that is
 * negative, mixes signs or is over 100 years.
 */
CREATE FUNCTION qml.configure_queue(queue text, history boolean DEFAULT NULL,
									retention interval DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET session_replication_role = origin
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

CREATE FUNCTION qml.pause_queue(queue text) RETURNS boolean
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET session_replication_role = origin
	RETURN qml.set_queue_paused(queue, true);

CREATE FUNCTION qml.resume_queue(queue text) RETURNS boolean
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET session_replication_role = origin
	RETURN qml.set_queue_paused(queue, false);

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
 * 22004 for a NULL bucket_width or since; 22023 for one that is not a
 * positive duration of at most 100 years, or a bucket_width with months
 * or years (date_bin cannot bin by them); 54000 over 100,000 buckets.
 */
CREATE FUNCTION qml.throughput(bucket_width interval DEFAULT '1 minute',
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
 * qml.maintain: one scheduler pass by hand (promote, rescue, prune).
 */
CREATE FUNCTION qml.maintain() RETURNS jsonb
	LANGUAGE c SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_maintain';

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

-- Worker: claim jobs and report on them, read statistics, decode a job's
-- history (the view qml.job_events calls qml.history_events with its
-- reader's rights: a worker's role with SELECT on qml's tables, as the
-- dashboard's read-only one, reads the history as it did up to 1.1).
CREATE FUNCTION qml.grant_worker(role regrole) RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	RETURN qml.grant_to(role, ARRAY['qml.fetch(text,text[],integer,interval,interval,boolean)',
									'qml.complete(bigint,text,jsonb)',
									'qml.complete_batch(bigint[],text,jsonb[])',
									'qml.fail(bigint,text,text,boolean)',
									'qml.fail_batch(bigint[],text,text[],boolean[])',
									'qml.heartbeat(bigint[],text,interval)',
									'qml.release(bigint,text)',
									'qml.stats(text)', 'qml.throughput(interval,interval,text)',
									'qml.history_events(bytea)'],
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
									 'qml.maintain()', 'qml.rotate()',
									 'qml.scheduler_slot_wait_since()',
									 'qml.add_recurring(text,text,text,jsonb,text,integer,integer,text)',
									 'qml.remove_recurring(text)', 'qml.run_recurring(text)'],
						 true);
END
$$;

-- Takes back every right on qml from a role.
CREATE FUNCTION qml.revoke_all(role regrole) RETURNS void
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
 * Scheduler (src/launcher.c, scheduler.c, maintain.c, wakeup.c,
 * session_lease.c, stats.c, recurring.c): recurring jobs, per-minute
 * statistics, and the internal helpers the background worker, qml.fetch
 * and the triggers use. See README.md, "Scheduler".
 * --------------------------------------------------------------------- */

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
 * qml.scheduler_slot_wait_since() returns timestamptz
 * Since when this database's scheduler has been waiting for a free
 * background worker slot (raise max_worker_processes); NULL when it is not
 * waiting, or when the library is not preloaded. qml status shows it.
 */
CREATE FUNCTION qml.scheduler_slot_wait_since() RETURNS timestamptz
	LANGUAGE c VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_scheduler_slot_wait_since';

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
 * argument; 22001 name/method/queue/schedule/timezone too long (200,
 * 1000, 128, 1000, 255 characters); 23505 the name exists.
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
 * qml.remove_recurring: stops a recurring job (jobs it already enqueued
 * stay). False when there is no recurring job of that name; 22004,
 * 22023, 22001 for a NULL, empty or over-long (200) name, as add_recurring.
 */
CREATE FUNCTION qml.remove_recurring(name text) RETURNS boolean
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
CREATE FUNCTION qml.run_recurring(name text) RETURNS bigint
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

-- A scheduler idling in this database (no extension yet) starts at commit.
SELECT qml.wake_scheduler(NULL);

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA qml FROM PUBLIC;

-- Last: the shape of qml.jobs as this script left it (see qml.table_shape).
INSERT INTO qml.table_shapes (relname, shape)
VALUES ('jobs', qml.table_shape('qml.jobs'));
