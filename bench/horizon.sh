#!/usr/bin/env bash
# bench/horizon.sh: a held xmin horizon (issue 19). Jobs flow steadily
# (bench/wait.c: one producer enqueueing BENCH_HORIZON_RATE jobs/s, default
# 10,000, in 100-job commits; 8 workers fetching 50 at a time and
# completing them with complete_batch) for BEFORE seconds (180); then a
# session opens a REPEATABLE READ transaction, takes its snapshot and
# idles for HOLD seconds (600), then commits; the flow goes on for AFTER
# seconds (300). Every 30 s: jobs claimed per second, claim latency
# (commit to job in hand) p50/p99, qml.jobs' size with its indexes, and
# its dead tuples. Targets: jobs/s during the hold >= 0.9 x before, claim
# p99 during the hold <= 2 x before, size AFTER s after the hold <= 1.2 x
# the size before it. Runs against $DATABASE_URL (bench/run.sh --horizon).
# A machine that cannot take the rate saturates: lower BENCH_HORIZON_RATE
# to below what it sustains, or the latencies measure the backlog.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rate=${BENCH_HORIZON_RATE:-10000}
before=${BENCH_HORIZON_BEFORE:-180}
hold=${BENCH_HORIZON_HOLD:-600}
after=${BENCH_HORIZON_AFTER:-300}
window=${BENCH_HORIZON_WINDOW:-30}
total=$((before + hold + after))
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "${DATABASE_URL:?}" "$@"; }

cc -O2 -Wall -o "$tmp/wait" bench/wait.c -I"$(pg_config --includedir)" \
	-L"$(pg_config --libdir)" -lpq
"$tmp/wait" "$DATABASE_URL" "$total" 8 50 100 $((100 * 1000 / rate)) 0 "$window" >"$tmp/flow.out" &
flow=$!
t0=$SECONDS
# the snapshot holder: idle in transaction, not running a statement
(
	sleep $((before + 1))
	{
		echo "BEGIN ISOLATION LEVEL REPEATABLE READ;"
		echo "SELECT count(*) FROM qml.queues;"
		sleep "$hold"
		echo "COMMIT;"
	} | q >/dev/null
) &
pids+=($!)
# size and dead tuples at the end of each window (the flow starts 0.5 s in)
sleep 0.5
for w in $(seq $window $window $total); do
	left=$((w - (SECONDS - t0)))
	[ "$left" -le 0 ] || sleep "$left"
	q -F ' ' -c "SELECT $w, round(pg_total_relation_size('qml.jobs') / 1048576.0, 1),
						coalesce(n_dead_tup, 0)
				   FROM pg_stat_user_tables WHERE relid = 'qml.jobs'::regclass" >>"$tmp/size.txt"
done
wait "$flow"

# no "ms" or "jobs/s" after a number but in the summary: bench/parse-output.pl
echo "== $rate jobs a second offered; a snapshot held from second ${before} to second $((before + hold))"
printf '%12s  %13s  %9s  %9s  %10s  %11s\n' window_end_s claimed_per_s claim_p50 claim_p99 size_mb dead_tuples
tail -n +2 "$tmp/flow.out" | while read -r t n p50 p99; do
	read -r size dead < <(awk -v t="$t" '$1 == t { print $2, $3 }' "$tmp/size.txt")
	printf '%12s  %13s  %9s  %9s  %10s  %11s\n' "$t" "$n" "$p50" "$p99" "${size:-?}" "${dead:-?}"
done
# before: every window but the first (warming up); during: the hold's
# windows; size: at the hold's start and AFTER s after its end
awk -v b="$before" -v h="$hold" -v w="$window" -v tot="$total" '
	FNR == 1 && FILENAME ~ /flow/ { next }
	FILENAME ~ /flow/ {
		if ($1 > w && $1 <= b) { rb += $2; nb++; if ($4 > pb) pb = $4 }
		if ($1 > b + w && $1 <= b + h) { rd += $2; nd++; if ($4 > pd) pd = $4 }
		next
	}
	{ if ($1 == b) s0 = $2; if ($1 == tot) s2 = $2; if ($1 == b + h) s1 = $2 }
	END {
		if (!nb || !nd) { print "too short a run for the summary"; exit }
		print "-- horizon"
		printf "before the hold: %.0f jobs/s\n", rb / nb
		printf "during the hold: %.0f jobs/s\n", rd / nd
		printf "claim latency before the hold, 99th percentile: %.2f ms\n", pb
		printf "claim latency during the hold, 99th percentile: %.2f ms\n", pd
		printf "table and indexes: %.1f MB before the hold, %.1f MB at its end, %.1f MB %d s after it\n", s0, s1, s2, tot - b - h
		printf "ratios: jobs/s during/before %.2f (target >= 0.9), claim p99 during/before %.2f (target <= 2), size after/before %.2f (target <= 1.2)\n",
			(rd / nd) / (rb / nb), pd / pb, s0 ? s2 / s0 : 0
	}' "$tmp/flow.out" "$tmp/size.txt"
