--
-- setup: the extension is there (pg_regress --load-extension=qml), and the
-- helpers every later file uses. pg_regress runs all files in one database,
-- in order; each file starts with qt_reset() so none depends on another's
-- leftovers.
--
-- Errors are shown through expect_error(): it runs a statement, catches the
-- error and returns "SQLSTATE: message", so a changed errcode or message fails
-- the test without the file and line numbers psql's VERBOSITY verbose prints
-- (they change with every PostgreSQL minor release). A statement that does not
-- fail shows up as "no error".
--
SELECT extname, extversion, extrelocatable, n.nspname AS ext_schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'qml';

SELECT enum_range(NULL::qml.job_state);

-- empty tables, identities from 1 (ids printed by the tests are then
-- deterministic), no queue settings
CREATE PROCEDURE qt_reset()
	LANGUAGE plpgsql
AS $$
BEGIN
	-- up to 1.1 the history is the table qml.job_events; from 1.2 on it is a
	-- view, and the identity of qml.job_events_1_1 numbers the changes
	IF to_regclass('qml.job_events_1_1') IS NULL THEN
		TRUNCATE qml.jobs, qml.job_events, qml.queues RESTART IDENTITY;
	ELSE
		TRUNCATE qml.jobs, qml.job_events_1_1, qml.queues RESTART IDENTITY;
	END IF;
END
$$;

-- "SQLSTATE: message", with detail and hint when asked for; "no error" when
-- the statement succeeds. Its effects are rolled back either way.
CREATE FUNCTION expect_error(stmt text, full_report boolean DEFAULT false)
	RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	st text;
	msg text;
	det text;
	hin text;
BEGIN
	BEGIN
		EXECUTE stmt;
		-- undo what a statement that should have failed did
		RAISE EXCEPTION 'no error' USING ERRCODE = 'QTNOE';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
								det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
		IF st = 'QTNOE' THEN
			RETURN 'no error';
		END IF;
		IF full_report THEN
			RETURN st || ': ' || msg
				|| CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
				|| CASE WHEN hin <> '' THEN E'\nHINT: ' || hin ELSE '' END;
		END IF;
		RETURN st || ': ' || msg;
	END;
END
$$;

-- everything the extension stores, as one hash: equal before and after an
-- error or a refused call means nothing changed
CREATE FUNCTION qt_fingerprint() RETURNS text
	LANGUAGE sql
AS $$
	SELECT md5(coalesce((SELECT string_agg(j::text, '|' ORDER BY j.id) FROM qml.jobs j), '')
			   || '#' || coalesce((SELECT string_agg(e::text, '|' ORDER BY e.id) FROM qml.job_events e), '')
			   || '#' || coalesce((SELECT string_agg(q::text, '|' ORDER BY q.name) FROM qml.queues q), ''))
$$;

-- a job's history, without timestamps
CREATE FUNCTION qt_history(job bigint)
	RETURNS TABLE (from_state qml.job_state, to_state qml.job_state, worker text, error text)
	LANGUAGE sql
AS $$
	SELECT e.from_state, e.to_state, e.worker, e.error
	  FROM qml.job_events e WHERE e.job_id = job ORDER BY e.id
$$;

-- a job's state and bookkeeping, timestamps as booleans
CREATE FUNCTION qt_job(job bigint)
	RETURNS TABLE (id bigint, state qml.job_state, attempts integer, enqueued boolean,
				   started boolean, finished boolean, locked_by text, leased boolean,
				   last_error text)
	LANGUAGE sql
AS $$
	SELECT j.id, j.state, j.attempts, j.enqueued_at IS NOT NULL, j.started_at IS NOT NULL,
		   j.finished_at IS NOT NULL, j.locked_by, j.locked_until IS NOT NULL, j.last_error
	  FROM qml.jobs j WHERE j.id = job
$$;

-- what one qml.maintain() pass did, by step (further keys are ignored)
CREATE FUNCTION qt_pass(OUT promoted int, OUT rescued int, OUT pruned int)
	LANGUAGE sql
AS $$
	SELECT (p->>'promoted')::int, (p->>'rescued')::int, (p->>'pruned')::int
	  FROM qml.maintain() p
$$;

-- the helpers work
SELECT expect_error('SELECT 1/0');
SELECT expect_error($$SELECT qml.enqueue('undone')$$);
SELECT count(*) AS undone FROM qml.jobs;
CALL qt_reset();
SELECT qt_fingerprint() = md5('##') AS empty_fingerprint;

-- direct_gate*: what admins' triggers, rules and WHEN clauses saw (qml's statements run
-- as the extension's owner with search_path pinned: an admin's function
-- names its tables)
CREATE TABLE gate_calls (what text);
CREATE FUNCTION gate_count() RETURNS trigger
	LANGUAGE plpgsql
AS $$
BEGIN
	INSERT INTO public.gate_calls VALUES (TG_TABLE_NAME || ' ' || TG_WHEN || ' ' || TG_OP);
	RETURN NEW;
END
$$;
CREATE FUNCTION gate_counted(what text) RETURNS boolean
	LANGUAGE sql
AS $$
	INSERT INTO public.gate_calls VALUES (what) RETURNING true
$$;
CREATE FUNCTION gate_calls() RETURNS TABLE (what text, calls bigint)
	LANGUAGE sql
AS $$
	SELECT what, count(*) FROM gate_calls GROUP BY what ORDER BY what
$$;

