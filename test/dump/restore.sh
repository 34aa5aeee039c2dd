#!/usr/bin/env bash
# test/dump/restore.sh: pg_dump keeps every qml table's rows and both
# identity sequences, and a restore loads them as they were: no history,
# statistics, wakeups or stamps of its own. For a custom-format dump
# restored with pg_restore and a plain one run by psql: the restored
# tables equal the source's, qml.enqueue works at once (no id already
# taken), and the restored jobs can be fetched and completed.
. "$(dirname "$0")/../scheduler/lib.sh"
src=qml_dump_src
tmp=$(mktemp -d)
# statistics are counted only where a scheduler serves the database
# (stats.c): serve this suite's databases alone, so that each gets one
# whatever other suites left behind (max_worker_processes)
trap 'rm -rf "$tmp"; q postgres -c "ALTER SYSTEM RESET qml.databases" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
q postgres -c "ALTER SYSTEM SET qml.databases = '$src, qml_dump_custom, qml_dump_plain'" \
	-c "SELECT pg_reload_conf()" >/dev/null || exit 1
newdb $src || exit 1
wait_scheduler $src
check "a scheduler serves the source" t "$(q $src -c "SELECT qml.stats_live()")"

# every kind of row: each state, history, queue settings, a recurring
# job, rolled-up statistics. Nothing the scheduler would change later:
# scheduled and retrying jobs are far off, leases long and not bound to
# the session.
q $src >/dev/null <<'SQL' || exit 1
SELECT qml.configure_queue('q', history => true, retention => '2 days');
SELECT qml.pause_queue('paused');
SELECT qml.add_recurring('nightly', '@yearly', 'report');
SELECT count(qml.enqueue('m', jsonb_build_array(i), queue => 'q', priority => i % 3,
                         unique_key => CASE WHEN i % 10 = 0 THEN 'k' || i END))
  FROM generate_series(1, 50) i;
SELECT qml.schedule('later', delay => '1 day', queue => 'q');
SELECT count(*) FROM qml.fetch('w', '{q}', 20, lease => '1 hour', session_lease => false);
SELECT count(*) FROM qml.complete_batch((SELECT array_agg(id ORDER BY id) FROM qml.jobs
                                          WHERE state = 'processing' AND id % 2 = 0), 'w');
SELECT qml.fail(id, 'w', 'boom', retry => id % 3 = 0) FROM qml.jobs
 WHERE state = 'processing' AND id % 5 = 1;
UPDATE qml.jobs SET run_at = now() + interval '1 day' WHERE state = 'awaiting_retry';
SELECT qml.delete(max(id)) FROM qml.jobs WHERE state = 'enqueued';
SELECT qml.maintain();
SQL

# the tables as text, ordered
snapshot() {
	q "$1" <<'SQL'
SELECT 'jobs', count(*), md5(string_agg(j::text, '|' ORDER BY j.id)) FROM qml.jobs j;
SELECT 'events', count(*), md5(string_agg(e::text, '|' ORDER BY e.id)) FROM qml.job_events e;
SELECT 'queues', count(*), md5(string_agg(x::text, '|' ORDER BY x.name)) FROM qml.queues x;
SELECT 'recurring', count(*), md5(string_agg(r::text, '|' ORDER BY r.name)) FROM qml.recurring r;
SELECT 'throughput', count(*), md5(string_agg(t::text, '|' ORDER BY t.minute, t.queue)) FROM qml.throughput_minutes t;
SQL
}
before=$(snapshot $src)
check "the source has statistics rolled up" t \
	"$(q $src -c "SELECT sum(succeeded) > 0 AND sum(enqueued) > 0 FROM qml.throughput_minutes")"
pg_dump -Fc -d $src -f "$tmp/dump.custom" || exit 1
pg_dump -d $src -f "$tmp/dump.sql" || exit 1
maxid=$(q $src -c "SELECT max(id) FROM qml.jobs")
key=$(q $src -c "SELECT min(unique_key) FROM qml.jobs WHERE state = 'enqueued'")
first=$(q $src -c "SELECT id FROM qml.jobs WHERE queue = 'q' AND state = 'enqueued' ORDER BY priority DESC, run_at, id LIMIT 1")

restored() {
	local db=$1 how=$2
	# the counts a restore might have made are rolled up first
	check "$how: a scheduler serves the restored database" t "$(q $db -c "SELECT qml.stats_live()")"
	q $db -c "SELECT qml.maintain()" >/dev/null
	check "$how: every table as it was" "$before" "$(snapshot $db)"
	check "$how: qml.stats()' counts are the jobs restored" \
		"$(q $db -c "SELECT string_agg(queue || ':' || state || ':' || n, ',' ORDER BY queue, state) FROM (SELECT queue, state::text, count(*) AS n FROM qml.jobs GROUP BY 1, 2) c")" \
		"$(q $db -c "SELECT string_agg(queue || ':' || state || ':' || jobs, ',' ORDER BY queue, state) FROM qml.state_counts() WHERE jobs <> 0")"
	check "$how: no history of its own" \
		"$(q $src -c "SELECT count(*) FROM qml.job_events")" "$(q $db -c "SELECT count(*) FROM qml.job_events")"
	check "$how: enqueue works at once, with a new id" t \
		"$(q $db -c "SELECT qml.enqueue('after', queue => 'q') > $maxid")"
	check "$how: a unique_key restored still holds" t \
		"$(q $db -c "SELECT qml.enqueue('m', queue => 'q', unique_key => '$key') = (SELECT id FROM qml.jobs WHERE unique_key = '$key')")"
	check "$how: the restored jobs are fetched in order and completed" "$first|t" \
		"$(q $db -c "SELECT id, qml.complete(id, 'w2') FROM qml.fetch('w2', '{q}', 1) f")"
	check "$how: ... with only the new changes in the history" 3 \
		"$(q $db -c "SELECT (SELECT count(*) FROM qml.job_events) - $(q $src -c "SELECT count(*) FROM qml.job_events")")"
	check "$how: the job events' ids go on too" t \
		"$(q $db -c "SELECT count(DISTINCT id) = count(*) FROM qml.job_events")"
}

dst=qml_dump_custom
dropdb_ $dst; psql -X -q -d postgres -c "CREATE DATABASE $dst" || exit 1
wait_scheduler $dst
pg_restore -d $dst "$tmp/dump.custom" || fail "pg_restore ran without errors"
restored $dst "pg_restore (custom format)"
dropdb_ $dst

dst=qml_dump_plain
dropdb_ $dst; psql -X -q -d postgres -c "CREATE DATABASE $dst" || exit 1
wait_scheduler $dst
psql -X -q -v ON_ERROR_STOP=1 -d $dst -f "$tmp/dump.sql" >/dev/null || fail "psql ran the plain dump without errors"
restored $dst "psql (plain format)"
dropdb_ $dst

# only a COPY into qml.jobs is a load: an INSERT is stamped and recorded
id=$(q $src -c "INSERT INTO qml.jobs (method, state) VALUES ('plain', 'enqueued') RETURNING id")
check "an INSERT is still stamped and recorded" "t|1" \
	"$(q $src -c "SELECT enqueued_at IS NOT NULL, (SELECT count(*) FROM qml.job_events e WHERE e.job_id = $id) FROM qml.jobs WHERE id = $id")"
dropdb_ $src
finish
