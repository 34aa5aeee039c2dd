--
-- A transaction whose only writes are qml.fetch's claims commits without
-- waiting for the WAL flush; any other write in it, before or after the
-- fetch, or qml.durable_claims = on, makes it wait as usual
-- (src/claim_commit.c).
--
-- Seen through pg_stat_wal.wal_sync: a commit that waits flushes its own
-- record (one fsync each, nothing else flushes here so fast), and one that
-- does not leaves the flush to the WAL writer, at most once every
-- wal_writer_delay (200 ms) while the 40 commits run. The counts from other
-- processes (the WAL writer, autovacuum) can only add to both sides, so
-- each loop is compared with the others, not with a fixed number.
--
CALL qt_reset();

SELECT count(*) AS enqueued
  FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'c' || g, 'queue', 'cc'))
						   FROM generate_series(1, 200) g));

-- n transactions that each claim one job, with an enqueue into another
-- queue before or after the claim, or nothing else
CREATE PROCEDURE claim_loop(n int, other text)
	LANGUAGE plpgsql
AS $$
BEGIN
	FOR i IN 1..n LOOP
		IF other = 'before' THEN
			PERFORM qml.enqueue('x', queue => 'cc_other');
		END IF;
		PERFORM qml.fetch('w', ARRAY['cc'], 1);
		IF other = 'after' THEN
			PERFORM qml.enqueue('x', queue => 'cc_other');
		END IF;
		COMMIT;
	END LOOP;
END
$$;

CREATE TABLE claim_syncs (loop text, syncs bigint);
CREATE PROCEDURE count_syncs(what text, n int, other text)
	LANGUAGE plpgsql
AS $$
DECLARE
	before bigint;
BEGIN
	PERFORM pg_stat_clear_snapshot();
	SELECT wal_sync INTO before FROM pg_stat_wal;
	CALL claim_loop(n, other);
	-- this backend's counts reach pg_stat_wal when it next goes idle
	PERFORM pg_stat_force_next_flush();
	INSERT INTO claim_syncs VALUES (what, -before);
	COMMIT;
END
$$;
CREATE PROCEDURE count_syncs_end(what text)
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM pg_stat_clear_snapshot();
	UPDATE claim_syncs SET syncs = syncs + (SELECT wal_sync FROM pg_stat_wal)
	 WHERE loop = what;
END
$$;

CALL count_syncs('claims only', 40, 'none');
CALL count_syncs_end('claims only');
CALL count_syncs('enqueue, then claim', 40, 'before');
CALL count_syncs_end('enqueue, then claim');
CALL count_syncs('claim, then enqueue', 40, 'after');
CALL count_syncs_end('claim, then enqueue');
SET qml.durable_claims = on;
CALL count_syncs('claims only, durable_claims on', 40, 'none');
CALL count_syncs_end('claims only, durable_claims on');
RESET qml.durable_claims;

-- every commit that must wait did (about 40 each); the claims alone, well
-- under half as many
SELECT w.loop,
	   w.syncs >= 30 AS each_commit_flushed,
	   (SELECT syncs FROM claim_syncs WHERE loop = 'claims only') * 2 < w.syncs AS claims_only_flushed_less
  FROM claim_syncs w
 WHERE w.loop <> 'claims only'
 ORDER BY w.loop;

-- what the loops claimed is claimed: the commit that did not wait committed
SELECT state, count(*) FROM qml.jobs WHERE queue = 'cc' GROUP BY 1 ORDER BY 1;

DROP PROCEDURE count_syncs_end(text);
DROP PROCEDURE count_syncs(text, int, text);
DROP PROCEDURE claim_loop(int, text);
DROP TABLE claim_syncs;
