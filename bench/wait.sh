#!/usr/bin/env bash
# bench/wait.sh: workers waiting in qml.fetch(..., wait => ...) (issue 19),
# measured by bench/wait.c against $DATABASE_URL (bench/run.sh's external
# database): 2,000 jobs/s in 50-job commits every 25 ms for 16 workers in
# fetch(wait) with batch 8 and 1 ms of work per job. Prints the claim
# latency (commit to job in hand) and the complete_batch round trip while
# other workers wait, p50/p99/max. BENCH_T sets the seconds (default 10),
# BENCH_RUNS the runs (default 1).
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
for _ in $(seq 1 "${BENCH_RUNS:-1}"); do
	psql -X -q -d "${DATABASE_URL:?}" -c CHECKPOINT
	"$tmp/wait" "${DATABASE_URL:?}" "$t" 16 8 50 25
done
