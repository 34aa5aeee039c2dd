#!/usr/bin/env bash
# test/scheduler/prune_stats.sh: old finished jobs and their history are
# pruned a thousand at a time, by the scheduler, within each queue's
# retention; negative retentions are refused; succeeded/failed/enqueued
# counts are rolled up per queue per minute and qml.throughput() reads
# them without touching qml.jobs.
. "$(dirname "$0")/lib.sh"
db=qml_sched_prune
newdb $db || exit 1
wait_scheduler $db

# --- negative retention
check "ALTER SYSTEM SET qml.retention = -1: 22023" 22023 "$(sqlstate $db "ALTER SYSTEM SET qml.retention = -1")"
check "a queue's negative retention: 23514" 23514 "$(sqlstate $db "INSERT INTO qml.queues (name, retention) VALUES ('neg', '-1 hour')")"
check "... nothing changed" 0 "$(q $db -c "SELECT count(*) FROM qml.queues")"

# --- 3000 old succeeded jobs in 'old', 10 old ones in 'kept' (7 days
#     retention), 10 old failed, 10 live
mk() { # queue n [fail]
	q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm', 'queue', '$1')) FROM generate_series(1, $2)))" >/dev/null
	while [ "$(q $db -c "SELECT count(*) FROM qml.fetch('w', '{$1}', 1000, session_lease => false)")" != 0 ]; do :; done
	if [ -n "${3:-}" ]; then q $db -c "SELECT count(qml.fail(id, 'w', 'x', false)) FROM qml.jobs WHERE queue = '$1'" >/dev/null
	else q $db -c "SELECT count(*) FROM qml.complete_batch(array(SELECT id FROM qml.jobs WHERE queue = '$1'), 'w')" >/dev/null; fi
}
mk old 3000; mk kept 10; mk oldfailed 10 fail
q $db -c "SELECT qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'live', 'queue', 'live')) FROM generate_series(1, 10)))" >/dev/null
q $db -c "INSERT INTO qml.queues (name, retention) VALUES ('kept', '7 days')" >/dev/null
events=$(q $db -c "SELECT count(*) FROM qml.job_events e JOIN qml.jobs j ON j.id = e.job_id WHERE j.queue = 'old'")
[ "$events" -ge 6000 ] && ok "history recorded ($events events)" || fail "history recorded" "$events"
check "a pass prunes a thousand at most" 1000 "$(q $db -c "BEGIN" -c "UPDATE qml.jobs SET finished_at = now() - interval '2 days' WHERE state IN ('succeeded', 'failed')" -c "SELECT qml.maintain()->>'pruned'" -c "COMMIT")"
check "the scheduler prunes the rest at once" 0 "$(poll 5 $db "SELECT count(*) FROM qml.jobs WHERE queue = 'old'" 0)"
check "their history went with them" 0 "$(q $db -c "SELECT count(*) FROM qml.job_events e WHERE NOT EXISTS (SELECT 1 FROM qml.jobs j WHERE j.id = e.job_id)")"
check "a queue's longer retention keeps its jobs" 10 "$(q $db -c "SELECT count(*) FROM qml.jobs WHERE queue = 'kept'")"
check "failed jobs stay (qml.prune_failed off)" 10 "$(q $db -c "SELECT count(*) FROM qml.jobs WHERE queue = 'oldfailed'")"
check "live jobs stay" 10 "$(q $db -c "SELECT count(*) FROM qml.jobs WHERE queue = 'live'")"

# --- statistics: counted as they happen, rolled up within a second
q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm', 'queue', 'st')) FROM generate_series(1, 25)))" >/dev/null
q $db -c "SELECT count(*) FROM qml.fetch('w', '{st}', 25, session_lease => false)" >/dev/null
q $db -c "SELECT count(*) FROM qml.complete_batch(array(SELECT id FROM qml.jobs WHERE queue = 'st' ORDER BY id LIMIT 20), 'w')" >/dev/null
q $db -c "SELECT count(qml.fail(id, 'w', 'x', false)) FROM qml.jobs WHERE queue = 'st' AND state = 'processing'" >/dev/null
q $db -c "BEGIN" -c "SELECT qml.enqueue('rolled_back', queue => 'st')" -c "ROLLBACK" >/dev/null
check "rolled up: enqueued, succeeded, failed" "25 20 5" "$(poll 3 $db "SELECT sum(enqueued) || ' ' || sum(succeeded) || ' ' || sum(failed) FROM qml.throughput_minutes WHERE queue = 'st'" "25 20 5")"
check "qml.throughput() reads the roll-up" "20 5" "$(q $db -F ' ' -c "SELECT sum(succeeded), sum(failed) FROM qml.throughput() WHERE queue = 'st'")"
check "... and does not touch qml.jobs" 0 "$(q $db -c "BEGIN" -c "SELECT count(*) FROM qml.throughput('1 hour', '1 day')" -c "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = 'qml.jobs'::regclass" -c "COMMIT" | sed -n 2p)"

dropdb_ $db
finish
