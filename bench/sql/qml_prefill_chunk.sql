-- qml: enqueue :n ready jobs in one qml.enqueue_batch call (run repeatedly
-- to fill a queue in chunks)
SELECT count(*) FROM qml.enqueue_batch((
  SELECT jsonb_agg(jsonb_build_object('method', 'noop', 'arguments', jsonb_build_object('n', g), 'priority', g % 4))
  FROM generate_series(1, :n) g));
