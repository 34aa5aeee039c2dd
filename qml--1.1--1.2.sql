/*
 * qml--1.1--1.2.sql
 *	  Updates a database's qml from version 1.1 to 1.2 (ALTER EXTENSION qml
 *	  UPDATE, or `qml migrate`). It leaves the catalog CREATE EXTENSION qml
 *	  makes at 1.2 (test/upgrade/catalog.sh compares the two). The
 *	  definitions below are qml--1.2.sql's, with their comments; what is
 *	  only here says why.
 *
 * 1.2 keeps each job's history in its row (qml.jobs.history,
 * src/history_inline.c) and makes qml.job_events a view of it. The history
 * recorded before stays where it is: the table is renamed
 * qml.job_events_1_1 and the view shows its rows too. Nothing is rewritten,
 * so the update takes its locks for the time of a few catalog changes:
 * producers and workers wait for it at their next statement on qml.jobs
 * and continue on 1.2 when it commits (docs/upgrading.md). Run it with the
 * 1.2 library installed: the library serves a database on 1.0, 1.1 or 1.2
 * (src/catalog.c).
 */

\echo Use "ALTER EXTENSION qml UPDATE TO '1.2'" to load this file. \quit

-- The tables this script alters, first and in the order the API takes them
-- (qml.jobs, then qml.job_events, as a 1.1 database's writers do).
LOCK TABLE qml.jobs IN ACCESS EXCLUSIVE MODE;
LOCK TABLE qml.job_events IN ACCESS EXCLUSIVE MODE;

/* ---------------------------------------------------------------------
 * qml.jobs: the history column, no statement trigger for a history
 * table, no deduplication in jobs_fetch_idx. Its shape is recorded again
 * only if it was as 1.1 made it: what an admin added keeps the API on its
 * statements (src/direct_gate.c).
 * --------------------------------------------------------------------- */

DO $$
DECLARE
	original boolean := qml.table_is_original('qml.jobs');
BEGIN
	ALTER TABLE qml.jobs ADD COLUMN history bytea;
	DROP TRIGGER jobs_flush ON qml.jobs;
	-- no deduplication in an index whose key ends with the unique id
	-- (qml--1.2.sql); the entries written so far stay as they are
	IF pg_catalog.to_regclass('qml.jobs_fetch_idx') IS NOT NULL THEN
		ALTER INDEX qml.jobs_fetch_idx SET (deduplicate_items = off);
	END IF;
	IF original THEN
		UPDATE qml.table_shapes SET shape = qml.table_shape('qml.jobs')
		 WHERE relname OPERATOR(pg_catalog.=) 'jobs';
	END IF;
END
$$;
DROP FUNCTION qml.jobs_flush();
DELETE FROM qml.table_shapes WHERE relname OPERATOR(pg_catalog.=) 'job_events';
DROP FUNCTION qml.record_events(bigint[], qml.job_state[], qml.job_state[], text[], text[]);

/* ---------------------------------------------------------------------
 * The history recorded so far, under the name fresh 1.2 gives it.
 * --------------------------------------------------------------------- */

ALTER TABLE qml.job_events RENAME TO job_events_1_1;
ALTER INDEX qml.job_events_job_idx RENAME TO job_events_1_1_job_idx;
-- a session takes the changes' ids 32 at a time (history_inline.c)
ALTER SEQUENCE qml.job_events_id_seq INCREMENT BY 32 CACHE 32;

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

-- Worker: claim jobs and report on them, read statistics, decode a job's
-- history (the view qml.job_events calls qml.history_events with its
-- reader's rights: a worker's role with SELECT on qml's tables, as the
-- dashboard's read-only one, reads the history as it did up to 1.1).
CREATE OR REPLACE FUNCTION qml.grant_worker(role regrole) RETURNS void
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

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA qml FROM PUBLIC;

-- Who could read the history table reads the view (after the REVOKE
-- above, which would take PUBLIC's EXECUTE back): the roles qml.grant_admin
-- gave SELECT on every table of qml (and any an admin granted it to). And
-- the workers 1.1's qml.grant_worker made have what 1.2's gives.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT DISTINCT a.grantee::regrole::text AS role
			   FROM pg_catalog.pg_proc p,
					LATERAL pg_catalog.aclexplode(p.proacl) a
			  WHERE p.oid OPERATOR(pg_catalog.=)
					'qml.fetch(text,text[],integer,interval,interval,boolean)'::regprocedure
				AND a.grantee OPERATOR(pg_catalog.<>) 0
				AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION qml.history_events(bytea) TO %s',
								  r.role);
	END LOOP;
	-- PUBLIC (grantee 0) too, by its name in GRANT
	FOR r IN SELECT DISTINCT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0
								  THEN 'PUBLIC'
								  ELSE a.grantee::regrole::text END AS role
			   FROM pg_catalog.pg_class c,
					LATERAL pg_catalog.aclexplode(c.relacl) a
			  WHERE c.oid OPERATOR(pg_catalog.=) 'qml.job_events_1_1'::regclass
				AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
				AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON qml.job_events TO %s', r.role);
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION qml.history_events(bytea) TO %s',
								  r.role);
	END LOOP;
END
$$;
