-- bench/sql/horizon_study/raw.sql: the raw baseline of bench/sql/schema.sql
-- (SKIP LOCKED UPDATE to claim, DELETE to finish), in its own schema.
CREATE SCHEMA hs_raw;
CREATE TABLE hs_raw.jobs (
	id			bigserial PRIMARY KEY,
	queue		text NOT NULL DEFAULT 'default',
	priority	int NOT NULL DEFAULT 0,
	run_at		timestamptz NOT NULL DEFAULT now(),
	state		smallint NOT NULL DEFAULT 0,
	burst		int NOT NULL,
	locked_by	text,
	locked_at	timestamptz
);
CREATE INDEX ON hs_raw.jobs (queue, priority, run_at) WHERE state = 0;

CREATE FUNCTION hs_raw.enqueue(burst int, n int) RETURNS bigint
LANGUAGE sql AS $$
	INSERT INTO hs_raw.jobs (burst) SELECT burst FROM generate_series(1, n);
	SELECT n::bigint
$$;

CREATE FUNCTION hs_raw.claim(worker text, n int) RETURNS TABLE (id bigint, burst int)
LANGUAGE sql AS $$
	WITH c AS (SELECT j.id FROM hs_raw.jobs j
				WHERE j.state = 0 AND j.queue = 'default' AND j.run_at <= now()
				ORDER BY j.priority, j.run_at
				FOR UPDATE SKIP LOCKED LIMIT n)
	UPDATE hs_raw.jobs j SET state = 1, locked_by = worker, locked_at = now()
	  FROM c WHERE j.id = c.id RETURNING j.id, j.burst
$$;

CREATE FUNCTION hs_raw.complete(ids bigint[], worker text) RETURNS bigint
LANGUAGE sql AS $$
	WITH d AS (DELETE FROM hs_raw.jobs WHERE id = ANY (ids) RETURNING 1)
	SELECT count(*) FROM d
$$;

CREATE FUNCTION hs_raw.maintain() RETURNS void LANGUAGE sql AS $$ SELECT $$;

CREATE VIEW hs_raw.relations AS SELECT 'hs_raw.jobs'::regclass AS rel;
