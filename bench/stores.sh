#!/usr/bin/env bash
# bench/stores.sh: libqml's storage backends side by side, in one run, end
# to end through the worker runtime (bench/stores.c): enqueue in batches of
# 1000, claim, no-op handler, complete, with the same number of worker
# threads on each store. Prints jobs/s; never pass or fail.
#
#   bench/stores.sh [--workers N] [--reps N]
#
# memory: always (memory:?retention=0, so that a million finished jobs are
# not kept in memory; MEMORY_JOBS, default 1000000). PostgreSQL: when a
# cluster with qml is reachable through the PG* environment (for example
# after `. scripts/env.sh` with scripts/test.sh's or bench/run.sh's cluster
# up); a database of its own, qml_bench_stores (PG_JOBS, default 20000).
# Redis: a throwaway redis-server on port 6618 when redis-server is
# installed. More stores: STORES_EXTRA="label=url ...".
#
# The machine is shared: every figure is the median of --reps runs, and the
# stores run one after the other, so read them as ratios measured under the
# same load, not as absolutes.
set -uo pipefail
cd "$(dirname "$0")/.."
workers=2
reps=3
while [ $# -gt 0 ]; do
	case $1 in
	--workers) workers=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	*) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
make -s client/build/bench-stores >/dev/null || { echo "bench/stores.c did not build"; exit 1; }
bin=client/build/bench-stores

row() {  # label url jobs
	local out
	out=$("$bin" "$2" --jobs "$3" --workers "$workers" --reps "$reps" 2>&1 | tail -1)
	set -- "$1" "$3" $out
	if [ "${3:-}" = enqueue ]; then
		printf '%-12s %8s %12s %12s %12s %12s %12s\n' "$1" "$2" "$4" "$6" "$8" "${10}" "${12}"
	else
		printf '%-12s %8s  failed: %s\n' "$1" "$2" "$*"
	fi
}

echo "libqml stores, end to end with $workers worker threads, no-op handlers, median of $reps runs"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %8s %12s %12s %12s %12s %12s\n' store jobs enqueue/s run/s end-to-end/s concurrent/s "per CPU-s"
row memory "memory:?retention=0" "${MEMORY_JOBS:-1000000}"
if psql -X -q -d postgres -c "SELECT 1" >/dev/null 2>&1; then
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS qml_bench_stores WITH (FORCE)" -c "CREATE DATABASE qml_bench_stores" >/dev/null
	row postgresql "dbname=qml_bench_stores" "${PG_JOBS:-20000}"
else
	printf '%-12s  no cluster reachable through PG* (see the header of this script)\n' postgresql
fi
# Redis: a throwaway redis-server (appendonly, fsync every second) when one
# is installed; its comparison with BullMQ is bench/redis.sh
if command -v redis-server >/dev/null; then
	. scripts/redis.sh
	rdir=$(mktemp -d /tmp/qml-bench-stores.XXXXXX)
	trap 'redis_stop 6618; rm -rf "$rdir"' EXIT
	redis_start 6618 "$rdir" >/dev/null && row redis "redis://127.0.0.1:6618/0" "${PG_JOBS:-20000}"
fi
for s in ${STORES_EXTRA:-}; do
	row "${s%%=*}" "${s#*=}" "${PG_JOBS:-20000}"
done
echo "enqueue/s: batches of 1000 alone; run/s: server start to stop with every"
echo "completion flushed; end-to-end/s: N over both; concurrent/s: a producer"
echo "thread enqueues while the server runs, from the start of both to the end;"
echo "per CPU-s: that run's jobs per second of CPU time of the benchmark process"
echo "(all its threads; for PostgreSQL the server's CPU is not in it)"
