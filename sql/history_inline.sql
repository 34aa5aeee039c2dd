--
-- history_inline: from version 1.2 on a job's history is in its own row
-- (qml.jobs.history, src/history_inline.c) and qml.job_events is a view of
-- it. Every transition appends exactly one change to the row it writes,
-- whichever path writes it (the API's direct writes, its statements, an
-- admin's UPDATE, the scheduler's pass); with history off, none.
--
CALL qt_reset();

-- the changes a row of qml.jobs carries, without ids and times
CREATE FUNCTION qt_changes(history bytea) RETURNS text
	LANGUAGE sql
AS $$
	SELECT (SELECT string_agg(coalesce(h.from_state::text, '-') || '>' || h.to_state
							  || coalesce(' by ' || h.worker, '') || coalesce(' (' || h.error || ')', ''),
							  ', ' ORDER BY h.ordinal)
			  FROM qml.history_events(history) h)
$$;

-- how many changes a job's row carries, and which
CREATE FUNCTION qt_inline(job bigint) RETURNS TABLE (changes bigint, history text)
	LANGUAGE sql
AS $$
	SELECT (SELECT count(*) FROM qml.history_events(j.history)), qt_changes(j.history)
	  FROM qml.jobs j WHERE j.id = job
$$;

SELECT extversion FROM pg_extension WHERE extname = 'qml';
SELECT pg_typeof(history) FROM qml.jobs LIMIT 0;

-- enqueue (direct insert): one change, the creation
SELECT qml.enqueue('m', queue => 'h') AS id \gset
SELECT * FROM qt_inline(:id);
-- a claim (direct heap_update): one more
SELECT id = :id AS claimed FROM qml.fetch('w1', '{h}');
SELECT * FROM qt_inline(:id);
-- a heartbeat changes no state: none
SELECT count(*) AS extended FROM qml.heartbeat(ARRAY[:id]::bigint[], 'w1');
SELECT * FROM qt_inline(:id);
-- a failure that retries (statement): one, with the error
SELECT qml.fail(:id, 'w1', 'boom');
SELECT * FROM qt_inline(:id);
-- an admin's UPDATE (the row trigger): one
UPDATE qml.jobs SET state = 'enqueued', run_at = now() WHERE id = :id;
SELECT * FROM qt_inline(:id);
-- claim, release: one each
SELECT id = :id AS claimed FROM qml.fetch('w2', '{h}');
SELECT qml.release(:id, 'w2');
SELECT * FROM qt_inline(:id);
-- claim, completion (direct): one each
SELECT id = :id AS claimed FROM qml.fetch('w3', '{h}');
SELECT qml.complete(:id, 'w3');
SELECT * FROM qt_inline(:id);

-- the view: one row per change, in order, with the table's columns
SELECT job_id = :id AS job, from_state, to_state, worker, error
  FROM qml.job_events WHERE job_id = :id ORDER BY id;
SELECT count(DISTINCT id) = count(*) AS ids_unique,
	   bool_and(at IS NOT NULL) AS timed
  FROM qml.job_events;
-- the times are the clock's, from the job's creation to its end
SELECT bool_and(e.at >= j.created_at) AS after_creation,
	   max(e.at) >= j.finished_at AS completion_at_finish
  FROM qml.jobs j JOIN qml.job_events e ON e.job_id = j.id
 WHERE j.id = :id GROUP BY j.finished_at, j.created_at;
-- nothing goes to the table 1.1 wrote
SELECT count(*) AS old_table_rows FROM qml.job_events_1_1;

-- enqueue_batch (direct), and enqueue through its statement (a unique key):
-- one creation each; a second enqueue of the key writes nothing
SELECT array_agg(id) AS ids
  FROM qml.enqueue_batch('[{"method": "b", "queue": "h"}, {"method": "b", "queue": "h"}]') id \gset
SELECT qml.enqueue('u', queue => 'h', unique_key => 'k') AS uid \gset
SELECT qml.enqueue('u', queue => 'h', unique_key => 'k') = :uid AS same_job;
SELECT j.id = :uid AS unique_job, c.changes, c.history
  FROM qml.jobs j, qt_inline(j.id) c
 WHERE j.id = ANY (:'ids'::bigint[]) OR j.id = :uid ORDER BY j.id;

-- a scheduled job promoted by the scheduler's pass (a statement): one
SELECT qml.schedule('s', run_at => now() + interval '1 hour', queue => 'h') AS sid \gset
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id = :sid;
SELECT qml.maintain() -> 'promoted' AS promoted;
SELECT * FROM qt_inline(:sid);

-- a rolled back claim leaves the row, and so its history, as it was
BEGIN;
SELECT count(*) AS claimed FROM qml.fetch('w4', '{h}', 10);
ROLLBACK;
SELECT * FROM qt_inline(:sid);

--
-- history off: no change is appended, by any path
--
SET qml.history = off;
SELECT qml.enqueue('off', queue => 'hoff') AS oid \gset
SELECT id = :oid AS claimed FROM qml.fetch('w5', '{hoff}');
SELECT qml.fail(:oid, 'w5', 'quiet');
UPDATE qml.jobs SET state = 'enqueued', run_at = now() WHERE id = :oid;
SELECT * FROM qt_inline(:oid);
SELECT history IS NULL AS no_history FROM qml.jobs WHERE id = :oid;
-- ... but a queue that says on records
SELECT qml.configure_queue('loud', history => true);
SELECT qml.enqueue('on', queue => 'loud') AS lid \gset
SELECT * FROM qt_inline(:lid);
RESET qml.history;
-- ... and a queue that says off records nothing with qml.history on
SELECT qml.configure_queue('quiet', history => false);
SELECT qml.enqueue('q', queue => 'quiet') AS qid \gset
SELECT id = :qid AS claimed FROM qml.fetch('w6', '{quiet}');
SELECT qml.complete(:qid, 'w6');
SELECT * FROM qt_inline(:qid);
-- history turned on again later goes on where the job is
SELECT qml.configure_queue('quiet', history => true);
UPDATE qml.jobs SET state = 'deleted' WHERE id = :qid;
SELECT * FROM qt_inline(:qid);

--
-- the history goes with its job: prune and delete take one row
--
-- a row 1.1 recorded for the first job (an updated database has them)
INSERT INTO qml.job_events_1_1 (job_id, from_state, to_state) VALUES (:id, NULL, 'scheduled');
SELECT count(*) AS changes_of_first_job FROM qml.job_events WHERE job_id = :id;
SELECT qml.configure_queue(q, retention => '0') FROM unnest('{h,hoff,loud,quiet}'::text[]) q;
SELECT qml.maintain() -> 'pruned' AS pruned;
SELECT count(*) AS events_of_gone_jobs
  FROM qml.job_events e WHERE NOT EXISTS (SELECT 1 FROM qml.jobs j WHERE j.id = e.job_id);
SELECT count(*) AS old_table_rows FROM qml.job_events_1_1;

-- a value that is not a history is refused, not misread
SELECT expect_error($$SELECT * FROM qml.history_events('\x03')$$);
SELECT expect_error($$SELECT * FROM qml.history_events('\x0101')$$);
SELECT expect_error($$SELECT * FROM qml.history_events('\x01010109')$$);
SELECT count(*) AS none FROM qml.history_events('\x');
SELECT count(*) AS none FROM qml.history_events(NULL);

--
-- a claim logs its own change, not the job's history again: the history
-- is kept newest first, so the new row version ends as the old one did,
-- and the UPDATE's WAL record leaves that common suffix out (the new
-- version is on the same page; a full-page image, after a checkpoint,
-- carries the page instead). Read back with pg_walinspect.
--
CREATE EXTENSION pg_walinspect;
SELECT qml.enqueue('walh', queue => 'hwal') AS wid \gset
DO $$
DECLARE
	j bigint;
BEGIN
	FOR i IN 1..6 LOOP
		SELECT f.id INTO j FROM qml.fetch('w' || i, '{hwal}') f;
		PERFORM qml.fail(j, 'w' || i, repeat(chr(97 + i), 150));
		UPDATE qml.jobs SET state = 'enqueued', run_at = now() WHERE id = j;
	END LOOP;
END
$$;
SELECT octet_length(history) AS history_bytes FROM qml.jobs WHERE id = :wid \gset
SELECT :history_bytes BETWEEN 1000 AND 2000 AS history_long;
SELECT pg_current_wal_insert_lsn() AS before \gset
-- pg_walinspect reads the WAL on disk: this claim's commit waits for it
-- (a claim alone does not, claim_commit.sql)
SET qml.durable_claims = on;
BEGIN;
SELECT id = :wid AS claimed FROM qml.fetch('wal', '{hwal}');
SELECT pg_current_xact_id()::text::xid AS claim_xid \gset
COMMIT;
SELECT count(*) AS updates,
	   bool_and(r.fpi_length > 0 OR r.record_length < :history_bytes / 2) AS logs_its_change
  FROM pg_get_wal_records_info_till_end_of_wal(:'before') r
 WHERE r.resource_manager = 'Heap' AND r.xid = :'claim_xid'::xid
   AND r.record_type IN ('UPDATE', 'HOT_UPDATE')
   AND r.block_ref ~ ('rel \d+/\d+/' || pg_relation_filenode('qml.jobs') || ' ');
RESET qml.durable_claims;
-- ... and it reads back oldest first
SELECT ordinal, from_state, to_state, worker, left(error, 3) AS error
  FROM qml.job_events WHERE job_id = :wid ORDER BY ordinal DESC LIMIT 3;
DROP EXTENSION pg_walinspect;

DROP FUNCTION qt_inline(bigint);
DROP FUNCTION qt_changes(bytea);
