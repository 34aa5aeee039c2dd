-- bench/dashboard.sh, producer: 50 jobs per transaction (pgbench -R sets the rate)
SELECT count(*) FROM qml.enqueue_batch((
  SELECT jsonb_agg(jsonb_build_object('method', 'noop', 'arguments', jsonb_build_object('n', g)))
  FROM generate_series(1, 50) g));
