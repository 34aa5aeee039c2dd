--
-- direct_gate: qml writes qml.jobs without an executor only while it is
-- exactly as CREATE EXTENSION made it (src/direct_gate.c). For each kind of
-- object an admin may add or change on the table, qml's writes must do what
-- a plain INSERT or UPDATE does (direct_gate_1_1 does the same for a
-- database at 1.1, whose history is the table qml.job_events): each
-- case runs the API, then the plain statement, and shows both. Every case
-- is one the gate used to pass (it matched by name); each runs in a
-- transaction that is rolled back.
--
CALL qt_reset();

-- the shapes recorded at CREATE EXTENSION are those of the tables now
SELECT relname, qml.table_is_original(('qml.' || relname)::regclass)
  FROM qml.table_shapes ORDER BY relname;

--
-- qml.jobs
--

-- NOT NULL on result: a plain INSERT is refused, so is enqueue
BEGIN;
ALTER TABLE qml.jobs ALTER COLUMN result SET NOT NULL;
SELECT expect_error($$SELECT qml.enqueue('m')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m"}]')$$);
SELECT expect_error($$INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1)$$);
ROLLBACK;

-- arguments as json: enqueue stores json, which reads back
BEGIN;
ALTER TABLE qml.jobs ALTER COLUMN arguments TYPE json;
SELECT qml.enqueue('mail', '{"to": "a@b.c"}') > 0 AS enqueued;
SELECT qml.enqueue_batch('[{"method": "mail", "arguments": {"to": "d@e.f"}}]') > 0 AS enqueued;
INSERT INTO qml.jobs (method, arguments, state, max_attempts)
	VALUES ('mail', '{"to": "g@h.i"}', 'enqueued', 1);
SELECT arguments->>'to' AS to FROM qml.jobs ORDER BY id;
ROLLBACK;

-- a CHECK constraint redefined under its own name
BEGIN;
ALTER TABLE qml.jobs DROP CONSTRAINT jobs_queue_check,
	ADD CONSTRAINT jobs_queue_check CHECK (queue IN ('default', 'mail'));
SELECT qml.enqueue('m', queue => 'mail') > 0 AS enqueued;
SELECT expect_error($$SELECT qml.enqueue('m', queue => 'other')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m", "queue": "other"}]')$$);
SELECT expect_error($$INSERT INTO qml.jobs (queue, method, state, max_attempts) VALUES ('other', 'm', 'enqueued', 1)$$);
ROLLBACK;

-- qml's triggers redefined under their own names (a WHEN clause that
-- counts): they fire for enqueue, claim and completion as for a plain
-- INSERT and UPDATE
BEGIN;
DROP TRIGGER jobs_stamp_insert ON qml.jobs;
DROP TRIGGER jobs_stamp_update ON qml.jobs;
CREATE TRIGGER jobs_stamp_insert BEFORE INSERT ON qml.jobs
	FOR EACH ROW WHEN (gate_counted('jobs before insert')) EXECUTE FUNCTION qml.jobs_stamp();
CREATE TRIGGER jobs_stamp_update BEFORE UPDATE ON qml.jobs
	FOR EACH ROW WHEN (gate_counted('jobs before update')) EXECUTE FUNCTION qml.jobs_stamp();
SELECT qml.enqueue('m') AS id \gset
SELECT * FROM gate_calls();
SELECT id = :id AS claimed FROM qml.fetch('w1');
SELECT * FROM gate_calls();
SELECT qml.complete(:id, 'w1');
SELECT * FROM gate_calls();
INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1);
UPDATE qml.jobs SET priority = 1 WHERE id <> :id;
SELECT * FROM gate_calls();
SELECT * FROM qt_history(:id);
ROLLBACK;

-- one of qml's triggers disabled (the one that appends a new row's first
-- change to its history): enqueue records no creation, as a plain INSERT
-- does not
BEGIN;
ALTER TABLE qml.jobs DISABLE TRIGGER jobs_stamp_insert;
SELECT qml.enqueue('m', max_attempts => 1) AS id \gset
INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1);
SELECT count(*) AS events FROM qml.job_events;
ROLLBACK;

-- a default of an admin's own
BEGIN;
ALTER TABLE qml.jobs ALTER COLUMN last_error SET DEFAULT 'none yet';
SELECT qml.enqueue('m') AS id \gset
INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1);
SELECT id = :id AS by_enqueue, last_error FROM qml.jobs ORDER BY id;
ROLLBACK;

-- a generated column under the name of one of qml's
BEGIN;
ALTER TABLE qml.jobs DROP COLUMN last_error,
	ADD COLUMN last_error text GENERATED ALWAYS AS ('from ' || method) STORED;
SELECT qml.enqueue('m') AS id \gset
INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1);
SELECT id = :id AS by_enqueue, last_error FROM qml.jobs ORDER BY id;
ROLLBACK;

-- an index under the name of one of qml's, on an expression: the function
-- runs as for enqueue's INSERT statement, as the extension's owner, never
-- as the producer that called enqueue
CREATE ROLE regress_qml_gate;
SELECT qml.grant_producer('regress_qml_gate');
CREATE FUNCTION gate_who(m text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	RAISE NOTICE 'index expression run by the producer: %', current_user = 'regress_qml_gate';
	RETURN m;
END
$$;
BEGIN;
DROP INDEX qml.jobs_finished_idx;
CREATE INDEX jobs_finished_idx ON qml.jobs (public.gate_who(method));
SET LOCAL ROLE regress_qml_gate;
SELECT qml.enqueue('m') > 0 AS enqueued;
ROLLBACK;
DROP FUNCTION gate_who(text);
SELECT qml.revoke_all('regress_qml_gate');
DROP ROLE regress_qml_gate;

-- an inheritance child: an UPDATE of qml.jobs reaches its rows
BEGIN;
CREATE TABLE gate_child () INHERITS (qml.jobs);
INSERT INTO gate_child (id, method, state, max_attempts, locked_by, locked_until)
	VALUES (100, 'm', 'processing', 1, 'w1', now() + interval '1 hour');
SELECT qml.complete(100, 'w1');
SELECT id, state FROM gate_child;
ROLLBACK;

-- ... but a claim takes only qml.jobs' own rows: matching the locked rows by
-- ctid alone, the child's enqueued rows matched a finished job of qml.jobs
-- at the same ctid, which then ran again
BEGIN;
CALL qt_reset();
SELECT qml.enqueue('m', queue => 'a') AS id \gset
SELECT count(*) AS claimed FROM qml.fetch('w1', '{a}');
SELECT qml.complete(:id, 'w1') AS completed;
CREATE TABLE gate_child () INHERITS (qml.jobs);
INSERT INTO gate_child (id, queue, method, state, max_attempts)
	SELECT 100 + g, 'a', 'm', 'enqueued', 1 FROM generate_series(1, 5) g;
SELECT id, state FROM qml.fetch('w2', '{a}', 10);
SELECT qml.maintain() IS NOT NULL AS maintained;
SELECT count(*) AS child_rows_still_enqueued FROM gate_child WHERE state = 'enqueued';
ROLLBACK;

-- a table that publishes its updates needs a replica identity
BEGIN;
ALTER TABLE qml.jobs REPLICA IDENTITY NOTHING;
SET client_min_messages = error;	-- wal_level may be too low: a warning
CREATE PUBLICATION gate_pub FOR TABLE qml.jobs;
RESET client_min_messages;
SELECT qml.enqueue('m') AS id \gset
SELECT expect_error($$SELECT id FROM qml.fetch('w1')$$);
SELECT expect_error($$UPDATE qml.jobs SET priority = 1$$);
ROLLBACK;

-- after all that, the direct paths again: one event per change
SELECT qml.enqueue('m') AS id \gset
SELECT id = :id AS claimed FROM qml.fetch('w1');
SELECT qml.complete(:id, 'w1');
SELECT * FROM qt_history(:id);
SELECT relname, qml.table_is_original(('qml.' || relname)::regclass)
  FROM qml.table_shapes ORDER BY relname;

-- jobs_fetch_idx has deduplicate_items = off (1.2), and a batch still
-- takes the direct path: the row trigger qml.jobs_stamp, which the
-- statement path fires once per row, is not called (track_functions
-- counts C functions too). With the index as 1.1 made it (deduplicating),
-- qml.jobs is no longer as created and the batch goes by statement (the
-- statistics target, which is no part of the shape, only makes this
-- session check the table again: an index's options invalidate the
-- index's relcache entry alone, and change nothing a write does).
SELECT reloptions FROM pg_class WHERE oid = 'qml.jobs_fetch_idx'::regclass;
SET track_functions = 'all';
BEGIN;
SELECT count(*) AS enqueued FROM qml.enqueue_batch('[{"method": "a"}, {"method": "b"}]');
SELECT coalesce(sum(calls), 0) AS stamp_calls
  FROM pg_stat_xact_user_functions WHERE funcid = 'qml.jobs_stamp'::regproc;
ROLLBACK;
BEGIN;
ALTER INDEX qml.jobs_fetch_idx RESET (deduplicate_items);
ALTER TABLE qml.jobs ALTER COLUMN result SET STATISTICS 100;
SELECT count(*) AS enqueued FROM qml.enqueue_batch('[{"method": "a"}, {"method": "b"}]');
SELECT coalesce(sum(calls), 0) AS stamp_calls
  FROM pg_stat_xact_user_functions WHERE funcid = 'qml.jobs_stamp'::regproc;
ROLLBACK;
RESET track_functions;

--
-- A qml.jobs that Citus distributes is refused. Citus lists it in its
-- catalog pg_catalog.pg_dist_partition, and its trigger on that catalog
-- sends the table a relcache invalidation; here a stand-in catalog, and a
-- new session instead of the invalidation.
--
CALL qt_reset();
SET allow_system_table_mods = on;
CREATE TABLE pg_catalog.pg_dist_partition (logicalrelid regclass NOT NULL, partmethod "char" NOT NULL);
RESET allow_system_table_mods;
INSERT INTO pg_catalog.pg_dist_partition VALUES ('qml.jobs', 'h');
\c -
SELECT expect_error($$SELECT qml.enqueue('m')$$, true);
SELECT expect_error($$SELECT id FROM qml.fetch('w1')$$);
SELECT expect_error($$INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1)$$);
SELECT count(*) AS jobs FROM qml.jobs;
-- another table distributed: qml's are not refused
UPDATE pg_catalog.pg_dist_partition SET logicalrelid = 'gate_calls';
\c -
SELECT qml.enqueue('m') > 0 AS enqueued;
SET allow_system_table_mods = on;
DROP TABLE pg_catalog.pg_dist_partition;
RESET allow_system_table_mods;

DROP TABLE gate_calls;
DROP FUNCTION gate_count(), gate_counted(text), gate_calls();
CALL qt_reset();

-- a write locks only the indexes its row goes into (direct_insert.c): a
-- new job the primary key and the fetch index, a claimed job's new version
-- the primary key and the lease index (once the session has built its
-- plans: the first write of a session locks every index). Indexes of
-- partitions are left out: version 1.4 (test/partitions) writes by
-- statement, whose locks depend on the partitions its plan kept
SELECT qml.enqueue('locks_plan', queue => 'locks_plan') > 0 AS enqueued;
SELECT method FROM qml.fetch('w1', '{locks_plan}');
BEGIN;
SELECT qml.enqueue('locks_seen', queue => 'locks') > 0 AS enqueued;
SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
 WHERE l.pid = pg_backend_pid() AND l.mode = 'RowExclusiveLock'
   AND c.relkind = 'i' AND NOT c.relispartition
   AND c.relnamespace = 'qml'::regnamespace ORDER BY 1;
COMMIT;
BEGIN;
SELECT method FROM qml.fetch('w1', '{locks}');
SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
 WHERE l.pid = pg_backend_pid() AND l.mode = 'RowExclusiveLock'
   AND c.relkind = 'i' AND NOT c.relispartition
   AND c.relnamespace = 'qml'::regnamespace ORDER BY 1;
ROLLBACK;
