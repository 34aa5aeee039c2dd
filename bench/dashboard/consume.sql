-- bench/dashboard.sh, consumer: fetch up to 100, complete them; back off
-- 10 ms when the queue is empty, as a worker's poll would
SELECT coalesce(array_agg(id), '{}')::text AS ids, count(*) AS n FROM qml.fetch('w' || :client_id, '{default}', 100) \gset
\if :n > 0
SELECT count(*) FROM qml.complete_batch(:ids::bigint[], 'w' || :client_id);
\else
\sleep 10 ms
\endif
