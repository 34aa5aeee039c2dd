-- case 2, raw: 1,000 jobs per statement
INSERT INTO jobs (queue, priority, run_at, state, payload)
SELECT 'default', g % 4, now(), 0, jsonb_build_object('n', g)
FROM generate_series(1, 1000) g;
