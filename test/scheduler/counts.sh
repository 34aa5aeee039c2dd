#!/usr/bin/env bash
# test/scheduler/counts.sh: qml.stats() reads jobs per queue and state from
# counts kept as jobs change (src/job_counts.c), never from a scan of
# qml.jobs where a scheduler serves the database, and they stay exact: a
# seeded random workload of every kind of change (enqueue, batches,
# schedule, fetch, complete, fail with and without retry, promotion of
# due retries, delete, requeue, an admin's UPDATE of the queue, an admin's
# DELETE, pruning by qml.maintain(), rolled back subtransactions and
# transactions) leaves qml.stats() equal to a GROUP BY count of qml.jobs.
. "$(dirname "$0")/lib.sh"
db=qml_sched_counts
newdb $db || exit 1
wait_scheduler $db
counts_check $db
check "a new database's counts" exact "$(poll 5 $db "SELECT counts_check()" exact)"

q $db >/dev/null <<'SQL'
CREATE FUNCTION random_work(seed float8, ops int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	r float8;
	q text;
	pick bigint;
BEGIN
	PERFORM setseed(seed);
	FOR i IN 1..ops LOOP
		-- 24 queues: a transaction's lists of counts, wakeups and queue
		-- heads pass the length at which they start a hash table
		-- (src/xact_list.c), subtransactions rolled back on either side
		q := 'q' || floor(random() * 24)::int;
		r := random();
		BEGIN
			IF r < 0.20 THEN
				PERFORM qml.enqueue('m', queue => q, priority => floor(random() * 3)::int);
			ELSIF r < 0.25 THEN
				PERFORM qml.schedule('m', '[]', delay => interval '1 hour', queue => q);
			ELSIF r < 0.30 THEN
				PERFORM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'b', 'queue', 'q' || g % 5))
											 FROM generate_series(1, 1 + floor(random() * 8)::int) g));
			ELSIF r < 0.45 THEN
				PERFORM qml.fetch('w', ARRAY[q], 1 + floor(random() * 4)::int, session_lease => false);
			ELSIF r < 0.55 THEN
				PERFORM qml.complete(j.id, 'w') FROM qml.jobs j
				  WHERE j.state = 'processing' AND j.queue = q ORDER BY random() LIMIT 1;
			ELSIF r < 0.60 THEN
				PERFORM qml.complete_batch(array(SELECT j.id FROM qml.jobs j WHERE j.state = 'processing'
												   ORDER BY random() LIMIT 4), 'w');
			ELSIF r < 0.70 THEN
				PERFORM qml.fail(j.id, 'w', 'boom', random() < 0.6) FROM qml.jobs j
				  WHERE j.state = 'processing' ORDER BY random() LIMIT 1;
			ELSIF r < 0.74 THEN
				UPDATE qml.jobs SET run_at = now() - interval '1 second'
				 WHERE state IN ('awaiting_retry', 'scheduled') AND random() < 0.5;
			ELSIF r < 0.78 THEN
				PERFORM qml.delete(j.id) FROM qml.jobs j
				  WHERE j.state IN ('enqueued', 'scheduled', 'awaiting_retry') ORDER BY random() LIMIT 1;
			ELSIF r < 0.82 THEN
				PERFORM qml.requeue(j.id) FROM qml.jobs j
				  WHERE j.state IN ('failed', 'deleted', 'succeeded') ORDER BY random() LIMIT 1;
			ELSIF r < 0.85 THEN
				SELECT j.id INTO pick FROM qml.jobs j ORDER BY random() LIMIT 1;
				UPDATE qml.jobs SET queue = 'moved' || floor(random() * 2)::int WHERE jobs.id = pick;
			ELSIF r < 0.87 THEN
				DELETE FROM qml.jobs WHERE jobs.id = (SELECT j.id FROM qml.jobs j ORDER BY random() LIMIT 1);
			ELSIF r < 0.92 THEN
				UPDATE qml.jobs SET finished_at = now() - interval '30 days'
				 WHERE state IN ('succeeded', 'failed', 'deleted') AND random() < 0.3;
				PERFORM qml.maintain();
			ELSE
				PERFORM qml.maintain();
			END IF;
			-- one change in six is rolled back with its subtransaction
			IF random() < 0.16 THEN
				RAISE EXCEPTION 'roll back';
			END IF;
		EXCEPTION WHEN raise_exception THEN
			NULL;
		END;
	END LOOP;
END $$;
SQL

rounds=24
for i in $(seq 1 $rounds); do
	if [ $((i % 4)) = 0 ]; then
		# a whole transaction rolled back
		q $db -c "BEGIN" -c "SELECT random_work(0.$i, 100)" -c "ROLLBACK" >/dev/null || fail "round $i"
	else
		q $db -c "SELECT random_work(0.$i, 150)" >/dev/null || fail "round $i"
	fi
done
check "a random workload of every kind of change, rolled back in part: qml.stats() exact" exact "$(q $db -c "SELECT counts_check()")"
q $db -c "SELECT qml.maintain()" >/dev/null
check "... still exact after a roll-up" exact "$(q $db -c "SELECT counts_check()")"
summary=$(q $db -c "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) FROM (SELECT state, count(*) n FROM qml.jobs GROUP BY 1) s")
echo "     (the jobs: $summary)"

# qml.stats() agrees column by column and with the queues table
check "qml.stats() columns equal the count" "" "$(q $db -c "
	SELECT s.queue FROM qml.stats() s
	 WHERE (s.scheduled, s.enqueued, s.processing, s.awaiting_retry, s.succeeded, s.failed, s.deleted)
	    <> (SELECT count(*) FILTER (WHERE state = 'scheduled'), count(*) FILTER (WHERE state = 'enqueued'),
			       count(*) FILTER (WHERE state = 'processing'), count(*) FILTER (WHERE state = 'awaiting_retry'),
			       count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed'),
			       count(*) FILTER (WHERE state = 'deleted')
		      FROM qml.jobs j WHERE j.queue = s.queue)")"
check "oldest waiting: the age of the queue's head" "t" "$(q $db -c "
	SELECT bool_and(s.oldest_waiting IS NOT DISTINCT FROM
		   (SELECT now() - h.enqueued_at FROM qml.jobs h WHERE h.queue = s.queue AND h.state = 'enqueued'
			 ORDER BY h.priority DESC, h.run_at, h.id LIMIT 1))
	  FROM qml.stats() s")"

# a prepared transaction gives its counts up: the table is built again
# once it is committed (or rolled back), and qml.stats() is exact meanwhile
if [ "$(q $db -c "SHOW max_prepared_transactions")" -gt 0 ]; then
	q $db -c "BEGIN" -c "SELECT qml.enqueue('p', queue => 'tpc') FROM generate_series(1, 3)" \
		-c "PREPARE TRANSACTION 'qml_counts_tpc'" >/dev/null
	check "a prepared enqueue: qml.stats() exact" 0 "$(q $db -c "SELECT coalesce(sum(enqueued), 0) FROM qml.stats('tpc')")"
	q $db -c "COMMIT PREPARED 'qml_counts_tpc'" >/dev/null
	check "... committed: qml.stats() exact" 3 "$(q $db -c "SELECT sum(enqueued) FROM qml.stats('tpc')")"
	check "... and reads the counts again after the next pass" exact "$(poll 5 $db "SELECT counts_check()" exact)"
else
	echo "skip prepared transactions (max_prepared_transactions = 0)"
fi

# Entries of shared memory that a commit left empty are not freed by it
# (it adds without their lock, src/stats_shared.c): a new count takes one
# once no entry is free. 4,000 queues each get a scheduled job (which no
# throughput counts) in a transaction of its own while no roll-up runs
# (this session holds its advisory lock): the first fill every partition's
# 128 entries, the others find no room. The jobs are then deleted, the
# last first, so that those which found no room do not take the entries
# the first leave empty. A job of a new queue is then still counted in
# shared memory, not written to qml.queue_state_counts at its commit as
# when nothing had room.
fresh=$(q $db <<'SQL'
\o /dev/null
SELECT pg_advisory_lock(7433580, 2);
DO $$
BEGIN
	FOR i IN 1..4000 LOOP
		PERFORM qml.enqueue('fill', queue => 'fill' || i, run_at => now() + interval '1 hour');
		COMMIT;
	END LOOP;
	FOR i IN REVERSE 4000..1 LOOP
		DELETE FROM qml.jobs WHERE queue = 'fill' || i;
		COMMIT;
	END LOOP;
END $$;
SELECT qml.enqueue('fresh', queue => 'fresh');
\o
SELECT count(*) FROM qml.queue_state_counts WHERE queue = 'fresh';
SQL
)
check "emptied entries: a new queue's count waits in shared memory" 0 "$fresh"
check "... qml.stats() exact" exact "$(poll 5 $db "SELECT counts_check()" exact)"

# a TRUNCATE: the counts are built again from qml.jobs, scanned meanwhile
q $db -c "TRUNCATE qml.jobs" -c "SELECT qml.enqueue('after', queue => 'q0')" >/dev/null
check "after a TRUNCATE qml.stats() is exact at once" 1 "$(q $db -c "SELECT sum(enqueued) FROM qml.stats()")"
check "... and reads the counts again after the next pass" exact "$(poll 5 $db "SELECT counts_check()" exact)"

dropdb_ $db
finish
