--
-- lease_role: a lease belongs to the worker name AND the role that claimed
-- the job (qml.jobs.locked_role). Another worker role passing the same
-- worker name finds the lease lost: heartbeat, fail, complete,
-- complete_batch and release do nothing. The claiming role, an admin and a
-- superuser may act. On the direct writes and on the statement paths.
--
CALL qt_reset();
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_qml_wrk;
DROP ROLE IF EXISTS regress_qml_wrk2;
DROP ROLE IF EXISTS regress_qml_adm;
RESET client_min_messages;
CREATE ROLE regress_qml_wrk;
CREATE ROLE regress_qml_wrk2;
CREATE ROLE regress_qml_adm;
SELECT qml.grant_worker('regress_qml_wrk');
SELECT qml.grant_worker('regress_qml_wrk2');
SELECT qml.grant_admin('regress_qml_adm');

-- what the leases look like, the role by name
CREATE FUNCTION lr_jobs() RETURNS TABLE (id bigint, state qml.job_state, locked_by text,
										 locked_role regrole, leased boolean)
	LANGUAGE sql
AS $$
	SELECT j.id, j.state, j.locked_by, j.locked_role::regrole, j.locked_until IS NOT NULL
	  FROM qml.jobs j ORDER BY j.id
$$;

SELECT count(*) FROM (SELECT qml.enqueue('lr', queue => 'lr') FROM generate_series(1, 4)) e;

-- the claim records the session's role: SET ROLE's, not the login role and
-- not the SECURITY DEFINER function's owner
SET ROLE regress_qml_wrk;
SELECT id, locked_by FROM qml.fetch('w-alpha', '{lr}', 4) ORDER BY id;
RESET ROLE;
SELECT * FROM lr_jobs();
SELECT qt_fingerprint() AS before_wrk2 \gset

-- another worker role with the same worker name: the lease is not its own
SET ROLE regress_qml_wrk2;
SELECT * FROM qml.heartbeat('{1,2,3,4}', 'w-alpha', '1 hour');
SELECT qml.fail(1, 'w-alpha', 'not mine') AS failed;
SELECT qml.fail(1, 'w-alpha', 'not mine', retry => false) AS failed_for_good;
SELECT qml.complete(1, 'w-alpha') AS completed;
SELECT * FROM qml.complete_batch('{1,2,3,4}', 'w-alpha');
SELECT * FROM qml.complete_batch('{1,2}', 'w-alpha', ARRAY['1', '2']::jsonb[]);
SELECT qml.release(1, 'w-alpha') AS released;
RESET ROLE;
SELECT qt_fingerprint() = :'before_wrk2' AS nothing_changed;

-- the claiming role may
SET ROLE regress_qml_wrk;
SELECT * FROM qml.heartbeat('{1,2,3,4}', 'w-alpha', '1 hour') ORDER BY 1;
SELECT qml.complete(1, 'w-alpha') AS completed;
RESET ROLE;

-- an admin may, with the lease's worker name (and only with it)
SET ROLE regress_qml_adm;
SELECT * FROM qml.heartbeat('{2,3,4}', 'w-other');
SELECT * FROM qml.heartbeat('{2,3,4}', 'w-alpha') ORDER BY 1;
SELECT qml.fail(2, 'w-alpha', 'by admin', retry => false) AS failed;
SELECT qml.release(3, 'w-alpha') AS released;
RESET ROLE;
-- and a superuser
SELECT * FROM qml.complete_batch('{4}', 'w-alpha');
-- whatever ended the lease, the role went with it
SELECT * FROM lr_jobs();

-- a lease that expires is rescued without its role
SET ROLE regress_qml_wrk;
SELECT id FROM qml.fetch('w-alpha', '{lr}');
RESET ROLE;
UPDATE qml.jobs SET locked_until = now() - interval '1 second' WHERE id = 3;
SELECT qml.maintain() ? 'rescued' AS maintained;
SELECT * FROM lr_jobs() WHERE id = 3;

-- the statement paths (an admin's trigger on qml.jobs sends fetch and the
-- completions to their UPDATE statements) check the role as well
CREATE FUNCTION lr_noop() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER lr_noop AFTER UPDATE ON qml.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION lr_noop();
SELECT count(*) FROM (SELECT qml.enqueue('lr2', queue => 'lr2') FROM generate_series(1, 3)) e;
SET ROLE regress_qml_wrk;
SELECT id, locked_by FROM qml.fetch('w-alpha', '{lr2}', 3) ORDER BY id;
RESET ROLE;
SELECT * FROM lr_jobs() WHERE state = 'processing';
SET ROLE regress_qml_wrk2;
SELECT qml.complete(5, 'w-alpha') AS completed;
SELECT * FROM qml.complete_batch('{5,6,7}', 'w-alpha');
SELECT * FROM qml.complete_batch('{5}', 'w-alpha', ARRAY['1']::jsonb[]);
RESET ROLE;
SET ROLE regress_qml_wrk;
SELECT qml.complete(5, 'w-alpha') AS completed;
SELECT * FROM qml.complete_batch('{6}', 'w-alpha', ARRAY['1']::jsonb[]);
RESET ROLE;
SET ROLE regress_qml_adm;
SELECT * FROM qml.complete_batch('{7}', 'w-alpha');
RESET ROLE;
SELECT * FROM lr_jobs() WHERE id >= 5;
DROP TRIGGER lr_noop ON qml.jobs;
DROP FUNCTION lr_noop();

-- the call is the session role's even through a SECURITY DEFINER function
-- of another role's: wrk2's function completes wrk's job only when wrk
-- calls it
CREATE FUNCTION lr_complete(job bigint) RETURNS boolean LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog AS $$SELECT qml.complete(job, 'w-alpha')$$;
ALTER FUNCTION lr_complete(bigint) OWNER TO regress_qml_wrk2;
GRANT EXECUTE ON FUNCTION lr_complete(bigint) TO regress_qml_wrk;
SELECT qml.enqueue('lr3', queue => 'lr3') AS id;
SET ROLE regress_qml_wrk;
SELECT id, locked_by FROM qml.fetch('w-alpha', '{lr3}');
RESET ROLE;
SET ROLE regress_qml_wrk2;
SELECT lr_complete(8) AS completed_by_wrk2;
RESET ROLE;
SET ROLE regress_qml_wrk;
SELECT lr_complete(8) AS completed_by_wrk;
RESET ROLE;
DROP FUNCTION lr_complete(bigint);

-- a lease with no role recorded (an admin's own UPDATE made it) is an
-- admin's alone
UPDATE qml.jobs SET state = 'processing', locked_by = 'w-hand', locked_until = now() + interval '1 hour'
 WHERE id = 1;
SET ROLE regress_qml_wrk;
SELECT qml.complete(1, 'w-hand') AS completed;
RESET ROLE;
SET ROLE regress_qml_adm;
SELECT qml.complete(1, 'w-hand') AS completed;
RESET ROLE;

-- the helpers are nobody's to call
SET ROLE regress_qml_wrk;
SELECT expect_error($$SELECT qml.may_act(0)$$);
SELECT expect_error($$SELECT qml.lease_role()$$);
RESET ROLE;

DROP FUNCTION lr_jobs();
SELECT qml.revoke_all('regress_qml_wrk');
SELECT qml.revoke_all('regress_qml_wrk2');
SELECT qml.revoke_all('regress_qml_adm');
DROP ROLE regress_qml_wrk;
DROP ROLE regress_qml_wrk2;
DROP ROLE regress_qml_adm;
