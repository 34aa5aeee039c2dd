--
-- history_bounds: a job's inline history (qml.jobs.history, version 1.2)
-- stays bounded however often the job changes, workers are not given it,
-- and a value that is not a history is refused, never misread.
--
CALL qt_reset();

-- a job retried far past the bounds, with errors longer than one is kept:
-- 120 rounds of claim, failure (3 kB error, different each time) and
-- requeue by an admin's UPDATE, each round its own transaction
SELECT qml.enqueue('loop', queue => 'hb', max_attempts => 1000) AS id \gset
DO $$
DECLARE
	j bigint;
	e text;
BEGIN
	FOR i IN 1..120 LOOP
		SELECT f.id INTO j FROM qml.fetch('w' || i, '{hb}') f;
		SELECT string_agg(md5(i || '/' || k), '') INTO e FROM generate_series(1, 96) k;
		PERFORM qml.fail(j, 'w' || i, e);
		UPDATE qml.jobs SET state = 'enqueued', run_at = now() WHERE id = j;
		COMMIT;
	END LOOP;
END
$$;
-- within the bounds: 32 kB, the creation and at most 99 changes after it
SELECT octet_length(history) <= 32768 AS within_bytes FROM qml.jobs WHERE id = :id;
SELECT count(*) FILTER (WHERE h.id IS NOT NULL) AS changes_kept,
	   count(*) FILTER (WHERE h.id IS NULL) AS omitted_rows,
	   max(h.ordinal) AS last_ordinal,
	   max(octet_length(h.error)) AS longest_error
  FROM qml.jobs j, qml.history_events(j.history) h WHERE j.id = :id;
-- the creation first, then the row for what was omitted, then the latest
SELECT h.ordinal, h.from_state, h.to_state, h.error IS NULL AS no_error,
	   CASE WHEN h.id IS NULL THEN h.error END AS omitted
  FROM qml.jobs j, qml.history_events(j.history) h
 WHERE j.id = :id AND h.ordinal <= 272 ORDER BY h.ordinal;
SELECT right(h.error, 20) AS error_end
  FROM qml.jobs j, qml.history_events(j.history) h
 WHERE j.id = :id AND h.ordinal = 360;
-- the view shows the same, in the job's order
SELECT count(*) AS view_rows, bool_and(ordinal IS NOT NULL) AS ordered
  FROM qml.job_events WHERE job_id = :id;
-- the queue still hands it out, and a claim writes a bounded WAL record
SELECT pg_current_wal_insert_lsn() AS before \gset
SELECT id = :id AS claimed FROM qml.fetch('wal', '{hb}');
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'before') < 131072 AS wal_bounded;
-- ... and maintenance and delete work on it
SELECT (qml.maintain() ->> 'pruned') IS NOT NULL AS maintained;
SELECT qml.delete(:id) AS deleted;

-- a long error is kept in last_error whole; only its history copy is cut
SELECT qml.enqueue('long', queue => 'hb') AS lid \gset
SELECT id = :lid AS claimed FROM qml.fetch('wl', '{hb}');
SELECT qml.fail(:lid, 'wl', repeat('é', 2000), retry => false);
SELECT octet_length(last_error) AS last_error_bytes FROM qml.jobs WHERE id = :lid;
SELECT octet_length(h.error) AS kept_bytes, right(h.error, 20) AS error_end
  FROM qml.jobs j, qml.history_events(j.history) h
 WHERE j.id = :lid AND h.to_state = 'failed';

--
-- a worker's fetch does not carry the history (other workers' names and
-- errors are for admins), by the direct path and by the statement path
--
CREATE ROLE regress_qml_hist_worker;
SELECT qml.grant_worker('regress_qml_hist_worker');
SELECT qml.enqueue('a', queue => 'hw'), qml.enqueue('b', queue => 'hw');
SET ROLE regress_qml_hist_worker;
SELECT method, history IS NULL AS no_history FROM qml.fetch('hw1', '{hw}');
SELECT expect_error('SELECT history FROM qml.jobs');
SELECT expect_error('SELECT * FROM qml.job_events');
RESET ROLE;
-- the statement path: qml.jobs with an admin's own trigger
CREATE FUNCTION qt_nothing() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER qt_nothing BEFORE UPDATE ON qml.jobs
	FOR EACH ROW EXECUTE FUNCTION qt_nothing();
SET ROLE regress_qml_hist_worker;
SELECT method, history IS NULL AS no_history FROM qml.fetch('hw2', '{hw}');
RESET ROLE;
DROP TRIGGER qt_nothing ON qml.jobs;
DROP FUNCTION qt_nothing();
-- ... while the rows have it
SELECT method, history IS NOT NULL AS has_history
  FROM qml.jobs WHERE queue = 'hw' ORDER BY method;
-- ... also a history too long for a one-byte header (a 1,000-byte error
-- in it): the claim cuts it from the row it wrote (worker_write.c)
SELECT qml.enqueue('long', '[1, "x"]', queue => 'hwl') AS hid \gset
SELECT count(*) AS claimed FROM qml.fetch('hw3', '{hwl}');
SELECT qml.fail(:hid, 'hw3', repeat('e', 1000), retry => false);
SELECT qml.requeue(:hid);
SELECT octet_length(history) > 1000 AS long_history FROM qml.jobs WHERE id = :hid;
SET ROLE regress_qml_hist_worker;
SELECT id = :hid AS same, method, arguments, attempts, history IS NULL AS no_history
  FROM qml.fetch('hw4', '{hwl}');
RESET ROLE;
SELECT octet_length(history) > 1000 AS long_history, state, locked_by
  FROM qml.jobs WHERE id = :hid;
SELECT qml.revoke_all('regress_qml_hist_worker');
DROP ROLE regress_qml_hist_worker;

--
-- values that are not a history: 22P02, saying where
--
-- format 3, 1 change, none omitted; the change: id 1, created (ff) as
-- scheduled (00), at 2000-01-01, worker 'ab', error NULL
SELECT count(*) AS valid FROM qml.history_events('\x03010001ff00000000000000000003616200');
-- a worker that is not UTF-8, or holds a zero byte
SELECT expect_error($$SELECT * FROM qml.history_events('\x03010001ff0000000000000000000361ff00')$$, true);
SELECT expect_error($$SELECT * FROM qml.history_events('\x03010001ff00000000000000000003610000')$$, true);
-- a time out of range, a state that is none
SELECT expect_error($$SELECT * FROM qml.history_events('\x03010001ff007fffffffffffffff0000')$$, true);
SELECT expect_error($$SELECT * FROM qml.history_events('\x03010001ff0900000000000000000000')$$, true);
-- a text longer than the value, a value that ends early
SELECT expect_error($$SELECT * FROM qml.history_events('\x03010001ff0000000000000000000961')$$, true);
SELECT expect_error($$SELECT * FROM qml.history_events('\x030100ffffff7fff0000000000000000')$$, true);
-- more changes, or fewer, than the header counts
SELECT expect_error($$SELECT * FROM qml.history_events('\x03010001ff0000000000000000000100'
													   '01ff0000000000000000000100')$$, true);
SELECT expect_error($$SELECT * FROM qml.history_events('\x03020001ff0000000000000000000f'
													   '6162636465666768696a6b6c6d6e00')$$, true);

--
-- qml.jobs.history is qml's to write: an UPDATE may only clear it, an
-- INSERT's must be a history
--
SELECT qml.enqueue('w', queue => 'hx') AS xid \gset
SELECT expect_error(format($$UPDATE qml.jobs SET history = '\x03010001ff00000000000000000000' WHERE id = %s$$, :xid), true);
SELECT expect_error(format($$UPDATE qml.jobs SET history = '\x0301' WHERE id = %s$$, :xid));
-- writing back what it holds, or clearing it, is allowed
UPDATE qml.jobs SET history = history::text::bytea WHERE id = :xid;
UPDATE qml.jobs SET history = NULL WHERE id = :xid;
SELECT history IS NULL AS cleared FROM qml.jobs WHERE id = :xid;
-- the next change starts it again
UPDATE qml.jobs SET state = 'deleted' WHERE id = :xid;
SELECT count(*) AS changes FROM qml.job_events WHERE job_id = :xid;
SELECT expect_error($$INSERT INTO qml.jobs (queue, method, history) VALUES ('hx', 'i', '\x0301ff')$$, true);
INSERT INTO qml.jobs (queue, method, state, history)
	VALUES ('hx', 'i', 'enqueued', '\x03010001ff0000000000000000000000');
-- every row of the view still reads
SELECT count(*) > 0 AS view_reads FROM qml.job_events;
