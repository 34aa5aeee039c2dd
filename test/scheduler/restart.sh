#!/usr/bin/env bash
# test/scheduler/restart.sh: the server is restarted with pg_ctl -m
# immediate while a producer enqueues, a recurring job ticks, scheduled
# jobs wait and workers hold leases. Afterwards nothing acknowledged is
# lost, no due time fired twice, the runs missed while the server was down
# fired once, scheduled jobs are promoted, jobs of the killed sessions are
# rescued and time leases are left alone.
. "$(dirname "$0")/lib.sh"
db=qml_sched_restart
newdb $db || exit 1
wait_scheduler $db
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

q $db -c "SELECT qml.add_recurring('tick', '1 second', 'tick_job')" >/dev/null
q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'later', 'queue', 'later', 'run_at', clock_timestamp() + interval '2 s' + g * interval '10 ms')) FROM generate_series(1, 100) g))" >/dev/null
sid=$(q $db -c "SELECT qml.enqueue('held_by_session', queue => 'held_s')")
tid=$(q $db -c "SELECT qml.enqueue('held_by_lease', queue => 'held_t')")
q $db -c "SELECT id FROM qml.fetch('timed', '{held_t}', 1, '1 hour', session_lease => false)" >/dev/null
(q $db -c "SELECT id FROM qml.fetch('sessioned', '{held_s}', session_lease => true)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1) &
# a producer: every id it prints was acknowledged (committed)
(seq 1 100000 | sed "s/.*/SELECT qml.enqueue('p', '[&]', queue => 'prod');/" |
	psql -X -q -At -v ON_ERROR_STOP=1 -d $db >"$tmp/acked" 2>/dev/null) &
ppid=$!
poll 5 $db "SELECT state FROM qml.jobs WHERE id = $sid" processing >/dev/null
sleep 1.5

"$here/../../scripts/cluster.sh" restart immediate || { fail "restart"; finish; }
wait $ppid
wait
t_up=$(now)
wait_scheduler $db
sleep 3

acked=$(grep -c . "$tmp/acked")
[ "$acked" -gt 0 ] && ok "the producer was cut off after $acked acknowledged enqueues" || fail "the producer ran"
grep . "$tmp/acked" | paste -sd, >"$tmp/ids"
check "no acknowledged enqueue was lost" "$acked" "$(q $db -c "SELECT count(*) FROM qml.jobs WHERE id = ANY ('{$(cat "$tmp/ids")}'::bigint[])")"
check "scheduled jobs all promoted after the restart" "100" "$(poll 3 $db "SELECT count(*) FROM qml.jobs WHERE queue = 'later' AND state = 'enqueued'" 100)"
check "no due time fired twice" t "$(q $db -c "SELECT count(*) = count(DISTINCT run_at) FROM qml.jobs WHERE method = 'tick_job'")"
check "runs on the cadence, at most one gap (the runs missed while down fired once)" "t t" "$(q $db -F ' ' -c "
	SELECT bool_and(d >= 1 AND d = trunc(d)), count(*) FILTER (WHERE d > 1) <= 1
	  FROM (SELECT extract(epoch FROM run_at - lag(run_at) OVER (ORDER BY run_at)) AS d
			  FROM qml.jobs WHERE method = 'tick_job') x WHERE d IS NOT NULL")"
check "it kept ticking after the restart" t "$(poll 10 $db "SELECT max(run_at) > to_timestamp($t_up) FROM qml.jobs WHERE method = 'tick_job'" t)"
# (after its backoff it may already be enqueued again)
check "the killed session's job was rescued" "1 / session of worker sessioned ended" "$(q $db -c "SELECT (state IN ('awaiting_retry', 'enqueued'))::int || ' / ' || last_error FROM qml.jobs WHERE id = $sid")"
check "a time lease is left to run out" processing "$(q $db -c "SELECT state FROM qml.jobs WHERE id = $tid")"

dropdb_ $db
finish
