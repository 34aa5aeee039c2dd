#!/usr/bin/env bash
# bench/wait.sh: workers waiting in qml.fetch(..., wait => ...) (issue 19),
# measured by bench/wait.c against $DATABASE_URL (bench/run.sh's external
# database): 2,000 jobs/s in 50-job commits every 25 ms for 16 workers in
# fetch(wait) with batch 8 and 1 ms of work per job. Prints the claim
# latency (commit to job in hand) and the complete_batch round trip while
# other workers wait, p50/p99/max. BENCH_T sets the seconds (default 10),
# BENCH_RUNS the runs (default 1).
#
# BENCH_WAIT_TRACE_DIR=DIR writes, for run N, DIR/trace.N (bench/wait.c's
# BENCH_WAIT_TRACE: when each burst was committed and each fetch returned)
# and DIR/activity.N (every 10 ms, the backends not idle and not sleeping
# in fetch: epoch ms, pid, backend type, state, wait event, query), and
# prints to stderr the wait events counted. To find what slow claims wait
# on; the sampling takes some CPU, so figures taken with it are not the
# case's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -Wall -o "$tmp/wait" bench/wait.c -I"$(pg_config --includedir)" \
	-L"$(pg_config --libdir)" -lpq
# at least 10 s, so that the p99 rests on enough claims; BENCH_RUNS runs
# (bench/run.sh takes the median of each figure), each after a checkpoint
# so that one the cases before it made due does not land in the window
t=${BENCH_T:-10}
[ "$t" -ge 10 ] || t=10
trace=${BENCH_WAIT_TRACE_DIR:-}
[ -z "$trace" ] || mkdir -p "$trace"
for run in $(seq 1 "${BENCH_RUNS:-1}"); do
	psql -X -q -d "${DATABASE_URL:?}" -c CHECKPOINT
	if [ -z "$trace" ]; then
		"$tmp/wait" "${DATABASE_URL:?}" "$t" 16 8 50 25
		# the same with claims that wait for the WAL flush, as every fetch
		# did before 2026-12-07 (qml.durable_claims; src/claim_commit.c)
		psql -X -q -d "$DATABASE_URL" -c CHECKPOINT
		PGOPTIONS="-c qml.durable_claims=on" "$tmp/wait" "$DATABASE_URL" "$t" 16 8 50 25 |
			sed -n 's/^claim latency:/durable claims, claims:/p; s/^complete_batch while others wait:/durable claims, complete_batch:/p'
		continue
	fi
	psql -X -q -At -F ' ' -d "$DATABASE_URL" >"$trace/activity.$run" 2>/dev/null <<-'SQL' &
	SELECT round(extract(epoch FROM clock_timestamp()) * 1000, 1), pid,
	       replace(backend_type, ' ', '_'), state,
	       coalesce(wait_event_type || '/' || wait_event, '-'),
	       left(regexp_replace(query, '\s+', ' ', 'g'), 40)
	  FROM pg_stat_activity
	 WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'
	   AND wait_event IS DISTINCT FROM 'Extension'
	   AND backend_type IN ('client backend', 'autovacuum worker', 'qml scheduler') \watch 0.01
	SQL
	sampler=$!
	BENCH_WAIT_TRACE=$trace/trace.$run "$tmp/wait" "${DATABASE_URL:?}" "$t" 16 8 50 25
	kill "$sampler"
	wait "$sampler" 2>/dev/null || true
	echo "wait events sampled in run $run (client backends, autovacuum, scheduler):" >&2
	awk '{ print $3, $5 }' "$trace/activity.$run" | sort | uniq -c | sort -rn | head -12 >&2
done
