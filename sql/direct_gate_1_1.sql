--
-- direct_gate_1_1: a database whose extension is still at version 1.1 (this
-- library installed, ALTER EXTENSION qml UPDATE not run yet) keeps its
-- history in the table qml.job_events, which the library writes without an
-- executor only while it is as 1.1 created it (src/direct_gate.c). For each
-- kind of object an admin may add or change on it, qml's writes must do
-- what a plain INSERT does. A database of its own, at 1.1; each case runs in
-- a transaction that is rolled back.
--
CREATE DATABASE qml_regress_1_1;
\c qml_regress_1_1
SET client_min_messages = warning;
CREATE EXTENSION qml VERSION '1.1';
RESET client_min_messages;
\i sql/setup.sql
CALL qt_reset();

SELECT relname, qml.table_is_original(('qml.' || relname)::regclass)
  FROM qml.table_shapes ORDER BY relname;

--
-- qml.job_events
--

-- a trigger: fires once per history row, as for a plain INSERT
BEGIN;
CREATE TRIGGER gate_count AFTER INSERT ON qml.job_events
	FOR EACH ROW EXECUTE FUNCTION gate_count();
SELECT qml.enqueue('m') AS id \gset
SELECT * FROM gate_calls();
SELECT id = :id AS claimed FROM qml.fetch('w1');
SELECT qml.complete(:id, 'w1');
SELECT * FROM gate_calls();
INSERT INTO qml.job_events (job_id, to_state) VALUES (0, 'enqueued');
SELECT * FROM gate_calls();
ROLLBACK;

-- a CHECK constraint rejects the history row
BEGIN;
ALTER TABLE qml.job_events ADD CONSTRAINT gate_check CHECK (from_state IS NOT NULL);
SELECT expect_error($$SELECT qml.enqueue('m')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "m"}]')$$);
SELECT expect_error($$INSERT INTO qml.job_events (job_id, to_state) VALUES (0, 'enqueued')$$);
ROLLBACK;

-- NOT NULL
BEGIN;
ALTER TABLE qml.job_events ALTER COLUMN from_state SET NOT NULL;
SELECT expect_error($$SELECT qml.enqueue('m')$$);
SELECT expect_error($$INSERT INTO qml.job_events (job_id, to_state) VALUES (0, 'enqueued')$$);
ROLLBACK;

-- a column with a default, and a generated column
BEGIN;
ALTER TABLE qml.job_events ADD COLUMN source text DEFAULT 'here',
	ADD COLUMN twice bigint GENERATED ALWAYS AS (job_id * 2) STORED;
SELECT qml.enqueue('m') AS id \gset
INSERT INTO qml.job_events (job_id, to_state) VALUES (7, 'enqueued');
SELECT job_id = :id AS by_enqueue, to_state, source, twice = job_id * 2 AS twice FROM qml.job_events ORDER BY id;
ROLLBACK;

-- a rule
BEGIN;
CREATE RULE gate_rule AS ON INSERT TO qml.job_events
	DO ALSO INSERT INTO gate_calls VALUES ('rule ' || NEW.to_state);
SELECT qml.enqueue('m') AS id \gset
INSERT INTO qml.job_events (job_id, to_state) VALUES (0, 'succeeded');
SELECT * FROM gate_calls();
ROLLBACK;

-- a deferrable unique constraint (checked at the end of the statement)
BEGIN;
ALTER TABLE qml.job_events ADD CONSTRAINT gate_unique UNIQUE (to_state) DEFERRABLE;
SELECT qml.enqueue('m') AS id \gset
SELECT expect_error($$SELECT qml.enqueue('m')$$);
SELECT expect_error($$INSERT INTO qml.job_events (job_id, to_state) VALUES (0, 'enqueued')$$);
ROLLBACK;

-- a column's type and typmod
BEGIN;
ALTER TABLE qml.job_events ALTER COLUMN worker TYPE varchar(3);
SELECT qml.enqueue('m') AS id \gset
SELECT expect_error($$SELECT id FROM qml.fetch('long-worker')$$);
SELECT expect_error($$INSERT INTO qml.job_events (job_id, to_state, worker) VALUES (0, 'processing', 'long-worker')$$);
ROLLBACK;

-- a trigger that changes a job again: the history it causes is written
-- once, nothing twice
BEGIN;
CREATE FUNCTION gate_delete() RETURNS trigger
	LANGUAGE plpgsql
AS $$
BEGIN
	UPDATE qml.jobs SET state = 'deleted' WHERE id = NEW.job_id AND state = 'enqueued';
	RETURN NULL;
END
$$;
CREATE TRIGGER gate_delete AFTER INSERT ON qml.job_events
	FOR EACH ROW EXECUTE FUNCTION gate_delete();
SELECT qml.enqueue('m') AS id \gset
SELECT * FROM qt_history(:id);
INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 1)
	RETURNING id AS id \gset
SELECT * FROM qt_history(:id);
ROLLBACK;

CREATE ROLE regress_qml_gate;
SELECT qml.grant_producer('regress_qml_gate');
-- the history of a producer's enqueue into a qml.job_events with a trigger:
-- written by the INSERT statement as the owner (the producer may not
-- insert there itself)
BEGIN;
CREATE TRIGGER gate_count AFTER INSERT ON qml.job_events
	FOR EACH ROW EXECUTE FUNCTION gate_count();
SET LOCAL ROLE regress_qml_gate;
SELECT qml.enqueue('m') > 0 AS enqueued;
SELECT expect_error($$INSERT INTO qml.job_events (job_id, to_state) VALUES (0, 'enqueued')$$);
RESET ROLE;
SELECT * FROM gate_calls();
ROLLBACK;
SELECT qml.revoke_all('regress_qml_gate');
DROP ROLE regress_qml_gate;

\c contrib_regression
DROP DATABASE qml_regress_1_1 WITH (FORCE);
