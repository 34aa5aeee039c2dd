--
-- alter_columns: columns an admin adds to and drops from qml's tables. Every
-- row qml hands back or writes must follow the table as it is now: fetch's
-- rows (built for qml.jobs' row type, dropped columns included), columns
-- added with a default that rows written before do not hold (a "fast
-- default"), and the writes of enqueue, enqueue_batch, complete, fail,
-- requeue and a scheduler pass. Runs last: it leaves dropped columns behind.
--
CALL qt_reset();

-- a fetched row as JSON: the keys that do not change from run to run, and
-- the admin's own (a dropped column's too, were it there)
CREATE FUNCTION qt_some_keys(job jsonb) RETURNS jsonb
	LANGUAGE sql
AS $$
	SELECT jsonb_object_agg(k, v)
	  FROM jsonb_each(job) x(k, v)
	 WHERE k IN ('id', 'queue', 'method', 'arguments', 'state', 'attempts', 'locked_by',
				 'result', 'tenant_id', 'region', 'note')
$$;

-- rows written before the columns exist
SELECT qml.enqueue('old_' || i, jsonb_build_array(i)) AS id FROM generate_series(1, 3) i;
-- the session's statements are prepared before the table changes
SELECT id, method FROM qml.fetch('w1');

ALTER TABLE qml.jobs ADD COLUMN note text;
ALTER TABLE qml.jobs ADD COLUMN tenant_id bigint DEFAULT 4000000000;

-- a row written before: tenant_id is its default, not NULL
SELECT id, method, note, tenant_id FROM qml.fetch('w1');
SELECT to_jsonb(j) ->> 'tenant_id' AS tenant_id, to_jsonb(j) ? 'note' AS has_note
  FROM qml.fetch('w1') j;

ALTER TABLE qml.jobs ADD COLUMN region text DEFAULT 'eu';
ALTER TABLE qml.jobs DROP COLUMN note;

-- rows written after, one with values of its own
SELECT qml.enqueue('new_1', '[4]') AS id;
SELECT qml.enqueue('new_2', '[5]', priority => 1) AS id;
UPDATE qml.jobs SET tenant_id = 7, region = 'us' WHERE id = 5;

-- the whole row, as every worker's SELECT * FROM qml.fetch() reads it
SELECT * FROM qml.fetch('w1') \gset f_
SELECT :f_id AS id, :'f_method' AS method, :f_tenant_id AS tenant_id, :'f_region' AS region;
SELECT id, method, tenant_id, region, arguments, state, attempts, locked_by
  FROM qml.fetch('w1', batch => 10) ORDER BY id;
-- nothing left; the claimed rows as the table holds them
SELECT count(*) FROM qml.fetch('w1');
SELECT id, state, tenant_id, region FROM qml.jobs ORDER BY id;

-- whole-row uses of fetched rows: to_jsonb, a row value, a record
SELECT qml.enqueue('whole_row', '{"to": "x"}') AS id;
SELECT qt_some_keys(to_jsonb(j)) AS job FROM qml.fetch('w1') j;
SELECT qml.enqueue('row_value') AS id;
SELECT (j).id, (j).tenant_id, (j).region, row_to_json(j)::jsonb ? 'note' AS has_note
  FROM (SELECT j FROM qml.fetch('w1') j) s;

-- complete, complete_batch, fail with a retry, requeue
SELECT qml.complete(1, 'w1');
SELECT qml.complete_batch('{2,3}', 'w1') AS completed ORDER BY 1;
SELECT qml.fail(4, 'w1', 'boom');
SELECT qml.requeue(1);
SELECT id, method, tenant_id, region FROM qml.fetch('w1');
SELECT qml.complete(1, 'w1', '{"ok": true}');
SELECT id, state, result, tenant_id, region FROM qml.jobs WHERE id IN (1, 2, 3, 4) ORDER BY id;

-- enqueue_batch: new rows get the defaults
SELECT qml.enqueue_batch('[{"method": "b1"}, {"method": "b2", "queue": "other"}]') AS id;
SELECT id, method, queue, state, tenant_id, region FROM qml.jobs WHERE method LIKE 'b_' ORDER BY id;
SELECT id, method, tenant_id, region FROM qml.fetch('w2', '{default,other}', 10) ORDER BY id;

-- a scheduler pass: promotes a due retry and a due scheduled job, rescues
-- an expired lease
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE id = 4;
SELECT qml.enqueue('later', run_at => now() + interval '1 hour') AS id;
UPDATE qml.jobs SET run_at = now() - interval '1 second' WHERE method = 'later';
SELECT qml.enqueue('leased') AS id;
SELECT id, method FROM qml.fetch('w3', lease => '1 second');
UPDATE qml.jobs SET locked_until = now() - interval '1 second' WHERE method = 'leased';
SELECT * FROM qt_pass();
SELECT id, method, tenant_id, region FROM qml.fetch('w1', batch => 10) ORDER BY id;
SELECT id, state, attempts, tenant_id, region FROM qml.jobs
 WHERE method IN ('new_1', 'later', 'leased') ORDER BY id;

-- the history, kept in the row (qml.jobs.history), is still written and
-- read with the columns of an admin's own
SELECT qml.enqueue('history') AS id \gset
SELECT id, method FROM qml.fetch('w1');
SELECT qml.complete(:id, 'w1');
SELECT * FROM qt_history(:id);

-- the whole history is intact
SELECT j.id, j.method, j.state, count(e.*) AS events
  FROM qml.jobs j LEFT JOIN qml.job_events e ON e.job_id = j.id
 GROUP BY j.id, j.method, j.state ORDER BY j.id;

-- one of qml's own columns dropped and added again moves to the end: the
-- claim reads its rows' order (priority, run_at, id) by name, not by the
-- table's column numbers, which RETURNING j.* does not keep
ALTER TABLE qml.jobs DROP COLUMN arguments,
	ADD COLUMN arguments jsonb NOT NULL DEFAULT '[]';
SELECT qml.enqueue('low', '[1]', 'moved') AS id;
SELECT qml.enqueue('middle', '[2]', 'moved', priority => 2) AS id;
SELECT qml.enqueue('high', '[3]', 'moved', priority => 5) AS id;
SELECT id, method, priority, arguments, tenant_id FROM qml.fetch('w1', '{moved}', 2);
SELECT id, method, priority, arguments, tenant_id FROM qml.fetch('w1', '{moved}', 2);

-- only dropped columns left: the direct writes take over again, with rows
-- of the table's width, dropped columns included
ALTER TABLE qml.jobs DROP COLUMN tenant_id, DROP COLUMN region;
SELECT qml.enqueue('direct', '{"n": 1}', 'moved') AS id \gset
SELECT qt_some_keys(to_jsonb(j)) AS job FROM qml.fetch('w1', '{moved}', 5) j;
SELECT qml.complete(:id, 'w1', '{"done": 1}');
SELECT id, method, state, arguments, result FROM qml.jobs WHERE id = :id;
SELECT * FROM qt_history(:id);
CALL qt_reset();
DROP FUNCTION qt_some_keys(jsonb);
