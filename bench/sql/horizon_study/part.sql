-- bench/sql/horizon_study/part.sql: a prototype of rotating partitions.
-- Jobs go into generations of :gen_s seconds (by the clock), each in one of
-- :slots list partitions of hs_part.jobs (slot = generation mod slots). A
-- claim updates the row in place (state 0 -> 1, as qml and the raw baseline
-- do) and a completion too (1 -> 2); finished rows stay where they are. No
-- DELETE and no VACUUM is needed: maintain() empties the partition a
-- generation is about to reuse with TRUNCATE, after moving its unfinished
-- jobs (stragglers) into the current generation. A claim walks only the
-- partitions not yet drained, so the dead index entries it can meet under a
-- held snapshot are at most those of about two generations.
CREATE SCHEMA hs_part;
CREATE TABLE hs_part.settings (gen_s int NOT NULL, slots int NOT NULL);
INSERT INTO hs_part.settings VALUES (:gen_s, :slots);
CREATE SEQUENCE hs_part.seq CACHE 32;
-- id = generation * 1e9 + a sequence number: a completion finds the
-- partition from the id (a moved straggler keeps its id: the fallback)
CREATE TABLE hs_part.jobs (
	id			bigint NOT NULL,
	slot		int NOT NULL,
	state		smallint NOT NULL DEFAULT 0,	-- 0 enqueued, 1 running, 2 done
	burst		int NOT NULL,
	payload		jsonb,
	locked_by	text,
	locked_at	timestamptz,
	finished_at	timestamptz
) PARTITION BY LIST (slot);
SELECT format('CREATE TABLE hs_part.jobs_%s PARTITION OF hs_part.jobs FOR VALUES IN (%s) WITH (fillfactor = 50)', s, s)
  FROM generate_series(0, :slots - 1) s \gexec
CREATE INDEX ON hs_part.jobs (id);
CREATE INDEX ON hs_part.jobs (id) WHERE state = 0;
-- which generation each slot holds, and whether it has no enqueued job left
CREATE TABLE hs_part.slots (
	slot		int PRIMARY KEY,
	gen			bigint NOT NULL,
	drained		boolean NOT NULL
);
INSERT INTO hs_part.slots SELECT s, -1, true FROM generate_series(0, :slots - 1) s;

CREATE FUNCTION hs_part.gen_now() RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT floor(extract(epoch FROM clock_timestamp()) / gen_s)::bigint FROM hs_part.settings
$$;

CREATE FUNCTION hs_part.enqueue(burst int, n int) RETURNS bigint
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	g bigint;
	s int;
BEGIN
	-- the newest generation maintain() has prepared
	SELECT sl.gen, sl.slot INTO g, s FROM hs_part.slots sl
	 WHERE sl.gen <= hs_part.gen_now() ORDER BY sl.gen DESC LIMIT 1;
	INSERT INTO hs_part.jobs (id, slot, burst)
	SELECT g * 1000000000 + nextval('hs_part.seq') % 1000000000, s, burst
	  FROM generate_series(1, n);
	RETURN n;
END
$$;

-- custom plans: each statement locks only the partition it touches, so
-- maintain()'s TRUNCATE of another one does not wait for it
CREATE FUNCTION hs_part.claim(worker text, n int) RETURNS TABLE (id bigint, burst int)
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	s int;
	got int := 0;
	k int;
BEGIN
	FOR s IN SELECT sl.slot FROM hs_part.slots sl
			  WHERE NOT sl.drained AND sl.gen <= hs_part.gen_now() ORDER BY sl.gen LOOP
		RETURN QUERY
		WITH c AS (SELECT j.id FROM hs_part.jobs j
					WHERE j.slot = s AND j.state = 0
					ORDER BY j.id FOR UPDATE SKIP LOCKED LIMIT n - got)
		UPDATE hs_part.jobs j SET state = 1, locked_by = worker, locked_at = now()
		  FROM c WHERE j.slot = s AND j.id = c.id RETURNING j.id, j.burst;
		GET DIAGNOSTICS k = ROW_COUNT;
		got := got + k;
		EXIT WHEN got >= n;
	END LOOP;
END
$$;

CREATE FUNCTION hs_part.complete(ids bigint[], worker text) RETURNS bigint
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	slots int[];
	k bigint;
	rest bigint;
BEGIN
	SELECT array_agg(DISTINCT (i / 1000000000) % st.slots) INTO slots
	  FROM unnest(ids) i, hs_part.settings st;
	UPDATE hs_part.jobs SET state = 2, finished_at = now()
	 WHERE slot = ANY (slots) AND id = ANY (ids) AND state = 1 AND locked_by = worker;
	GET DIAGNOSTICS k = ROW_COUNT;
	IF k < cardinality(ids) THEN
		-- stragglers moved to a later generation
		UPDATE hs_part.jobs SET state = 2, finished_at = now()
		 WHERE id = ANY (ids) AND state = 1 AND locked_by = worker;
		GET DIAGNOSTICS rest = ROW_COUNT;
		k := k + rest;
	END IF;
	RETURN k;
END
$$;

-- Run every second or so: marks drained slots, and prepares the next
-- generation's slot: its unfinished jobs move to the current generation,
-- then TRUNCATE. lock_timeout: a TRUNCATE waiting for its lock would make
-- every claim wait behind it; it tries again next time instead.
CREATE FUNCTION hs_part.maintain() RETURNS void
LANGUAGE plpgsql SET lock_timeout = '50ms' SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	cur bigint := hs_part.gen_now();
	st hs_part.settings;
	nxt int;
	curslot int;
	r record;
BEGIN
	SELECT * INTO st FROM hs_part.settings;
	-- a generation two behind that has no enqueued job is drained (a job
	-- committed into it later is moved forward before its slot is reused)
	FOR r IN SELECT sl.slot FROM hs_part.slots sl
			  WHERE NOT sl.drained AND sl.gen < cur - 1 LOOP
		IF NOT EXISTS (SELECT 1 FROM hs_part.jobs j WHERE j.slot = r.slot AND j.state = 0) THEN
			UPDATE hs_part.slots SET drained = true WHERE slot = r.slot;
		END IF;
	END LOOP;
	nxt := (cur + 1) % st.slots;
	IF (SELECT gen FROM hs_part.slots WHERE slot = nxt) = cur + 1 THEN
		RETURN;
	END IF;
	-- the current generation's slot, prepared by an earlier call (or this
	-- one, at the start)
	curslot := cur % st.slots;
	IF (SELECT gen FROM hs_part.slots WHERE slot = curslot) <> cur THEN
		EXECUTE format('LOCK TABLE hs_part.jobs_%s IN ACCESS EXCLUSIVE MODE', curslot);
		EXECUTE format('TRUNCATE hs_part.jobs_%s', curslot);
		UPDATE hs_part.slots SET gen = cur, drained = false WHERE slot = curslot;
	END IF;
	EXECUTE format('LOCK TABLE hs_part.jobs_%s IN ACCESS EXCLUSIVE MODE', nxt);
	WITH m AS (DELETE FROM hs_part.jobs WHERE slot = nxt AND state < 2 RETURNING *)
	INSERT INTO hs_part.jobs (id, slot, state, burst, payload, locked_by, locked_at, finished_at)
	SELECT id, curslot, state, burst, payload, locked_by, locked_at, finished_at FROM m;
	EXECUTE format('TRUNCATE hs_part.jobs_%s', nxt);
	UPDATE hs_part.slots SET gen = cur + 1, drained = false WHERE slot = nxt;
EXCEPTION WHEN lock_not_available THEN
	NULL;
END
$$;

CREATE VIEW hs_part.relations AS
	SELECT ('hs_part.jobs_' || s.slot)::regclass AS rel FROM hs_part.slots s
	UNION ALL SELECT 'hs_part.slots'::regclass;
