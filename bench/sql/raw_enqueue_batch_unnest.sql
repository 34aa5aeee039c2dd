-- case 2, raw, the batch from the client (bench/batch_param.c): the same
-- priorities and arguments as two arrays, unnested side by side
INSERT INTO jobs (queue, priority, run_at, state, payload)
SELECT 'default', u.priority, now(), 0, u.arguments
FROM unnest($1::int[], $2::jsonb[]) AS u(priority, arguments)
