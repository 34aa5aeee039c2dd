/*
 * qml--1.2--1.3.sql
 *	  Updates a database's qml from version 1.2 to 1.3 (ALTER EXTENSION qml
 *	  UPDATE, or `qml migrate`). It leaves the catalog CREATE EXTENSION qml
 *	  makes at 1.3 (test/upgrade/catalog.sh compares the two). The
 *	  definitions below are qml--1.3.sql's, with their comments; what is
 *	  only here says why.
 *
 * 1.3 makes qml.fail, qml.fail_batch, qml.heartbeat and qml.release C
 * functions that write each held job's row directly, as qml.complete and
 * qml.complete_batch already do (src/worker_held.c): same signatures,
 * results and errors. CREATE OR REPLACE keeps each function's owner,
 * grants and oid, so the roles granted them by qml.grant_worker keep
 * them, and nothing else changes: no table is touched, and the update
 * takes no lock on qml.jobs. A session that called the PL/pgSQL
 * functions before calls the C ones at its next call. Run it with the
 * 1.3 library installed: the library serves a database on 1.0, 1.1, 1.2
 * or 1.3 (src/catalog.c).
 */

\echo Use "ALTER EXTENSION qml UPDATE TO '1.3'" to load this file. \quit

-- qml.fail was a SQL function over qml.fail_batch; as C it depends on it no more.
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
CREATE OR REPLACE FUNCTION qml.fail_batch(job_ids bigint[], worker text, errors text[],
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
CREATE OR REPLACE FUNCTION qml.fail(job_id bigint, worker text, error text,
						 retry boolean DEFAULT true)
	RETURNS qml.job_state
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_fail';

/*
 * qml.heartbeat: extends the leases this worker still holds; returns them.
 */
CREATE OR REPLACE FUNCTION qml.heartbeat(job_ids bigint[], worker text,
							  lease interval DEFAULT '5 minutes')
	RETURNS SETOF bigint
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_heartbeat';

/*
 * qml.release: gives a held job back unrun (e.g. at shutdown); the attempt
 * it was fetched with is not counted.
 */
CREATE OR REPLACE FUNCTION qml.release(job_id bigint, worker text) RETURNS boolean
	LANGUAGE c VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'qml_release';
