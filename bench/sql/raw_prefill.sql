-- raw: empty the table and fill it with :n ready jobs, then vacuum, analyze
-- and checkpoint so every run starts from the same state
TRUNCATE jobs RESTART IDENTITY;
INSERT INTO jobs (queue, priority, run_at, state, payload)
SELECT 'default', (g % 4), now() - interval '1 hour' + (g * interval '1 millisecond'), 0, jsonb_build_object('n', g)
FROM generate_series(1, :n) g;
VACUUM ANALYZE jobs;
CHECKPOINT;
