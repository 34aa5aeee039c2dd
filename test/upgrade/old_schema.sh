#!/usr/bin/env bash
# test/upgrade/old_schema.sh: the library serves a database whose SQL is
# still 1.0's, 1.1's or 1.2's (the new qml.so installed and the server
# restarted, ALTER EXTENSION qml UPDATE not run yet). Every C function the
# 1.0, 1.1 and 1.2 scripts declare is in qml.so; the API works on the 1.0 tables, the
# scheduler promotes, rescues and fires recurring jobs there; what needs
# 1.1 refuses with 55000 and says to update; on 1.1 the history goes to
# its table qml.job_events, directly or, with an admin's trigger there, by
# INSERT; nothing crashes or lands in the log; then the update runs and the
# same session goes on, on 1.3, with the history kept. On 1.2 fail,
# fail_batch, heartbeat and release are still PL/pgSQL: they work, and a
# session that called them goes on with 1.3's C ones after the update.
. "$(dirname "$0")/../scheduler/lib.sh"
root=$(cd "$here/../.." && pwd)
db=qml_up_old
log0=$(log_lines)

so=$(pg_config --pkglibdir)/qml.so
missing=$(cat "$root/qml--1.0.sql" "$root/qml--1.1.sql" "$root/qml--1.2.sql" | grep -o "'MODULE_PATHNAME', *'[A-Za-z0-9_]*'" | sed "s/.*'\([A-Za-z0-9_]*\)'$/\1/" | sort -u |
	while read -r sym; do grep -qw "$sym" <(nm -D --defined-only "$so") || echo "$sym"; done)
check "every C function of qml--1.0.sql, qml--1.1.sql and qml--1.2.sql is in the installed qml.so ($(cat "$root/qml--1.0.sql" "$root/qml--1.1.sql" "$root/qml--1.2.sql" | grep -c "'MODULE_PATHNAME'") declarations)" "" "$missing"

dropdb_ $db
psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
q $db -c "CREATE EXTENSION qml VERSION '1.0'" >/dev/null || { fail "CREATE EXTENSION qml VERSION '1.0'"; finish; }
wait_scheduler $db
check "the database is on 1.0" "1.0" "$(q $db -c "SELECT extversion FROM pg_extension WHERE extname = 'qml'")"

check "enqueue, enqueue_batch" "1 2 3" "$(q $db -F ' ' -c "SELECT qml.enqueue('a'), (SELECT array_to_string(array_agg(x), ' ') FROM qml.enqueue_batch('[{\"method\": \"b\"}, {\"method\": \"c\"}]') x)" | cut -d' ' -f1-3)"
check "a unique key spans every queue, as 1.0's index says" "t t" \
	"$(q $db -F ' ' -c "SELECT qml.enqueue('u', unique_key => 'k') = qml.enqueue('u', unique_key => 'k'), qml.enqueue('u', unique_key => 'k') = qml.enqueue('u', queue => 'other', unique_key => 'k')")"
check "fetch, heartbeat, complete" "1 1 t" \
	"$(q $db -F ' ' -c "SELECT f.id, (SELECT count(*) FROM qml.heartbeat(ARRAY[f.id], 'w')), qml.complete(f.id, 'w', '{\"r\": 1}') FROM qml.fetch('w') f")"
check "complete_batch" "2" "$(q $db -c "SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.fetch('w', batch => 2)), 'w')")"
q $db -c "SELECT qml.enqueue('f', queue => 'fq', backoff_base => '1 second')" >/dev/null
check "fail with attempts left" "awaiting_retry" "$(q $db -c "SELECT qml.fail(f.id, 'w', 'boom') FROM qml.fetch('w', '{fq}') f")"
check "release" "t" "$(q $db -c "SELECT qml.release(f.id, 'w') FROM qml.fetch('w', '{default}') f")"
check "delete, requeue, pause" "t t t" "$(q $db -F ' ' -c "SELECT qml.delete(qml.enqueue('d')), qml.requeue(currval('qml.jobs_id_seq')), qml.pause_queue('p')")"
check "the scheduler promotes a retry and a scheduled job" "enqueued enqueued" \
	"$(poll 10 $db "SELECT string_agg(state::text, ' ' ORDER BY id) FROM qml.jobs WHERE queue = 'fq' OR method = 'later'" "enqueued" >/dev/null
		q $db -c "SELECT qml.schedule('later', delay => '1 second')" >/dev/null
		poll 10 $db "SELECT string_agg(state::text, ' ' ORDER BY id) FROM qml.jobs WHERE queue = 'fq' OR method = 'later'" "enqueued enqueued")"
q $db -c "SELECT qml.add_recurring('tick', '1 second', 'tick_job')" >/dev/null
check "the scheduler fires a recurring job" "t" "$(poll 10 $db "SELECT count(*) >= 2 FROM qml.jobs WHERE method = 'tick_job'" t)"
q $db -c "SELECT qml.remove_recurring('tick')" >/dev/null
# the job first, then the session that claims it: the other way round the
# claim could run before the enqueue, find nothing, and leave the rescue
# below nothing to do (its check would pass on an enqueued job regardless)
q $db -c "SELECT qml.enqueue('s', queue => 'sess')" >/dev/null
(q $db -c "SELECT f.id FROM qml.fetch('gone', '{sess}', session_lease => true) f" -c "SELECT pg_sleep(30)" >/dev/null 2>&1) &
check "a session claims a job with a session lease" processing \
	"$(poll 10 $db "SELECT state FROM qml.jobs WHERE queue = 'sess'" processing)"
psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db' AND query LIKE '%pg_sleep(30)%'" >/dev/null
check "the scheduler rescues a dead session's job" "t" "$(poll 10 $db "SELECT state IN ('awaiting_retry', 'enqueued') FROM qml.jobs WHERE queue = 'sess'" t)"
check "stats, throughput, maintain" "t t t" "$(q $db -F ' ' -c "SELECT (SELECT count(*) > 0 FROM qml.stats()), (SELECT count(*) >= 0 FROM qml.throughput()), qml.maintain() ? 'promoted'")"
check "the history is written" "t" "$(q $db -c "SELECT count(*) >= 20 FROM qml.job_events")"
# an index that is not a plain btree sends fetch to its statement, which names 1.1's column
q $db -c "CREATE INDEX jobs_method_hash ON qml.jobs USING hash (method)" >/dev/null
check "what needs 1.1's SQL refuses with 55000" "55000" "$(sqlstate $db "SELECT * FROM qml.fetch('w')")"
check "... and says what to run" "HINT:  Run ALTER EXTENSION qml UPDATE, or qml migrate." \
	"$(psql -X -q -d $db -c "SELECT * FROM qml.fetch('w')" 2>&1 | grep HINT)"
check "enqueue still works beside that index" "t" "$(q $db -c "SELECT qml.enqueue('after_index') > 0")"
q $db -c "DROP INDEX qml.jobs_method_hash" >/dev/null

# one session across the update: on 1.0, then updated, then on 1.1
cross=$(q $db <<'SQL'
SELECT count(qml.complete(f.id, 'w')) FROM qml.fetch('w', '{default}', 100) f;
SELECT qml.enqueue('cross');
ALTER EXTENSION qml UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'qml';
SELECT bool_and(qml.complete(f.id, 'w')) FROM qml.fetch('w', '{default}', 100) f;
SELECT count(*) = 1 FROM qml.jobs WHERE method = 'cross' AND state = 'succeeded';
SQL
)
check "one session goes on after ALTER EXTENSION UPDATE" "1.3 t t" "$(echo "$cross" | tail -3 | paste -sd' ')"
dropdb_ $db

# 1.1: the history is the table qml.job_events
psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
q $db -c "CREATE EXTENSION qml VERSION '1.1'" >/dev/null || { fail "CREATE EXTENSION qml VERSION '1.1'"; finish; }
wait_scheduler $db
check "1.1: enqueue, fetch, heartbeat, complete, fail, release" "t 1 2 awaiting_retry t" "$(q $db -F ' ' <<'SQL' | tail -1
SELECT qml.enqueue('a');
SELECT count(*) FROM qml.enqueue_batch('[{"method": "b"}, {"method": "c"}]');
SELECT qml.enqueue('f', queue => 'fq', backoff_base => '1 second');
SELECT (SELECT count(*) FROM qml.fetch('w', batch => 3)) = 3,
	   (SELECT count(*) FROM qml.heartbeat(ARRAY[1]::bigint[], 'w')),
	   (SELECT count(*) FROM qml.complete_batch('{1,2}', 'w')),
	   (SELECT qml.fail(f.id, 'w', 'boom') FROM qml.fetch('w', '{fq}') f),
	   qml.release(3, 'w');
SQL
)"
check "1.1: the scheduler promotes the retry" "enqueued" "$(poll 10 $db "SELECT state FROM qml.jobs WHERE queue = 'fq'" enqueued)"
check "1.1: each change is a row of the table qml.job_events" "r|4|1|3|3" \
	"$(q $db -F '|' -c "SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'qml.job_events'::regclass), (SELECT count(*) FROM qml.job_events WHERE job_id = 4), (SELECT count(*) FROM qml.job_events WHERE job_id = 2 AND to_state = 'succeeded'), (SELECT count(*) FROM qml.job_events WHERE job_id = 3), (SELECT count(*) FROM qml.job_events WHERE from_state IS NULL AND job_id <= 3)")"
# an admin's trigger on the table: the history goes by INSERT, and runs it
q $db -c "CREATE TABLE seen (n int)" -c "CREATE FUNCTION count_event() RETURNS trigger LANGUAGE plpgsql AS \$f\$BEGIN INSERT INTO public.seen VALUES (1); RETURN NULL; END\$f\$" \
	-c "CREATE TRIGGER count_event AFTER INSERT ON qml.job_events FOR EACH ROW EXECUTE FUNCTION count_event()" >/dev/null
check "1.1: with an admin's trigger on qml.job_events, enqueue and its history" "2" \
	"$(q $db <<'SQL'
SELECT qml.enqueue('g') AS g \gset
SELECT (SELECT count(*) FROM qml.job_events WHERE job_id = :g) + (SELECT count(*) FROM seen);
SQL
)"
q $db -c "DROP TRIGGER count_event ON qml.job_events" >/dev/null
before=$(q $db -c "SELECT count(*) FROM qml.job_events")
cross=$(q $db <<'SQL'
SELECT qml.enqueue('cross') AS id \gset
SELECT count(*) FROM qml.fetch('w', '{default}', 100);
ALTER EXTENSION qml UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'qml';
SELECT bool_and(qml.complete(j.id, 'w')) FROM qml.jobs j WHERE j.state = 'processing' AND j.locked_by = 'w';
SELECT string_agg(coalesce(from_state::text, '-') || '>' || to_state, ' ' ORDER BY id) FROM qml.job_events WHERE job_id = :id;
SELECT count(*) FROM qml.job_events_1_1;
SQL
)
check "1.1: one session goes on after ALTER EXTENSION UPDATE, its history read on 1.3" \
	"1.3 t ->enqueued enqueued>processing processing>succeeded $((before + 4))" "$(echo "$cross" | tail -4 | paste -sd' ')"
dropdb_ $db

# 1.2: fail, fail_batch, heartbeat and release are PL/pgSQL, run by the new
# library's triggers; one session calls them, the update makes them C, and
# the same session calls those
psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
q $db -c "CREATE EXTENSION qml VERSION '1.2'" >/dev/null || { fail "CREATE EXTENSION qml VERSION '1.2'"; finish; }
wait_scheduler $db
cross=$(q $db -F ' ' <<'SQL'
SELECT count(qml.enqueue('h' || g, queue => 'h', max_attempts => 2, backoff_base => '1 hour')) FROM generate_series(1, 10) g;
SELECT count(*) FROM qml.fetch('w', '{h}', 10);
SELECT string_agg(l.lanname, ',' ORDER BY p.proname) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'qml'::regnamespace AND p.proname IN ('fail', 'fail_batch', 'heartbeat', 'release');
SELECT (SELECT count(*) FROM qml.heartbeat('{1,2,3,4,5}', 'w', '2 hours')),
	   qml.fail(1, 'w', 'boom'),
	   (SELECT string_agg(f.state::text, ',' ORDER BY f.job_id) FROM qml.fail_batch('{2,3}', 'w', '{e2,e3}', '{true,false}') f),
	   qml.release(4, 'w');
ALTER EXTENSION qml UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'qml';
SELECT string_agg(l.lanname, ',' ORDER BY p.proname) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'qml'::regnamespace AND p.proname IN ('fail', 'fail_batch', 'heartbeat', 'release');
SELECT (SELECT count(*) FROM qml.heartbeat('{5,6,7,8,9}', 'w', '2 hours')),
	   qml.fail(6, 'w', 'boom'),
	   (SELECT string_agg(f.state::text, ',' ORDER BY f.job_id) FROM qml.fail_batch('{7,8}', 'w', '{e7,e8}', '{true,false}') f),
	   qml.release(9, 'w');
SELECT string_agg(j.id || ':' || (SELECT string_agg(coalesce(e.from_state::text, '-') || '>' || e.to_state, ' ' ORDER BY e.ordinal)
									FROM qml.job_events e WHERE e.job_id = j.id), ' ' ORDER BY j.id)
  FROM qml.jobs j WHERE j.id IN (1, 2, 3, 4, 6, 7, 8, 9);
SQL
)
check "1.2: the PL/pgSQL functions, then after the update the C ones, in one session" \
"sql,plpgsql,plpgsql,plpgsql
5 awaiting_retry awaiting_retry,failed t
1.3
c,c,c,c
5 awaiting_retry awaiting_retry,failed t
1:->enqueued enqueued>processing processing>awaiting_retry 2:->enqueued enqueued>processing processing>awaiting_retry 3:->enqueued enqueued>processing processing>failed 4:->enqueued enqueued>processing processing>enqueued 6:->enqueued enqueued>processing processing>awaiting_retry 7:->enqueued enqueued>processing processing>awaiting_retry 8:->enqueued enqueued>processing processing>failed 9:->enqueued enqueued>processing processing>enqueued" \
	"$(echo "$cross" | tail -6)"
check "no crash, and no error from the scheduler, in the server log" "" \
	"$(log_since "$log0" | grep -E "terminated by signal|PANIC|server process|ERROR.*|qml scheduler.*ERROR" | grep -v "STATEMENT\|jobs_method_hash\|qml.fetch('w')\|terminating connection due to administrator" | grep -E "signal|PANIC|server process|$db" | head -5)"
dropdb_ $db
finish
