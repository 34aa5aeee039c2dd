#!/usr/bin/env bash
# bench/enqueue_cost.sh: what one enqueued job costs the server, side by side
# with the raw baseline (issue 19), in figures that a busy machine does not
# blur as much as jobs/s: the backend's own CPU time per 1,000 jobs (from
# /proc, so the server must run on this machine) and the WAL bytes per job.
# No pass/fail.
#
# Cases 1 and 2 of bench/run.sh, the same statements (bench/sql/), one
# session each, plus the variants that bound the levers of issue 19:
#   batch qml, history off        one history row per batch can save at most this
#   batch qml, one priority       every jobs_fetch_idx entry on the rightmost
#                                 leaf: what index order could save at most
#   batch, the JSON array alone   the statement's own jsonb_agg, which the raw
#                                 side does not build: the floor of the ratio
#   single qml, history off
# The variants alternate within a round; each figure is the median of the
# rounds, with their range. The single enqueues' WAL includes what the
# scheduler writes meanwhile. Starts its own throwaway cluster with qml
# preloaded on QML_PGPORT (default 5535), like bench/scheduler.sh; qml must
# be installed in $PGBIN's tree (bench/run.sh's private copy, or
# scripts/test.sh's). BENCH_RUNS rounds (default 5), BENCH_STATEMENTS batch
# statements per measurement (60; single enqueues: 50 times as many).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
RUNS=${BENCH_RUNS:-5}
N=${BENCH_STATEMENTS:-60}
db=qml_bench
. bench/own_cluster.sh
q -f bench/sql/schema.sql >/dev/null 2>&1

# the pgbench scripts as psql reads them: no comments, one line, the random
# priority of case 1 fixed
oneline() { grep -v -e '^--' -e '^\\set' "$1" | sed 's/:p/1/' | tr '\n' ' '; }
raw_batch=$(oneline bench/sql/raw_enqueue_batch.sql)
qml_batch=$(oneline bench/sql/qml_enqueue_batch.sql)
one_prio=${qml_batch//g % 4/0}
json_only=${qml_batch/count(\*) FROM qml.enqueue_batch/pg_column_size}
raw_single=$(oneline bench/sql/raw_enqueue.sql)
qml_single=$(oneline bench/sql/qml_enqueue.sql)

# the single enqueues commit without waiting for the disk: the CPU time is
# about the same (no fdatasync by the backend), the run 50 times shorter
nosync="-c synchronous_commit=off"

# cpu_of PID: the nanoseconds the process has run on a CPU (the scheduler's
# count: /proc/PID/stat's clock ticks are too coarse for a single enqueue)
cpu_of() { awk '{ print $1 }' "/proc/$1/schedstat"; }

# measure NAME JOBS_PER_STATEMENT STATEMENTS SQL [PGOPTIONS]: runs SQL that
# many times in one fresh session on empty tables; appends NAME, CPU ms per
# 1,000 jobs and WAL bytes per job to $tmp/runs
measure() {
	local name=$1 per=$2 n=$3 sql=$4 pid c0 c1 l0 wal x i
	q -c "TRUNCATE jobs, qml.jobs, qml.job_events_1_1 RESTART IDENTITY" -c "CHECKPOINT"
	coproc S { PGOPTIONS=${5:-} psql -X -At -v ON_ERROR_STOP=1 -d "$db" 2>&1; }
	echo "SELECT pg_backend_pid();" >&"${S[1]}"
	read -r pid <&"${S[0]}"
	# prepared, as bench/run.sh's pgbench runs them (-M prepared)
	echo "PREPARE s AS $sql;" >&"${S[1]}"
	read -r x <&"${S[0]}"
	echo "EXECUTE s;" >&"${S[1]}"	# warm the session's caches
	read -r x <&"${S[0]}"
	echo "SELECT pg_current_wal_lsn();" >&"${S[1]}"
	read -r l0 <&"${S[0]}"
	c0=$(cpu_of "$pid")
	for ((i = 0; i < n; i++)); do
		echo "EXECUTE s;" >&"${S[1]}"
		read -r x <&"${S[0]}"
	done
	c1=$(cpu_of "$pid")
	echo "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$l0');" >&"${S[1]}"
	read -r wal <&"${S[0]}"
	echo '\q' >&"${S[1]}"
	wait "$S_PID" 2>/dev/null || true
	[[ $x =~ ^(t|[0-9]+|INSERT\ 0\ [0-9]+)$ ]] || { echo "$name: $x" >&2; exit 1; }
	awk -v n="$name" -v c=$((c1 - c0)) -v w="$wal" -v j=$((n * per)) \
		'BEGIN { printf "%s\t%.3f\t%.0f\n", n, c / 1e6 / j * 1000, w / j }' >>"$tmp/runs"
}

: >"$tmp/runs"
for r in $(seq "$RUNS"); do
	echo "== round $r/$RUNS"
	measure "batch raw INSERT ... SELECT" 1000 "$N" "$raw_batch"
	measure "batch qml.enqueue_batch" 1000 "$N" "$qml_batch"
	measure "batch qml, history off" 1000 "$N" "$qml_batch" "-c qml.history=off"
	measure "batch qml, one priority" 1000 "$N" "$one_prio"
	measure "batch, the JSON array alone" 1000 "$N" "$json_only"
	measure "single raw INSERT" 1 $((N * 50)) "$raw_single" "$nosync"
	measure "single qml.enqueue" 1 $((N * 50)) "$qml_single" "$nosync"
	measure "single qml, history off" 1 $((N * 50)) "$qml_single" "$nosync -c qml.history=off"
done

# the medians, their range, and the raw side's median over each (the ratio
# bench/run.sh reports, here of CPU time)
sort -t$'\t' -k1,1 -k2,2n "$tmp/runs" | awk -F'\t' '
	{ n[$1]++; v[$1, n[$1]] = $2; w[$1] = $3; if (!($1 in first)) { first[$1] = NR; order[++k] = $1 } }
	function med(name) { c = n[name]; return c % 2 ? v[name, (c + 1) / 2] : (v[name, c / 2] + v[name, c / 2 + 1]) / 2 }
	END {
		printf "%-30s %14s %17s %10s %9s\n", "", "CPU ms/1000 jobs", "range", "WAL B/job", "raw/this"
		for (i = 1; i <= k; i++) {
			name = order[i]
			base = name ~ /^single/ ? "single raw INSERT" : "batch raw INSERT ... SELECT"
			printf "%-30s %14.2f %8.2f-%-8.2f %10d %9.2f\n", name, med(name), v[name, 1], v[name, n[name]], w[name], med(base) / med(name)
		}
	}'
