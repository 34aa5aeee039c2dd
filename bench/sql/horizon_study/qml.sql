-- bench/sql/horizon_study/qml.sql: today's qml, behind the interface every
-- design of the study offers (enqueue, claim, complete, maintain). Jobs go
-- to queue 'hs', whose finished jobs are kept :retention seconds (the
-- scheduler prunes them), the time the rotating designs keep theirs.
CREATE SCHEMA hs_qml;
INSERT INTO qml.queues (name, retention)
VALUES ('hs', make_interval(secs => :retention));

CREATE FUNCTION hs_qml.enqueue(burst int, n int) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
		'method', 'w', 'queue', 'hs', 'arguments', jsonb_build_array(burst)))
		FROM generate_series(1, n)))
$$;

CREATE FUNCTION hs_qml.claim(worker text, n int) RETURNS TABLE (id bigint, burst int)
LANGUAGE sql AS $$
	SELECT id, (arguments->>0)::int FROM qml.fetch(worker, '{hs}', n)
$$;

CREATE FUNCTION hs_qml.complete(ids bigint[], worker text) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM qml.complete_batch(ids, worker)
$$;

-- pruning is the scheduler's
CREATE FUNCTION hs_qml.maintain() RETURNS void LANGUAGE sql AS $$ SELECT $$;

CREATE VIEW hs_qml.relations AS
	SELECT 'qml.jobs'::regclass AS rel UNION ALL
	SELECT 'qml.job_events'::regclass UNION ALL
	SELECT 'qml.queue_state_counts'::regclass;
