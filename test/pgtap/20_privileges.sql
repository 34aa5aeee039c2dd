-- test/pgtap/20_privileges.sql: what qml.grant_producer, grant_worker,
-- grant_admin give a role, and what qml.revoke_all takes back. Each call is
-- made under SET ROLE (inside pg_temp.as_role, which rolls the call back so
-- pgTAP's own bookkeeping is never done under a role that cannot write it).
BEGIN;
SELECT plan(76);

CREATE ROLE qml_tap_producer;
CREATE ROLE qml_tap_worker;
CREATE ROLE qml_tap_admin;
CREATE ROLE qml_tap_nobody;
CREATE ROLE "qml tap Quoted";

-- 'ok', or the SQLSTATE the statement failed with, run as role r
CREATE FUNCTION pg_temp.as_role(r text, stmt text) RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	st text;
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', r);
		EXECUTE stmt;
		RAISE EXCEPTION 'undo' USING ERRCODE = 'QTUND';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
		RETURN CASE st WHEN 'QTUND' THEN 'ok' ELSE st END;
	END;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.as_role(text, text) TO PUBLIC;

-- jobs to act on: 1 processing (held by w), 2 enqueued, 3 failed
SELECT lives_ok($$SELECT qml.enqueue('p1', queue => 'tap')$$, 'superuser enqueues');
SELECT lives_ok($$SELECT qml.fetch('w', '{tap}')$$, 'superuser fetches');
SELECT lives_ok($$SELECT qml.enqueue('p2', queue => 'tap')$$, 'superuser enqueues again');
SELECT qml.enqueue('p3', queue => 'tap_failed') AS failed_job \gset
SELECT lives_ok(format($$SELECT qml.fetch('w', '{tap_failed}'), qml.fail(%s, 'w', 'x', false)$$, :failed_job),
				'superuser fails a job');
SELECT (SELECT id FROM qml.jobs WHERE method = 'p1') AS held \gset

SELECT lives_ok($$SELECT qml.grant_producer('qml_tap_producer')$$, 'grant_producer');
SELECT lives_ok($$SELECT qml.grant_worker('qml_tap_worker')$$, 'grant_worker');
SELECT lives_ok($$SELECT qml.grant_admin('qml_tap_admin')$$, 'grant_admin');

-- a recurring job for run_recurring
DO $$ BEGIN PERFORM qml.add_recurring('tap_rec', '0 3 * * *', 'x', queue => 'tap'); END $$;

-- what each role may call: 'ok' or 42501 (insufficient_privilege)
CREATE TEMP TABLE calls (name text, stmt text, producer text, worker text, admin text, nobody text);
INSERT INTO calls VALUES
	('enqueue', $$SELECT qml.enqueue('x', queue => 'tap')$$, 'ok', '42501', 'ok', '42501'),
	('enqueue_batch', $$SELECT qml.enqueue_batch('[{"method": "x"}]')$$, 'ok', '42501', 'ok', '42501'),
	('schedule', $$SELECT qml.schedule('x', delay => interval '1 day')$$, 'ok', '42501', 'ok', '42501'),
	('stats', $$SELECT * FROM qml.stats()$$, 'ok', 'ok', 'ok', '42501'),
	('throughput', $$SELECT * FROM qml.throughput()$$, 'ok', 'ok', 'ok', '42501'),
	('fetch', $$SELECT * FROM qml.fetch('w2', '{tap}')$$, '42501', 'ok', 'ok', '42501'),
	('complete', format($$SELECT qml.complete(%s, 'w')$$, :held), '42501', 'ok', 'ok', '42501'),
	('complete_batch', format($$SELECT qml.complete_batch(ARRAY[%s::bigint], 'w')$$, :held), '42501', 'ok', 'ok', '42501'),
	('fail', format($$SELECT qml.fail(%s, 'w', 'e')$$, :held), '42501', 'ok', 'ok', '42501'),
	('fail_batch', format($$SELECT * FROM qml.fail_batch(ARRAY[%s::bigint], 'w', '{e}')$$, :held), '42501', 'ok', 'ok', '42501'),
	('heartbeat', format($$SELECT qml.heartbeat(ARRAY[%s::bigint], 'w')$$, :held), '42501', 'ok', 'ok', '42501'),
	('release', format($$SELECT qml.release(%s, 'w')$$, :held), '42501', 'ok', 'ok', '42501'),
	('delete', format($$SELECT qml.delete(%s)$$, :held), '42501', '42501', 'ok', '42501'),
	('requeue', format($$SELECT qml.requeue(%s)$$, :failed_job), '42501', '42501', 'ok', '42501'),
	('pause_queue', $$SELECT qml.pause_queue('tap')$$, '42501', '42501', 'ok', '42501'),
	('resume_queue', $$SELECT qml.resume_queue('tap')$$, '42501', '42501', 'ok', '42501'),
	('maintain', $$SELECT qml.maintain()$$, '42501', '42501', 'ok', '42501'),
	('run_recurring', $$SELECT qml.run_recurring('tap_rec')$$, '42501', '42501', 'ok', '42501'),
	('read jobs', $$SELECT * FROM qml.jobs$$, '42501', '42501', 'ok', '42501'),
	('update jobs', $$UPDATE qml.jobs SET priority = 1$$, '42501', '42501', '42501', '42501'),
	('grant_admin', $$SELECT qml.grant_admin('qml_tap_nobody')$$, '42501', '42501', '42501', '42501');

SELECT is(pg_temp.as_role('qml_tap_producer', stmt), producer, 'producer: ' || name) FROM calls ORDER BY name;
SELECT is(pg_temp.as_role('qml_tap_worker', stmt), worker, 'worker: ' || name) FROM calls ORDER BY name;
SELECT is(pg_temp.as_role('qml_tap_admin', stmt), admin, 'admin: ' || name)
  FROM calls WHERE name IN ('enqueue', 'fetch', 'complete', 'delete', 'requeue', 'pause_queue',
							'maintain', 'run_recurring', 'read jobs', 'update jobs', 'grant_admin') ORDER BY name;
SELECT is(pg_temp.as_role('qml_tap_nobody', stmt), nobody, 'a role given nothing: ' || name)
  FROM calls WHERE name IN ('enqueue', 'fetch', 'stats', 'read jobs') ORDER BY name;

-- a producer's job is an ordinary job: a worker claims it
SELECT is(pg_temp.as_role('qml_tap_producer', $$SELECT qml.enqueue('from_producer', queue => 'handoff')$$),
		  'ok', 'a producer enqueues (rolled back by as_role)');
SET LOCAL ROLE qml_tap_producer;
SELECT qml.enqueue('from_producer', queue => 'handoff') AS handoff_job \gset
RESET ROLE;
SELECT is(pg_temp.as_role('qml_tap_worker', format(
			$f$DO $d$ BEGIN
				IF (SELECT id FROM qml.fetch('tapw', '{handoff}')) IS DISTINCT FROM %s THEN
					RAISE EXCEPTION 'wrong job' USING ERRCODE = 'QTBAD';
				END IF;
				IF NOT qml.complete(%s, 'tapw') THEN
					RAISE EXCEPTION 'not completed' USING ERRCODE = 'QTBAD';
				END IF;
			END $d$
			$f$, :handoff_job, :handoff_job)),
		  'ok', 'a worker fetches and completes the job a producer enqueued');

-- revoke_all takes everything back
SELECT lives_ok($$SELECT qml.revoke_all('qml_tap_producer')$$, 'revoke_all(producer)');
SELECT lives_ok($$SELECT qml.revoke_all('qml_tap_worker')$$, 'revoke_all(worker)');
SELECT lives_ok($$SELECT qml.revoke_all('qml_tap_admin')$$, 'revoke_all(admin)');
SELECT is(pg_temp.as_role('qml_tap_producer', $$SELECT qml.enqueue('x')$$), '42501', 'revoked producer cannot enqueue');
SELECT is(pg_temp.as_role('qml_tap_worker', $$SELECT * FROM qml.fetch('w2', '{tap}')$$), '42501', 'revoked worker cannot fetch');
SELECT is(pg_temp.as_role('qml_tap_admin', $$SELECT qml.delete(1)$$), '42501', 'revoked admin cannot delete');
SELECT is((SELECT count(*)::int FROM pg_proc p, pg_roles r
			WHERE p.pronamespace = 'qml'::regnamespace AND r.rolname LIKE 'qml\_tap\_%'
			  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')),
		  0, 'no qml function is left executable by the revoked roles');

-- a role whose name needs quoting
SELECT lives_ok($$SELECT qml.grant_worker('"qml tap Quoted"')$$, 'grant_worker to a role whose name needs quoting');
SELECT is(pg_temp.as_role('qml tap Quoted', $$SELECT * FROM qml.fetch('w2', '{tap}')$$), 'ok',
		  'that role can fetch');
SELECT lives_ok($$SELECT qml.revoke_all('"qml tap Quoted"')$$, 'revoke_all from a role whose name needs quoting');

SELECT * FROM finish();
ROLLBACK;
