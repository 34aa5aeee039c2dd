#!/usr/bin/env bash
# bench/redis.sh: qml's Redis store against BullMQ, side by side in one run
# on one throwaway redis-server (appendonly on, fsync every second, as both
# would run in production), the two alternating RUNS times so a neighbour's
# load touches both alike. Each figure is the median of the runs.
#
#   bench/redis.sh [--jobs N] [--concurrency C] [--single N] [--runs N] [--port P]
#
# end to end: N jobs enqueued in bulk (1,000 a call), then run by no-op
# handlers at concurrency C (qml: C worker threads; BullMQ: its own Worker
# with concurrency C) until every one completed. Enqueue alone: bulk (qml's
# enqueue_batch vs BullMQ's addBulk) and one job a call (qml_enqueue vs
# BullMQ's add, each awaited). The target (issue 15): end to end >= 1.5x.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=20000 conc=8 single=2000 runs=3 port=6619
while [ $# -gt 0 ]; do
	case $1 in
	--jobs) jobs=$2; shift ;;
	--concurrency) conc=$2; shift ;;
	--single) single=$2; shift ;;
	--runs) runs=$2; shift ;;
	--port) port=$2; shift ;;
	*) sed -n '2,13p' "$0" >&2; exit 2 ;;
	esac
	shift
done
. scripts/redis.sh
dir=$(mktemp -d /tmp/qml-bench-redis.XXXXXX)
trap 'redis_stop $port; rm -rf "$dir"' EXIT
make -s client/build/redis-bench >/dev/null
[ -d bench/bullmq/node_modules/bullmq ] || { echo "bench/bullmq: run scripts/install-deps.sh" >&2; exit 1; }
redis_start "$port" "$dir"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
declare -A q b
for run in $(seq 1 "$runs"); do
	redis-cli -p "$port" flushall >/dev/null
	while read -r name v; do q[$name]+="$v "; done < <(client/build/redis-bench "redis://127.0.0.1:$port/0" "$jobs" "$conc" "$single")
	redis-cli -p "$port" flushall >/dev/null
	while read -r name v; do b[$name]+="$v "; done < <(node bench/bullmq/bench.mjs "$port" "$jobs" "$conc" "$single")
	echo "run $run: end to end qml $(echo ${q[e2e]} | awk '{print $NF}')," \
		"BullMQ $(echo ${b[e2e]} | awk '{print $NF}') jobs/s" >&2
done
echo "Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $jobs jobs, concurrency $conc, median of $runs runs"
echo "(a shared 2-core machine: other work ran at the same time; the ratio is the figure to read)"
printf '%-34s %12s %12s %7s\n' figure "qml jobs/s" "BullMQ" ratio
for row in "e2e:end to end (enqueue + run)" "process:run only (no-op handlers)" \
	"enqueue_bulk:enqueue, bulk (addBulk)" "enqueue_single:enqueue, one a call (add)"; do
	k=${row%%:*}
	qv=$(echo ${q[$k]} | tr ' ' '\n' | median)
	bv=$(echo ${b[$k]} | tr ' ' '\n' | median)
	printf '%-34s %12s %12s %6.2fx\n' "${row#*:}" "$qv" "$bv" "$(awk -v a="$qv" -v b="$bv" 'BEGIN {print a / b}')"
done
