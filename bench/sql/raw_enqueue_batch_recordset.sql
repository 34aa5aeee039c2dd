-- case 2, raw, the batch from the client (bench/batch_param.c): the same
-- JSON array as qml's, read row by row with jsonb_to_recordset
INSERT INTO jobs (queue, priority, run_at, state, payload)
SELECT 'default', r.priority, now(), 0, r.arguments
FROM jsonb_to_recordset($1::jsonb) AS r(priority int, arguments jsonb)
