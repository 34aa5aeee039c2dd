-- case 2, qml, the batch from the client (bench/batch_param.c): one bound
-- parameter, the JSON array of 1,000 jobs, as libqml's qml_enqueue_batch
-- sends it; the ids come back, as a producer gets them
SELECT * FROM qml.enqueue_batch($1::jsonb)
