-- case 8, producer: 10 jobs per transaction (pgbench -R sets the rate)
SELECT count(*) FROM qml.enqueue_batch((
  SELECT jsonb_agg(jsonb_build_object('method', 'noop', 'arguments', jsonb_build_object('n', g), 'priority', g % 4))
  FROM generate_series(1, 10) g));
