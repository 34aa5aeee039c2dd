--
-- replica_role: the API's writes are the session's own, not replicated
-- rows, so they stamp and record as the API promises in a session set to
-- session_replication_role = replica too (src/direct_gate.c), where none
-- of qml.jobs' triggers fire for a statement. Every API call that writes
-- by statement (enqueue with a unique_key, enqueue_batch with one, a
-- fetch that promotes due jobs, an admin's qml.maintain(), and with an
-- admin's trigger on qml.jobs every write) runs here once in a session at
-- origin and once at replica, and so do the admin functions that write
-- by statement (qml.delete, qml.requeue, qml.configure_queue, pause and
-- resume), which run as origin for it:
-- the rows and their history must be the same.
--
CALL qt_reset();

CREATE FUNCTION rr_n(q text, id bigint) RETURNS bigint
	LANGUAGE sql STABLE
	RETURN id - (SELECT min(j.id) FROM qml.jobs j WHERE j.queue = q) + 1;

-- the calls, in queue q (and q || '_gate', with an admin's trigger on
-- qml.jobs), with session_replication_role = `role`
CREATE PROCEDURE rr_run(q text, role text)
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM set_config('session_replication_role', role, true);
	-- by statement whatever the gate: a unique_key, a due job promoted
	PERFORM qml.enqueue('unique', queue => q, unique_key => q || '-k1');
	PERFORM count(*) FROM qml.enqueue_batch(jsonb_build_array(
		jsonb_build_object('method', 'unique_batch', 'queue', q, 'unique_key', q || '-k2')));
	PERFORM qml.enqueue('due', queue => q, run_at => now() + interval '1 hour');
	COMMIT;
	UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE queue = q AND method = 'due';
	COMMIT;
	PERFORM set_config('session_replication_role', role, true);
	PERFORM count(*) FROM qml.fetch('w1', ARRAY[q], 10);
	COMMIT;

	-- an admin's maintenance pass: a due retry promoted, an expired lease
	-- rescued
	PERFORM qml.enqueue('retry', queue => q || '_pass', max_attempts => 3);
	PERFORM qml.enqueue('lapsed', queue => q || '_pass', max_attempts => 3);
	PERFORM count(*) FROM qml.fetch('w1', ARRAY[q || '_pass'], 2);
	PERFORM qml.fail(id, 'w1', 'again') FROM qml.jobs WHERE queue = q || '_pass' AND method = 'retry';
	UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE queue = q || '_pass' AND method = 'retry';
	UPDATE qml.jobs SET locked_until = now() - interval '1 second' WHERE queue = q || '_pass' AND method = 'lapsed';
	COMMIT;
	PERFORM set_config('session_replication_role', role, true);
	PERFORM qml.maintain();
	COMMIT;

	-- everything by statement
	CREATE TRIGGER rr_audit BEFORE INSERT OR UPDATE ON qml.jobs
		FOR EACH ROW EXECUTE FUNCTION rr_audit();
	PERFORM set_config('session_replication_role', role, true);
	PERFORM qml.enqueue('plain', queue => q || '_gate');
	PERFORM count(*) FROM qml.enqueue_batch(jsonb_build_array(
		jsonb_build_object('method', 'batch', 'queue', q || '_gate')));
	PERFORM count(*) FROM qml.fetch('w1', ARRAY[q || '_gate'], 10);
	PERFORM qml.complete(id, 'w1') FROM qml.jobs WHERE queue = q || '_gate' AND method = 'plain';
	PERFORM qml.release(id, 'w1') FROM qml.jobs WHERE queue = q || '_gate' AND method = 'batch';
	DROP TRIGGER rr_audit ON qml.jobs;
	COMMIT;

	-- the admin functions: a held job deleted, a waiting one deleted and
	-- requeued; a queue's history turned off (its sessions must read the
	-- setting again: a later job records nothing), paused and resumed
	PERFORM qml.enqueue('held', queue => q || '_admin');
	PERFORM qml.enqueue('waiting', queue => q || '_admin');
	PERFORM count(*) FROM qml.fetch('w1', ARRAY[q || '_admin'], 1);
	COMMIT;
	PERFORM set_config('session_replication_role', role, true);
	PERFORM qml.delete(id) FROM qml.jobs WHERE queue = q || '_admin';
	PERFORM qml.requeue(id) FROM qml.jobs WHERE queue = q || '_admin' AND method = 'waiting';
	PERFORM qml.configure_queue(q || '_admin', history => false);
	PERFORM qml.pause_queue(q || '_admin');
	COMMIT;
	PERFORM set_config('session_replication_role', role, true);
	PERFORM qml.enqueue('untracked', queue => q || '_admin');
	PERFORM qml.resume_queue(q || '_admin');
	COMMIT;
END
$$;
CREATE FUNCTION rr_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

CALL rr_run('origin', 'origin');
CALL rr_run('replica', 'replica');

-- the rows and their history, the same in both sessions
CREATE VIEW rr_rows AS
SELECT split_part(j.queue, '_', 1) AS role, j.queue LIKE '%\_gate' AS gate_closed,
	   j.queue LIKE '%\_pass' AS by_pass,
	   j.queue LIKE '%\_admin' AS by_admin,
	   rr_n(j.queue, j.id) AS n, j.method, j.state, j.attempts, j.max_attempts,
	   j.locked_by, j.locked_until IS NOT NULL AS leased,
	   j.enqueued_at IS NOT NULL AS enqueued, j.started_at IS NOT NULL AS started,
	   j.finished_at IS NOT NULL AS finished,
	   (SELECT string_agg(coalesce(h.from_state::text, '') || '>' || h.to_state || ' ' ||
						  coalesce(h.worker, '-'), ', ')
		  FROM qt_history(j.id) h) AS history
  FROM qml.jobs j;
SELECT gate_closed, by_pass, by_admin, n, method, state, attempts, max_attempts, locked_by, leased, enqueued,
	   started, finished, history
  FROM rr_rows WHERE role = 'origin' ORDER BY gate_closed, by_pass, by_admin, n;
SELECT role, count(*) AS jobs FROM rr_rows GROUP BY role ORDER BY role;
SELECT gate_closed, by_pass, by_admin, n, method, state, attempts, max_attempts, locked_by, leased, enqueued,
	   started, finished, history
  FROM rr_rows WHERE role = 'replica'
EXCEPT
SELECT gate_closed, by_pass, by_admin, n, method, state, attempts, max_attempts, locked_by, leased, enqueued,
	   started, finished, history
  FROM rr_rows WHERE role = 'origin'
 ORDER BY gate_closed, by_pass, by_admin, n;

-- the admin functions' queues, and qml.stats() against a count of the rows
SELECT split_part(name, '_', 1) AS role, paused, history FROM qml.queues
 WHERE name LIKE '%\_admin' ORDER BY 1;
SELECT s.queue, s.enqueued, s.processing, s.deleted,
	   (SELECT count(*) FILTER (WHERE state = 'enqueued') || '/' ||
			   count(*) FILTER (WHERE state = 'processing') || '/' ||
			   count(*) FILTER (WHERE state = 'deleted')
		  FROM qml.jobs j WHERE j.queue = s.queue) AS counted
  FROM qml.stats() s WHERE s.queue LIKE '%\_admin' ORDER BY 1;

-- a statement that fails (an admin's trigger refuses the row) leaves the
-- session as it was, the error caught or not
CREATE FUNCTION rr_refuse() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
CREATE TRIGGER rr_refuse BEFORE INSERT ON qml.jobs FOR EACH ROW EXECUTE FUNCTION rr_refuse();
SET session_replication_role = replica;
SELECT expect_error($$SELECT qml.enqueue('refused')$$) AS caught,
	   current_setting('session_replication_role') AS after_it;
BEGIN;
SAVEPOINT s;
\set VERBOSITY terse
SELECT qml.enqueue('refused');
\set VERBOSITY default
ROLLBACK TO s;
SELECT current_setting('session_replication_role') AS after_savepoint;
COMMIT;
RESET session_replication_role;
DROP TRIGGER rr_refuse ON qml.jobs;
DROP FUNCTION rr_refuse();

DROP VIEW rr_rows;
DROP PROCEDURE rr_run(text, text);
DROP FUNCTION rr_n(text, bigint), rr_audit();
