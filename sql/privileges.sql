--
-- privileges: nothing for PUBLIC, pinned search_path, and what producer,
-- worker and admin rights (qml.grant_producer / grant_worker / grant_admin)
-- allow; qml.revoke_all takes them back.
--
CALL qt_reset();

-- PUBLIC may execute no qml function and use no qml table, sequence or
-- the schema itself
SELECT p.oid::regprocedure AS executable_by_public
  FROM pg_proc p
 WHERE p.pronamespace = 'qml'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1::text;
SELECT c.relname, c.relkind
  FROM pg_class c
 WHERE c.relnamespace = 'qml'::regnamespace AND c.relkind IN ('r', 'S', 'v', 'm', 'p')
   AND (has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
		OR (c.relkind = 'S' AND has_sequence_privilege('public', c.oid, 'USAGE, SELECT, UPDATE')))
 ORDER BY 1;
SELECT has_schema_privilege('public', 'qml', 'USAGE') AS public_usage,
	   has_schema_privilege('public', 'qml', 'CREATE') AS public_create;
-- explicit ACL entries for PUBLIC (grantee 0), anywhere in the schema
SELECT count(*) AS public_acl_entries
  FROM (SELECT (aclexplode(proacl)).grantee FROM pg_proc WHERE pronamespace = 'qml'::regnamespace
		UNION ALL
		SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relnamespace = 'qml'::regnamespace
		UNION ALL
		SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspname = 'qml') a
 WHERE grantee = 0;

-- every SECURITY DEFINER function pins search_path; so does every function
-- not written in C
SELECT p.oid::regprocedure AS definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'qml'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
 ORDER BY 1::text;
SELECT p.oid::regprocedure AS without_search_path
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'qml'::regnamespace AND l.lanname <> 'c'
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
 ORDER BY 1::text;
SELECT DISTINCT c AS pinned_to
  FROM pg_proc p, unnest(p.proconfig) c
 WHERE p.pronamespace = 'qml'::regnamespace AND c LIKE 'search\_path=%';
-- the role-gated API is SECURITY DEFINER, but for enqueue, whose statement
-- path enqueue_as_owner is; helpers and triggers are not
SELECT f.name, p.prosecdef
  FROM (VALUES ('enqueue'), ('enqueue_as_owner'), ('enqueue_batch'), ('schedule'), ('fetch'), ('complete'),
			   ('complete_batch'), ('fail'), ('heartbeat'), ('release'), ('delete'),
			   ('requeue'), ('stats'), ('throughput'), ('pause_queue'), ('resume_queue'),
			   ('maintain'), ('retry_delay'), ('grant_producer'), ('grant_worker'),
			   ('grant_admin'), ('revoke_all')) AS f(name)
  LEFT JOIN pg_proc p ON p.proname = f.name AND p.pronamespace = 'qml'::regnamespace
 ORDER BY p.prosecdef DESC, f.name;
SELECT p.oid::regprocedure AS definer_trigger_function
  FROM pg_proc p
 WHERE p.pronamespace = 'qml'::regnamespace AND p.prosecdef
   AND p.prorettype = 'trigger'::regtype;

--
-- roles
--
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_qml_nobody;
DROP ROLE IF EXISTS regress_qml_producer;
DROP ROLE IF EXISTS regress_qml_worker;
DROP ROLE IF EXISTS regress_qml_admin;
DROP ROLE IF EXISTS "Regress Qml Mixed";
RESET client_min_messages;
CREATE ROLE regress_qml_nobody;
CREATE ROLE regress_qml_producer;
CREATE ROLE regress_qml_worker;
CREATE ROLE regress_qml_admin;
CREATE ROLE "Regress Qml Mixed";
SELECT qml.grant_producer('regress_qml_producer');
SELECT qml.grant_worker('regress_qml_worker');
SELECT qml.grant_admin('regress_qml_admin');
SELECT expect_error($$SELECT qml.grant_producer(NULL)$$);
SELECT expect_error($$SELECT qml.grant_producer('regress_qml_no_such_role')$$);

-- a job for the worker to act on
SELECT qml.enqueue('seed', queue => 'pq') AS id;

-- nobody: nothing at all
SET ROLE regress_qml_nobody;
SELECT expect_error($$SELECT qml.enqueue('x')$$);
SELECT expect_error($$SELECT * FROM qml.fetch('w')$$);
SELECT expect_error($$SELECT * FROM qml.stats()$$);
SELECT expect_error($$SELECT * FROM qml.jobs$$);
RESET ROLE;

-- producer: enqueue, enqueue_batch, schedule, stats, throughput
SET ROLE regress_qml_producer;
SELECT qml.enqueue('from_producer', queue => 'pq') AS id;
SELECT count(*) FROM qml.enqueue_batch('[{"method": "batch_from_producer", "queue": "pq"}]');
SELECT qml.schedule('scheduled_by_producer', delay => interval '1 day', queue => 'pq') AS id;
SELECT queue, enqueued, scheduled FROM qml.stats('pq');
SELECT count(*) >= 0 AS callable FROM qml.throughput();
SELECT expect_error($$SELECT * FROM qml.fetch('w', '{pq}')$$);
SELECT expect_error($$SELECT qml.complete(1, 'w')$$);
SELECT expect_error($$SELECT qml.fail(1, 'w', 'x')$$);
SELECT expect_error($$SELECT qml.delete(1)$$);
SELECT expect_error($$SELECT qml.requeue(1)$$);
SELECT expect_error($$SELECT qml.pause_queue('pq')$$);
SELECT expect_error($$SELECT qml.maintain()$$);
SELECT expect_error($$SELECT qml.retry_delay(1)$$);
SELECT expect_error($$SELECT * FROM qml.jobs$$);
SELECT expect_error($$SELECT * FROM qml.job_events$$);
SELECT expect_error($$UPDATE qml.jobs SET priority = 9$$);
SELECT expect_error($$INSERT INTO qml.jobs (method, state) VALUES ('sneaky', 'enqueued')$$);
SELECT expect_error($$SELECT qml.grant_admin('regress_qml_producer')$$);
RESET ROLE;

-- worker: fetch, complete, complete_batch, fail, heartbeat, release, stats
SET ROLE regress_qml_worker;
SELECT id, method, locked_by FROM qml.fetch('w', '{pq}', 2) ORDER BY id;
SELECT * FROM qml.heartbeat('{1,2}', 'w') ORDER BY 1;
SELECT qml.complete(1, 'w') AS completed;
SELECT qml.release(2, 'w') AS released;
SELECT id FROM qml.fetch('w', '{pq}', 1);
SELECT qml.fail(2, 'w', 'oops', retry => false) AS failed;
SELECT id FROM qml.fetch('w', '{pq}', 1);
SELECT * FROM qml.complete_batch('{3}', 'w');
SELECT queue, succeeded, failed FROM qml.stats('pq');
SELECT expect_error($$SELECT qml.enqueue('x')$$);
SELECT expect_error($$SELECT qml.enqueue_batch('[{"method": "x"}]')$$);
SELECT expect_error($$SELECT qml.delete(4)$$);
SELECT expect_error($$SELECT qml.requeue(2)$$);
SELECT expect_error($$SELECT qml.pause_queue('pq')$$);
SELECT expect_error($$SELECT qml.maintain()$$);
SELECT expect_error($$SELECT * FROM qml.jobs$$);
SELECT expect_error($$UPDATE qml.jobs SET state = 'succeeded'$$);
RESET ROLE;

-- admin: all of the above, plus delete, requeue, pause/resume, maintain,
-- and reading the tables (not writing them)
SET ROLE regress_qml_admin;
SELECT qml.delete(4) AS deleted;
SELECT qml.requeue(2) AS requeued;
SELECT qml.pause_queue('pq') AS paused;
SELECT id, method FROM qml.fetch('a', '{pq}');
SELECT qml.resume_queue('pq') AS resumed;
SELECT id FROM qml.fetch('a', '{pq}');
SELECT qml.complete(2, 'a') AS completed;
SELECT qml.enqueue('by_admin', queue => 'pq', run_at => now() + interval '1 day') AS id;
SELECT (qml.maintain() ? 'promoted') AS maintained;
SELECT id, method, state FROM qml.jobs ORDER BY id;
SELECT count(*) > 0 AS reads_history FROM qml.job_events;
SELECT name, paused FROM qml.queues;
SELECT expect_error($$UPDATE qml.jobs SET priority = 9$$);
SELECT expect_error($$DELETE FROM qml.job_events$$);
SELECT expect_error($$SELECT qml.grant_admin('regress_qml_nobody')$$);
RESET ROLE;

-- qml.enqueue is not SECURITY DEFINER and does not pin search_path (the
-- cost, qml--1.1.sql): it runs as its caller under the caller's path. Its
-- direct insert must name nothing, and whatever takes an INSERT statement
-- (a unique_key, a trigger of an admin's own) must run as the owner with
-- the path pinned. A producer's own schema, first in its path, shadows
-- = on text (the unique_key lookup uses it) and lower() (an admin's index
-- below calls it by name).
CREATE SCHEMA regress_qml_trap AUTHORIZATION regress_qml_producer;
SET ROLE regress_qml_producer;
CREATE FUNCTION regress_qml_trap.trap(text, text) RETURNS boolean
	LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'trap called'; END$$;
CREATE FUNCTION regress_qml_trap.lower(text) RETURNS text
	LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'trap called'; END$$;
CREATE OPERATOR regress_qml_trap.= (LEFTARG = text, RIGHTARG = text,
									FUNCTION = regress_qml_trap.trap);
SET search_path = regress_qml_trap, pg_catalog;
SELECT qml.enqueue('trap_direct', queue => 'trapq') > 0 AS direct;
SELECT qml.enqueue('trap_unique', queue => 'trapq', unique_key => 'trap-k')
	 = qml.enqueue('trap_unique', queue => 'trapq', unique_key => 'trap-k') AS same_job;
RESET search_path;
-- the statement path is not the producer's to call on its own
SELECT expect_error($$SELECT qml.enqueue_as_owner('x', '[]', 'trapq', 0, NULL, NULL, NULL, NULL, NULL)$$);
RESET ROLE;
-- an admin's trigger sends enqueue to the statement path, as the owner
CREATE FUNCTION regress_qml_bump() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN NEW.priority := NEW.priority + 100; RETURN NEW; END$$;
CREATE TRIGGER regress_qml_bump BEFORE INSERT ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION regress_qml_bump();
SET ROLE regress_qml_producer;
SET search_path = regress_qml_trap, pg_catalog;
SELECT qml.enqueue('trap_trigger', queue => 'trapq') > 0 AS via_statement;
RESET search_path;
RESET ROLE;
DROP TRIGGER regress_qml_bump ON qml.jobs;
DROP FUNCTION regress_qml_bump();
-- so does an admin's own index: its expression (a function the producer may
-- not execute, whose body calls lower() by name) runs as the owner, under
-- the pinned path, and the index finds the row
CREATE FUNCTION regress_qml_key(a jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE
	AS $$BEGIN RETURN lower(a->>'k'); END$$;
REVOKE EXECUTE ON FUNCTION regress_qml_key(jsonb) FROM PUBLIC;
CREATE INDEX regress_qml_key_idx ON qml.jobs (regress_qml_key(arguments));
SET ROLE regress_qml_producer;
SET search_path = regress_qml_trap, pg_catalog;
SELECT qml.enqueue('trap_index', '{"k": "ABC"}', queue => 'trapq') > 0 AS via_statement;
RESET search_path;
RESET ROLE;
SET enable_seqscan = off;
SELECT method FROM qml.jobs WHERE regress_qml_key(arguments) = 'abc';
RESET enable_seqscan;
DROP INDEX qml.regress_qml_key_idx;
DROP FUNCTION regress_qml_key(jsonb);
SELECT method, priority, state, unique_key FROM qml.jobs WHERE queue = 'trapq' ORDER BY id;
-- without qml.enqueue_as_owner the statement path says so (55000); the
-- direct insert does not need it
BEGIN;
ALTER EXTENSION qml DROP FUNCTION qml.enqueue_as_owner(text, jsonb, text, integer, timestamptz,
													   integer, text, interval, interval);
DROP FUNCTION qml.enqueue_as_owner(text, jsonb, text, integer, timestamptz, integer, text,
								   interval, interval);
SELECT expect_error($$SELECT qml.enqueue('no_owner_fn', queue => 'trapq', unique_key => 'nf')$$);
SELECT qml.enqueue('no_owner_fn', queue => 'trapq') > 0 AS direct_still_works;
ROLLBACK;
-- enqueue refuses a read-only transaction itself (25006), as an INSERT would
SET ROLE regress_qml_producer;
BEGIN READ ONLY;
SELECT expect_error($$SELECT qml.enqueue('read_only', queue => 'trapq')$$);
ROLLBACK;
RESET ROLE;
SELECT count(*) AS read_only_jobs FROM qml.jobs WHERE method = 'read_only';
SET client_min_messages = warning;
DROP SCHEMA regress_qml_trap CASCADE;
RESET client_min_messages;

-- revoke_all takes every right back
SELECT qml.revoke_all('regress_qml_producer');
SELECT qml.revoke_all('regress_qml_admin');
SET ROLE regress_qml_producer;
SELECT expect_error($$SELECT qml.enqueue('x')$$);
RESET ROLE;
SET ROLE regress_qml_admin;
SELECT expect_error($$SELECT qml.delete(1)$$);
SELECT expect_error($$SELECT * FROM qml.jobs$$);
RESET ROLE;
SET ROLE regress_qml_worker;
SELECT count(*) FROM qml.fetch('w', '{pq}');
RESET ROLE;
SELECT r.rolname, count(*) FILTER (WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE')) AS functions
  FROM pg_roles r CROSS JOIN pg_proc p
 WHERE r.rolname LIKE 'regress_qml_%' AND p.pronamespace = 'qml'::regnamespace
 GROUP BY r.rolname ORDER BY r.rolname;

-- the dashboard's read-only role (qml.grant_worker and SELECT on qml's
-- tables) reads the history view, whose decoder grant_worker gives; SELECT
-- alone reads the tables but not the view
CREATE ROLE regress_qml_reader;
SELECT qml.grant_worker('regress_qml_reader');
GRANT SELECT ON ALL TABLES IN SCHEMA qml TO regress_qml_reader;
SET ROLE regress_qml_reader;
SELECT count(*) > 0 AS reads_history FROM qml.job_events;
RESET ROLE;
SELECT qml.revoke_all('regress_qml_reader');
GRANT USAGE ON SCHEMA qml TO regress_qml_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA qml TO regress_qml_reader;
SET ROLE regress_qml_reader;
SELECT count(*) > 0 AS reads_jobs FROM qml.jobs;
SELECT expect_error($$SELECT count(*) FROM qml.job_events$$);
RESET ROLE;
DROP OWNED BY regress_qml_reader;
DROP ROLE regress_qml_reader;

-- role names that need quoting work like any other
SELECT expect_error($$SELECT qml.grant_producer('"Regress Qml Mixed"')$$);
SELECT expect_error($$SELECT qml.grant_admin('"Regress Qml Mixed"')$$);
SELECT expect_error($$SELECT qml.grant_worker('"Regress Qml Mixed"')$$);
SELECT expect_error($$SELECT qml.revoke_all('"Regress Qml Mixed"')$$);

DROP OWNED BY regress_qml_nobody, regress_qml_producer, regress_qml_worker, regress_qml_admin,
	"Regress Qml Mixed";
DROP ROLE regress_qml_nobody;
DROP ROLE regress_qml_producer;
DROP ROLE regress_qml_worker;
DROP ROLE regress_qml_admin;
DROP ROLE "Regress Qml Mixed";
