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

-- every table of the extension: since 1.2 a job's history is inline in
-- qml.jobs and qml.job_events is a view (older rows stay in
-- qml.job_events_1_1), so the tables are read from the catalog, not named
CREATE VIEW hs_qml.relations AS
	SELECT c.oid::regclass AS rel
	FROM pg_class c
	WHERE c.relnamespace = 'qml'::regnamespace AND c.relkind = 'r';
