-- bench/sql/horizon_study/ins.sql: a prototype of an insert-only queue.
-- The generations and slots of part.sql, but no row is ever updated or
-- deleted in the claim path: a job is one row of hs_ins.jobs, its claim
-- one row of hs_ins.claims, its completion one row of hs_ins.done, all
-- partitioned by the job's slot and emptied together by TRUNCATE when the
-- slot is reused (after its unfinished jobs move to the current one).
-- A claim takes the oldest jobs above a floor that have no claim row,
-- skipping those another claim holds (an advisory lock stands in for the
-- row lock of SKIP LOCKED), and moves the floor up to just below the first
-- job it took: the entries it walks are those claimed by claims running at
-- the same time, live ones, however long a snapshot is held. The floor is
-- a sequence (setval is not transactional: no row version per move). A job
-- that becomes visible below the floor (an insert committed late, a claim
-- rolled back) is caught by maintain(), which moves the floor back to it:
-- at most a second late, as qml's head net does.
CREATE SCHEMA hs_ins;
CREATE TABLE hs_ins.settings (gen_s int NOT NULL, slots int NOT NULL);
INSERT INTO hs_ins.settings VALUES (:gen_s, :slots);
CREATE SEQUENCE hs_ins.seq CACHE 32;
CREATE SEQUENCE hs_ins.floor MINVALUE 0 START 0;
CREATE TABLE hs_ins.jobs (
	id			bigint NOT NULL,
	slot		int NOT NULL,
	burst		int NOT NULL,
	payload		jsonb
) PARTITION BY LIST (slot);
CREATE TABLE hs_ins.claims (
	job_id		bigint NOT NULL,
	slot		int NOT NULL,
	worker		text NOT NULL,
	locked_at	timestamptz NOT NULL
) PARTITION BY LIST (slot);
CREATE TABLE hs_ins.done (
	job_id		bigint NOT NULL,
	slot		int NOT NULL,
	finished_at	timestamptz NOT NULL
) PARTITION BY LIST (slot);
SELECT format('CREATE TABLE hs_ins.%s_%s PARTITION OF hs_ins.%s FOR VALUES IN (%s)', t, s, t, s)
  FROM generate_series(0, :slots - 1) s, unnest('{jobs,claims,done}'::text[]) t \gexec
CREATE INDEX ON hs_ins.jobs (id);
CREATE UNIQUE INDEX ON hs_ins.claims (slot, job_id);
CREATE INDEX ON hs_ins.done (job_id);
CREATE TABLE hs_ins.slots (
	slot		int PRIMARY KEY,
	gen			bigint NOT NULL,
	drained		boolean NOT NULL
);
INSERT INTO hs_ins.slots SELECT s, -1, true FROM generate_series(0, :slots - 1) s;

CREATE FUNCTION hs_ins.gen_now() RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT floor(extract(epoch FROM clock_timestamp()) / gen_s)::bigint FROM hs_ins.settings
$$;

CREATE FUNCTION hs_ins.enqueue(burst int, n int) RETURNS bigint
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	g bigint;
	s int;
BEGIN
	SELECT sl.gen, sl.slot INTO g, s FROM hs_ins.slots sl
	 WHERE sl.gen <= hs_ins.gen_now() ORDER BY sl.gen DESC LIMIT 1;
	INSERT INTO hs_ins.jobs (id, slot, burst)
	SELECT g * 1000000000 + nextval('hs_ins.seq') % 1000000000, s, burst
	  FROM generate_series(1, n);
	RETURN n;
END
$$;

CREATE FUNCTION hs_ins.claim(worker text, n int) RETURNS TABLE (id bigint, burst int)
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	s int;
	f bigint := (SELECT last_value FROM hs_ins.floor);
	ids bigint[] := '{}';
	bursts int[] := '{}';
	part_ids bigint[];
	part_bursts int[];
BEGIN
	FOR s IN SELECT sl.slot FROM hs_ins.slots sl
			  WHERE NOT sl.drained AND sl.gen <= hs_ins.gen_now() ORDER BY sl.gen LOOP
		-- the advisory lock is taken only on jobs without a claim (OFFSET 0
		-- keeps it out of the scan below)
		WITH c AS MATERIALIZED (
				SELECT x.id, x.burst
				  FROM (SELECT j.id, j.burst FROM hs_ins.jobs j
						 WHERE j.slot = s AND j.id > f
						   AND NOT EXISTS (SELECT 1 FROM hs_ins.claims k
											WHERE k.slot = s AND k.job_id = j.id)
						 ORDER BY j.id OFFSET 0) x
				 WHERE pg_try_advisory_xact_lock(x.id)
				 LIMIT n - cardinality(ids)),
			 i AS (INSERT INTO hs_ins.claims (job_id, slot, worker, locked_at)
				   SELECT c.id, s, worker, now() FROM c
				   ON CONFLICT DO NOTHING RETURNING job_id)
		SELECT array_agg(c.id ORDER BY c.id), array_agg(c.burst ORDER BY c.id)
		  INTO part_ids, part_bursts
		  FROM c JOIN i ON i.job_id = c.id;
		ids := ids || coalesce(part_ids, '{}');
		bursts := bursts || coalesce(part_bursts, '{}');
		EXIT WHEN cardinality(ids) >= n;
	END LOOP;
	-- everything between the floor and the first job taken is claimed or
	-- held by a claim running now
	IF cardinality(ids) > 0 AND ids[1] - 1 > (SELECT last_value FROM hs_ins.floor) THEN
		PERFORM setval('hs_ins.floor', ids[1] - 1);
	END IF;
	RETURN QUERY SELECT * FROM unnest(ids, bursts);
END
$$;

CREATE FUNCTION hs_ins.complete(ids bigint[], worker text) RETURNS bigint
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	slots int[];
	k bigint;
	rest bigint;
BEGIN
	SELECT array_agg(DISTINCT (i / 1000000000) % st.slots) INTO slots
	  FROM unnest(ids) i, hs_ins.settings st;
	INSERT INTO hs_ins.done (job_id, slot, finished_at)
	SELECT c.job_id, c.slot, now() FROM hs_ins.claims c
	 WHERE c.slot = ANY (slots) AND c.job_id = ANY (ids) AND c.worker = complete.worker;
	GET DIAGNOSTICS k = ROW_COUNT;
	IF k < cardinality(ids) THEN
		-- stragglers moved to a later generation
		INSERT INTO hs_ins.done (job_id, slot, finished_at)
		SELECT c.job_id, c.slot, now() FROM hs_ins.claims c
		 WHERE NOT c.slot = ANY (slots) AND c.job_id = ANY (ids) AND c.worker = complete.worker;
		GET DIAGNOSTICS rest = ROW_COUNT;
		k := k + rest;
	END IF;
	RETURN k;
END
$$;

-- Every second: the floor net, drained slots, and the next generation's
-- slot prepared (unfinished jobs moved to the current slot, TRUNCATE).
CREATE FUNCTION hs_ins.maintain() RETURNS void
LANGUAGE plpgsql SET lock_timeout = '50ms' SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	cur bigint := hs_ins.gen_now();
	st hs_ins.settings;
	nxt int;
	curslot int;
	missed bigint;
	r record;
	t text;
BEGIN
	SELECT * INTO st FROM hs_ins.settings;
	-- jobs below the floor without a claim (late commits, rolled back claims)
	SELECT min(j.id) INTO missed FROM hs_ins.slots sl JOIN hs_ins.jobs j ON j.slot = sl.slot
	 WHERE NOT sl.drained AND j.id <= (SELECT last_value FROM hs_ins.floor)
	   AND NOT EXISTS (SELECT 1 FROM hs_ins.claims k WHERE k.slot = j.slot AND k.job_id = j.id);
	IF missed IS NOT NULL THEN
		PERFORM setval('hs_ins.floor', missed - 1);
	END IF;
	FOR r IN SELECT sl.slot FROM hs_ins.slots sl
			  WHERE NOT sl.drained AND sl.gen < cur - 1 LOOP
		IF NOT EXISTS (SELECT 1 FROM hs_ins.jobs j WHERE j.slot = r.slot
						  AND NOT EXISTS (SELECT 1 FROM hs_ins.claims k
										   WHERE k.slot = r.slot AND k.job_id = j.id)) THEN
			UPDATE hs_ins.slots SET drained = true WHERE slot = r.slot;
		END IF;
	END LOOP;
	nxt := (cur + 1) % st.slots;
	IF (SELECT gen FROM hs_ins.slots WHERE slot = nxt) = cur + 1 THEN
		RETURN;
	END IF;
	curslot := cur % st.slots;
	IF (SELECT gen FROM hs_ins.slots WHERE slot = curslot) <> cur THEN
		EXECUTE format('LOCK TABLE hs_ins.jobs_%1$s, hs_ins.claims_%1$s, hs_ins.done_%1$s IN ACCESS EXCLUSIVE MODE', curslot);
		EXECUTE format('TRUNCATE hs_ins.jobs_%1$s, hs_ins.claims_%1$s, hs_ins.done_%1$s', curslot);
		UPDATE hs_ins.slots SET gen = cur, drained = false WHERE slot = curslot;
	END IF;
	EXECUTE format('LOCK TABLE hs_ins.jobs_%1$s, hs_ins.claims_%1$s, hs_ins.done_%1$s IN ACCESS EXCLUSIVE MODE', nxt);
	-- unfinished jobs (and their claims) move on, keeping their ids
	INSERT INTO hs_ins.jobs (id, slot, burst, payload)
	SELECT j.id, curslot, j.burst, j.payload FROM hs_ins.jobs j
	 WHERE j.slot = nxt AND NOT EXISTS (SELECT 1 FROM hs_ins.done d WHERE d.slot = nxt AND d.job_id = j.id);
	INSERT INTO hs_ins.claims (job_id, slot, worker, locked_at)
	SELECT c.job_id, curslot, c.worker, c.locked_at FROM hs_ins.claims c
	 WHERE c.slot = nxt AND NOT EXISTS (SELECT 1 FROM hs_ins.done d WHERE d.slot = nxt AND d.job_id = c.job_id);
	EXECUTE format('TRUNCATE hs_ins.jobs_%1$s, hs_ins.claims_%1$s, hs_ins.done_%1$s', nxt);
	UPDATE hs_ins.slots SET gen = cur + 1, drained = false WHERE slot = nxt;
	-- a moved job that was not claimed is now below the floor: the net above
	-- finds it on the next call
EXCEPTION WHEN lock_not_available THEN
	NULL;
END
$$;

CREATE VIEW hs_ins.relations AS
	SELECT (format('hs_ins.%s_%s', t, s.slot))::regclass AS rel
	  FROM hs_ins.slots s, unnest('{jobs,claims,done}'::text[]) t
	UNION ALL SELECT 'hs_ins.slots'::regclass;
