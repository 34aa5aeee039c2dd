-- case 2, qml: 1,000 jobs per statement; the JSON array is built in the
-- statement, as the raw side builds its rows
SELECT count(*) FROM qml.enqueue_batch((
  SELECT jsonb_agg(jsonb_build_object('method', 'noop', 'arguments', jsonb_build_object('n', g), 'priority', g % 4))
  FROM generate_series(1, 1000) g));
