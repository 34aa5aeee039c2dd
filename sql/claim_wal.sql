--
-- What a claim writes to the WAL (issue 19): one heap record per claimed
-- job, the update of the row version the claim's query saw, and no row
-- lock record (a lock and then an update was two). Read back with
-- pg_walinspect, for qml.jobs' own file only (the history, the indexes and
-- the counts write their own records).
--
CALL qt_reset();
CREATE EXTENSION pg_walinspect;
-- pg_walinspect reads the WAL that is on disk: the claims' commits wait for
-- it here (a claim alone does not, claim_commit.sql)
SET qml.durable_claims = on;

SELECT count(*) AS enqueued
  FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'w' || g, 'queue', 'wal'))
						   FROM generate_series(1, 20) g));
-- a first claim, so that the next one finds the queue's head
SELECT count(*) AS claimed FROM qml.fetch('w0', ARRAY['wal'], 1);
CHECKPOINT;

SELECT pg_current_wal_insert_lsn() AS before \gset
BEGIN;
SELECT count(*) AS claimed FROM qml.fetch('w1', ARRAY['wal'], 10);
SELECT pg_current_xact_id()::text::xid AS claim_xid \gset
COMMIT;
-- and a claim across the head and the lower priorities
SELECT qml.enqueue('low', queue => 'wal', priority => -1) IS NOT NULL AS enqueued;
BEGIN;
SELECT count(*) AS claimed FROM qml.fetch('w2', ARRAY['wal'], 10);
SELECT pg_current_xact_id()::text::xid AS claim2_xid \gset
COMMIT;

SELECT r.xid = :'claim_xid'::xid AS first_claim,
	   count(*) FILTER (WHERE r.record_type IN ('UPDATE', 'HOT_UPDATE')) AS updates,
	   count(*) FILTER (WHERE r.record_type = 'LOCK') AS locks,
	   count(*) FILTER (WHERE r.record_type NOT IN ('UPDATE', 'HOT_UPDATE', 'LOCK')) AS other
  FROM pg_get_wal_records_info_till_end_of_wal(:'before') r
 WHERE r.resource_manager = 'Heap' AND r.xid IN (:'claim_xid'::xid, :'claim2_xid'::xid)
   AND r.block_ref ~ ('rel \d+/\d+/' || pg_relation_filenode('qml.jobs') || ' ')
 GROUP BY 1 ORDER BY 1 DESC;

SELECT state, count(*) FROM qml.jobs GROUP BY 1 ORDER BY 1;
SELECT to_state, count(*) FROM qml.job_events WHERE to_state = 'processing' GROUP BY 1;

DROP EXTENSION pg_walinspect;
