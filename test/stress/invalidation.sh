#!/usr/bin/env bash
# test/stress/invalidation.sh: enqueue, claim and complete while qml.jobs'
# relcache entry is invalidated all the time. Every VACUUM and ANALYZE of
# the table invalidates it, and with it the index plan the direct writes
# keep for the session (src/direct_insert.c); a plan forgotten while its
# indexes were being opened once left a backend closing indexes it had
# never opened (a segfault within 20 seconds of this load).
#
# Two producers (enqueue_batch of 10), four consumers (fetch 10, then
# complete_batch), and a loop of VACUUM and ANALYZE on qml.jobs and
# qml.job_events, for QML_INVALIDATION_SECONDS (20). Checks that no client
# was cut off, that no job is left processing, and that every job
# enqueued succeeded or still waits.
set -uo pipefail
db=${QML_INVALIDATION_DB:-qml_invalidation}
secs=${QML_INVALIDATION_SECONDS:-20}
work=$(mktemp -d /tmp/qml-invalidation.XXXXXX)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null' EXIT
sql=$(cd "$(dirname "$0")/../../bench/sql" && pwd)

. "$(dirname "$0")/lib.sh"
fresh_db

pgbench -n -M prepared -T "$secs" -c 2 -j 1 -R 200 -f "$sql/churn_produce.sql" "$db" \
	>"$work/produce.out" 2>&1 &
produce=$!
pgbench -n -M prepared -T "$secs" -c 4 -j 2 -f "$sql/churn_consume.sql" "$db" \
	>"$work/consume.out" 2>&1 &
consume=$!
(
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		q -c "VACUUM qml.jobs" -c "ANALYZE qml.jobs" -c "VACUUM qml.job_events_1_1" 2>/dev/null
	done
) &
churn=$!
wait "$produce"; p=$?
wait "$consume"; c=$?
wait "$churn"

fail=0
if [ $p -ne 0 ] || grep -q "aborted\|terminated abnormally" "$work/produce.out"; then
	cat "$work/produce.out"; echo "FAIL producers were cut off"; fail=1
fi
if [ $c -ne 0 ] || grep -q "aborted\|terminated abnormally" "$work/consume.out"; then
	cat "$work/consume.out"; echo "FAIL consumers were cut off"; fail=1
fi
[ "$fail" = 0 ] || die "failed; database $db kept for inspection"

# what the consumers left: nothing processing, nothing lost
got=$(q -c "SELECT count(*) FILTER (WHERE state = 'processing') || ' ' ||
				   count(*) FILTER (WHERE state NOT IN ('succeeded', 'enqueued'))
			  FROM qml.jobs")
enqueued=$(q -c "SELECT count(*) FROM qml.job_events WHERE from_state IS NULL")
jobs=$(q -c "SELECT count(*) FROM qml.jobs")
echo "jobs: $jobs, created in the history: $enqueued; processing, other: $got"
[ "$got" = "0 0" ] && [ "$jobs" = "$enqueued" ] && [ "$jobs" -gt 0 ] ||
	die "jobs left processing or lost; database $db kept for inspection"
drop_db
echo "invalidation: ok"
