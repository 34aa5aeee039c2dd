#!/usr/bin/env bash
# bench/stats.sh: what qml.stats() costs with 1,000,000 retained jobs (no
# pass/fail; issue 14's target is under 5 ms), against the scan it used
# to be (SELECT queue, state, count(*) FROM qml.jobs GROUP BY 1, 2),
# measured in the same run on the same table.
#
# 1,000,000 jobs over 20 queues: 70% succeeded, 10% failed, 5% deleted,
# the rest waiting. Each statement runs BENCH_STATS_N times (default 200
# for qml.stats(), a tenth of that for the scan) in one pgbench client;
# pgbench's average latency is printed. Starts its own throwaway cluster
# (scripts/cluster.sh) with qml preloaded on QML_PGPORT (default 5535),
# and stops it afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${BENCH_STATS_N:-200}
JOBS=${BENCH_STATS_JOBS:-1000000}
db=qml_bench_stats
. bench/own_cluster.sh

echo "== $JOBS retained jobs over 20 queues"
for _ in $(seq $((JOBS / 50000))); do
	q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm', 'queue', 'q' || g % 20)) FROM generate_series(1, 50000) g))" >/dev/null
done
q -c "UPDATE qml.jobs SET state = CASE WHEN id % 20 < 14 THEN 'succeeded' WHEN id % 20 < 16 THEN 'failed' ELSE 'deleted' END::qml.job_state WHERE id % 20 < 17" >/dev/null
q -c "VACUUM ANALYZE qml.jobs" >/dev/null
# the scheduler rolls the counts up within a second or two
for _ in $(seq 100); do
	[ "$(q -c "SELECT count(*) FROM qml.queue_state_counts")" -ge 80 ] && break
	sleep 0.1
done
q -f test/counts_check.sql >/dev/null
echo "counts: $(q -c "SELECT counts_check()") (exact: equal to the scan, read without one)"
q -F ' ' -c "SELECT 'states:', string_agg(state || '=' || n, ' ' ORDER BY state) FROM (SELECT state, count(*) n FROM qml.jobs GROUP BY 1) s"

run() { # name sql transactions
	echo "$2" >"$tmp/q.sql"
	pgbench -n -c 1 -t "$3" -f "$tmp/q.sql" $db 2>&1 | sed -n "s/^latency average = \(.*\)/$1: \1/p"
}
echo "== latency, one client"
run "qml.stats()                        " "SELECT * FROM qml.stats()" "$N"
run "qml.stats('q7')                    " "SELECT * FROM qml.stats('q7')" "$N"
run "scan: GROUP BY queue, state        " "SELECT queue, state, count(*) FROM qml.jobs GROUP BY 1, 2" "$((N / 10))"
run "before: qml.stats() as the scan    " "SELECT j.queue, count(*) FILTER (WHERE j.state = 'scheduled'), count(*) FILTER (WHERE j.state = 'enqueued'), count(*) FILTER (WHERE j.state = 'processing'), count(*) FILTER (WHERE j.state = 'awaiting_retry'), count(*) FILTER (WHERE j.state = 'succeeded'), count(*) FILTER (WHERE j.state = 'failed'), count(*) FILTER (WHERE j.state = 'deleted') FROM qml.jobs j GROUP BY j.queue" "$((N / 10))"
