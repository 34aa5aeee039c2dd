-- case 3, raw (@BATCH@ is replaced by the batch size): tx 1 claims up to
-- @BATCH@ jobs with SKIP LOCKED; tx 2 finishes all of them in one DELETE
BEGIN;
WITH c AS (SELECT id FROM jobs
           WHERE state = 0 AND queue = 'default' AND run_at <= now()
           ORDER BY priority, run_at
           FOR UPDATE SKIP LOCKED LIMIT @BATCH@),
     u AS (UPDATE jobs j SET state = 1, locked_by = 'w', locked_at = now()
           FROM c WHERE j.id = c.id RETURNING j.id)
SELECT coalesce(array_agg(id), '{}')::text AS ids, count(*) AS n FROM u \gset
COMMIT;
DELETE FROM jobs WHERE id = ANY (:ids::bigint[]);
