-- case 7, qml: fetch @BATCH@ + complete them, then enqueue as many new
-- ones, so the queue keeps the depth it was filled to (three transactions)
SELECT coalesce(array_agg(id), '{}')::text AS ids, count(*) AS n FROM qml.fetch('w' || :client_id, '{default}', @BATCH@) \gset
SELECT count(*) FROM qml.complete_batch(:ids::bigint[], 'w' || :client_id);
SELECT count(*) FROM qml.enqueue_batch((
  SELECT jsonb_agg(jsonb_build_object('method', 'noop', 'arguments', jsonb_build_object('n', g), 'priority', g % 4))
  FROM generate_series(1, @BATCH@) g));
