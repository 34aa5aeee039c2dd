#!/usr/bin/env bash
# test/partitions/rotation_counts.sh: on schema 1.4, the jobs per queue and
# state kept as jobs change (src/job_counts.c, what qml.stats() reads where
# a scheduler serves the database) stay equal to a count of qml.jobs
# through rotations of the ring: the moves of stragglers and of finished
# jobs to the archive change no count, the finished jobs past retention
# that a rotation deletes leave the counts, and a slot's TRUNCATE (which
# fires no trigger of the parent) loses nothing. A seeded random workload
# of every kind of change, rotations among its steps, with the scheduler's
# own rotations (every qml.generation_length) running beside it.
. "$(dirname "$0")/../scheduler/lib.sh"
db=qml_part_counts
psql -X -q -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
q $db -c "CREATE EXTENSION qml VERSION '1.4'" >/dev/null
wait_scheduler $db
counts_check $db
check "a new 1.4 database's counts" exact "$(poll 5 $db "SELECT counts_check()" exact)"

q $db >/dev/null <<'SQL'
CREATE FUNCTION random_work(seed float8, ops int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	r float8;
	q text;
BEGIN
	PERFORM setseed(seed);
	PERFORM set_config('qml.generation_length', '0', true);
	FOR i IN 1..ops LOOP
		q := 'q' || floor(random() * 6)::int;
		r := random();
		BEGIN
			IF r < 0.25 THEN
				PERFORM qml.enqueue('m', queue => q, unique_key => CASE WHEN random() < 0.2
										THEN 'k' || floor(random() * 5)::int END);
			ELSIF r < 0.30 THEN
				PERFORM qml.schedule('m', '[]', delay => interval '1 hour', queue => q);
			ELSIF r < 0.45 THEN
				PERFORM qml.fetch('w', ARRAY[q], 1 + floor(random() * 4)::int);
			ELSIF r < 0.55 THEN
				PERFORM qml.complete(j.id, 'w') FROM qml.jobs j
				  WHERE j.state = 'processing' AND j.queue = q ORDER BY random() LIMIT 1;
			ELSIF r < 0.63 THEN
				PERFORM qml.fail(j.id, 'w', 'boom', random() < 0.6) FROM qml.jobs j
				  WHERE j.state = 'processing' ORDER BY random() LIMIT 1;
			ELSIF r < 0.67 THEN
				PERFORM qml.delete(j.id) FROM qml.jobs j
				  WHERE j.state IN ('enqueued', 'scheduled', 'awaiting_retry') ORDER BY random() LIMIT 1;
			ELSIF r < 0.71 THEN
				PERFORM qml.requeue(j.id) FROM qml.jobs j
				  WHERE j.state IN ('failed', 'deleted', 'succeeded') ORDER BY random() LIMIT 1;
			ELSIF r < 0.76 THEN
				-- past the one-day retention: the next rotation of its slot deletes it
				UPDATE qml.jobs SET finished_at = now() - interval '30 days'
				 WHERE state IN ('succeeded', 'failed', 'deleted') AND random() < 0.3;
			ELSIF r < 0.90 THEN
				PERFORM qml.rotate();
			ELSE
				-- a rolled back rotation: nothing of it counts
				BEGIN
					PERFORM qml.rotate();
					RAISE EXCEPTION 'undo' USING ERRCODE = 'QTUND';
				EXCEPTION WHEN SQLSTATE 'QTUND' THEN NULL;
				END;
			END IF;
		EXCEPTION WHEN unique_violation THEN NULL;
		END;
	END LOOP;
END $$;
SQL

for seed in 0.1 0.2 0.3 0.4; do
	q $db -c "SELECT random_work($seed, 400)" >/dev/null
done
# (polled: the scheduler's own passes promote and delete jobs between the
# check's two reads; a count that is wrong stays wrong)
check "random work with rotations: qml.stats() exact" exact "$(poll 5 $db "SELECT counts_check()" exact)"
q $db -c "SELECT qml.maintain()" >/dev/null
check "... still exact after a roll-up" exact "$(poll 5 $db "SELECT counts_check()" exact)"
check "the ring turned (each slot has held a generation)" 19 "$(q $db -c "SELECT count(*) FROM qml.generations")"
check "every job once: the moves kept each id in one slot" 0 \
	"$(q $db -c "SELECT count(*) - count(DISTINCT id) FROM qml.jobs")"
check "one live job per key" 0 "$(q $db -c "SELECT count(*) FROM (SELECT queue, unique_key FROM qml.jobs
	WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry')
	GROUP BY 1, 2 HAVING count(*) > 1) d")"
check "qml.job_keys names the live jobs with keys, no other" 0 "$(q $db -c "SELECT count(*) FROM qml.job_keys k
	FULL JOIN (SELECT id, queue, unique_key FROM qml.jobs WHERE unique_key IS NOT NULL
			   AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry')) j
	  ON j.id = k.job_id AND j.queue = k.queue AND j.unique_key = k.unique_key
	WHERE j.id IS NULL OR k.job_id IS NULL")"
# the scheduler turns the ring by itself (qml.generation_length is 10 s)
gen=$(q $db -c "SELECT max(generation) FROM qml.generations")
check "the scheduler opens the next generation within its length" t \
	"$(poll 15 $db "SELECT max(generation) > $gen FROM qml.generations" t)"
dropdb_ $db
finish
