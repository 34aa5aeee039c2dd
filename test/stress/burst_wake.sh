#!/usr/bin/env bash
# test/stress/burst_wake.sh: a burst wakes as many waiting fetches as it
# needs (issue 19).
#
# 8 sessions wait in qml.fetch(..., batch => 8, wait => ...) on one queue;
# then 50 jobs arrive in one commit. That takes 7 of the 8 fetches, and
# each must be woken by the commit, not find the jobs at its next look at
# the counts (a waiting fetch looks every 250 ms whatever happens). Measured
# in the server: from the enqueue of the burst's last job (its commit
# follows at once) to the claim of the burst's last job. Five bursts; the
# median must stay under 100 ms, and every job of every burst be claimed.
# On a commit that woke one fetch, the rest of the burst waited for the
# others' 250 ms looks: a median of about 200 ms.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at, in a database of
# its own (qml_burst, or $QML_BURST_DB), dropped on success.
set -uo pipefail
db=${QML_BURST_DB:-qml_burst}
rounds=${QML_BURST_ROUNDS:-5}
sleepers=8
batch=8
jobs=50
bound_ms=100

. "$(dirname "$0")/lib.sh"

fresh_db
lat=()
for r in $(seq 1 "$rounds"); do
	q -c "TRUNCATE qml.jobs, qml.job_events_1_1" || die "truncate failed"
	pids=()
	for s in $(seq 1 $sleepers); do
		q -c "SELECT count(*) FROM qml.fetch('s$s', '{burst}', $batch, interval '1 hour',
								 wait => interval '30 s')" >/dev/null 2>&1 &
		pids+=($!)
	done
	# all of them asleep in the server before the burst
	q -c "DO \$\$ BEGIN
		FOR i IN 1..2000 LOOP
			EXIT WHEN (SELECT count(*) FROM pg_stat_activity
					   WHERE datname = current_database() AND wait_event_type = 'Extension'
						 AND query LIKE '%qml.fetch(''s%') = $sleepers;
			PERFORM pg_sleep(0.005);
			PERFORM pg_stat_clear_snapshot();
		END LOOP;
	END \$\$" || die "the fetches did not start"
	q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
				'method', 'burst', 'queue', 'burst')) FROM generate_series(1, $jobs)))" >/dev/null ||
		die "enqueue failed"
	# until the burst is claimed (or 10 s), then end the fetch left waiting
	q -c "DO \$\$ BEGIN
		FOR i IN 1..2000 LOOP
			EXIT WHEN NOT EXISTS (SELECT FROM qml.jobs WHERE state = 'enqueued');
			PERFORM pg_sleep(0.005);
		END LOOP;
	END \$\$" || die "wait for claims failed"
	q -c "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
		   WHERE datname = current_database() AND query LIKE '%qml.fetch(''s%'
			 AND pid <> pg_backend_pid()" >/dev/null
	wait "${pids[@]}" 2>/dev/null
	res=$(q -F ' ' -c "SELECT count(*) FILTER (WHERE state = 'processing'),
				round(extract(epoch FROM max(started_at) - max(enqueued_at)) * 1000),
				count(DISTINCT locked_by)
			  FROM qml.jobs")
	read -r claimed ms fetches <<<"$res"
	echo "burst $r: $claimed of $jobs jobs claimed by $fetches fetches, last claim ${ms} ms after the enqueue"
	[ "$claimed" = "$jobs" ] || die "burst $r: only $claimed of $jobs jobs claimed"
	lat+=("$ms")
done
median=$(printf '%s\n' "${lat[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")
echo "median: ${median} ms (bound ${bound_ms} ms)"
[ "$median" -le "$bound_ms" ] || die "a burst took ${median} ms to be claimed (median of $rounds), more than ${bound_ms} ms"
drop_db
