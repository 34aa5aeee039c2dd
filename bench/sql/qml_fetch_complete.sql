-- case 3, qml (@BATCH@ is replaced by the batch size): tx 1 claims up to
-- @BATCH@ jobs through qml.fetch; tx 2 completes them in one call
SELECT coalesce(array_agg(id), '{}')::text AS ids, count(*) AS n FROM qml.fetch('w' || :client_id, '{default}', @BATCH@) \gset
SELECT count(*) FROM qml.complete_batch(:ids::bigint[], 'w' || :client_id);
