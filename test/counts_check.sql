-- test/counts_check.sql: counts_check() says whether qml.state_counts()
-- (what qml.stats() reads) equals a GROUP BY count of qml.jobs ('exact')
-- and read the kept counts without scanning qml.jobs; 'scanned' when it
-- fell back to the scan, 'N wrong' when N (queue, state) counts differ.
-- Used by test/scheduler/ and test/stress/.
CREATE FUNCTION counts_check() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	before bigint;
	scans bigint;
	bad bigint;
BEGIN
	SET LOCAL client_min_messages = warning;
	CREATE TEMP TABLE IF NOT EXISTS kept (queue text, state text, jobs bigint);
	TRUNCATE kept;
	-- the backend's counters include earlier transactions not yet flushed
	SELECT coalesce(sum(seq_scan + idx_scan), 0) INTO before
	  FROM pg_stat_xact_user_tables WHERE relid = 'qml.jobs'::regclass;
	INSERT INTO kept SELECT * FROM qml.state_counts();
	SELECT coalesce(sum(seq_scan + idx_scan), 0) - before INTO scans
	  FROM pg_stat_xact_user_tables WHERE relid = 'qml.jobs'::regclass;
	SELECT count(*) INTO bad
	  FROM kept a
	  FULL JOIN (SELECT queue, state::text, count(*) AS jobs FROM qml.jobs GROUP BY 1, 2) b
	 USING (queue, state)
	 WHERE a.jobs IS DISTINCT FROM b.jobs;
	RETURN CASE WHEN bad > 0 THEN bad || ' wrong' WHEN scans > 0 THEN 'scanned' ELSE 'exact' END;
END $$;
