#!/usr/bin/env bash
# bench/profile.sh: where a job's server CPU goes (issue 19), on a cluster of
# its own. Runs one case while `perf record` samples every server process,
# then prints, for the sampled window: jobs/s, server CPU per job (all the
# postmaster's children, exited ones included), WAL bytes per job, each
# process's share and each part's share (bench/profile.py: claim,
# completion, history, counts, wakeups, WAL, commit, ...).
#
#   bench/profile.sh runtime [THREADS]     bench/runtime, no-op handlers (10)
#   bench/profile.sh fetch [CLIENTS BATCH] case 3: qml.fetch + complete_batch
#                                          by pgbench (16 clients, batch 10)
#
# Needs perf (linux-perf) and qml installed in the PostgreSQL tree of
# PGBIN (e.g. bench/run.sh's private copy, or scripts/test.sh's). Settings
# are bench/run.sh's. Environment: QML_PGPORT (5536), PROFILE_T (seconds
# sampled, 5), PROFILE_JOBS (jobs of the runtime case, 500,000: more than 5 s of them),
# PROFILE_OUT (perf.data and the stacks are kept there when set).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-runtime}
export QML_PGPORT=${QML_PGPORT:-5536}
T=${PROFILE_T:-5}
command -v perf >/dev/null || { echo "bench/profile.sh: needs perf (Debian: linux-perf)" >&2; exit 1; }
. scripts/env.sh
tmp=$(mktemp -d)
trap 'scripts/cluster.sh down >/dev/null 2>&1; rm -rf "$tmp"' EXIT
db=qml_profile
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

scripts/cluster.sh up "shared_preload_libraries = 'qml'
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 15min
max_connections = 200" >/dev/null
# WAL segments recycled by a checkpoint, as a long-running server (or
# bench/run.sh after its first cases) has them: on a new cluster every
# 16 MB of WAL is zero-filled first, a tenth of the server's CPU
psql -X -q -d postgres -c "CREATE TABLE warm AS SELECT g FROM generate_series(1, 6000000) g" \
	-c "DROP TABLE warm" -c "CHECKPOINT" -c "CHECKPOINT"
pm=$(head -1 "$QML_PGDIR/data/postmaster.pid")

# CPU ticks of the server: exited children (reaped by the postmaster) and live ones
server_ticks() {
	local t c
	t=$(awk '{ print $16 + $17 }' "/proc/$pm/stat")
	for c in $(pgrep -P "$pm"); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
succeeded() { psql -X -At -d "$db" -c "SELECT count(*) FROM qml.jobs WHERE state = 'succeeded'"; }
lsn() { psql -X -At -d postgres -c "SELECT pg_current_wal_lsn()"; }

case $what in
runtime)
	threads=${2:-10}
	make -s client/build/bench-runtime >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
	client/build/bench-runtime --db "$db" --threads "$threads" --jobs "${PROFILE_JOBS:-500000}" \
		--reps 1 --no-raw --latency 0 -v >"$tmp/case.out" 2>&1 &
	bg=$!
	# the clock starts with the runtime's sessions, after the enqueue
	for _ in $(seq 600); do
		[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'qml worker%'")" -ge 1 ] && break
		sleep 0.1
	done
	sleep 0.5
	label="bench/runtime, $threads threads"
	;;
fetch)
	c=${2:-16} b=${3:-10}
	# 400,000 jobs: more than T + 3 s of them at 16 clients on 2 cores
	psql -X -q -d postgres -c "CREATE DATABASE $db"
	q -c "CREATE EXTENSION qml"
	for s in 0 1; do
		(for _ in $(seq "$s" 2 39); do q -v n=10000 -f bench/sql/qml_prefill_chunk.sql >/dev/null; done) &
	done
	wait
	q -c "VACUUM ANALYZE qml.jobs" -c "VACUUM ANALYZE qml.job_events_1_1" -c "CHECKPOINT"
	sed "s/@BATCH@/$b/g" bench/sql/qml_fetch_complete.sql >"$tmp/case.sql"
	pgbench -n -M prepared -T $((T + 3)) -c "$c" -j 2 -f "$tmp/case.sql" "$db" >"$tmp/case.out" 2>&1 &
	bg=$!
	sleep 1.5
	label="qml.fetch $b + complete_batch, $c clients (pgbench)"
	;;
*)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac

psql -X -At -d postgres -c "SELECT pid, coalesce(nullif(application_name, ''), backend_type) FROM pg_stat_activity" >"$tmp/names"
j0=$(succeeded) w0=$(lsn) c0=$(server_ticks) t0=$(date +%s.%N)
perf record -q -g -o "$tmp/perf.data" -p "$(pgrep -d, -P "$pm")" -- sleep "$T" >/dev/null 2>&1
j1=$(succeeded) w1=$(lsn) c1=$(server_ticks) t1=$(date +%s.%N)
wait "$bg" || true
# the application names of sessions gone by now
n=$((j1 - j0))
[ "$n" -gt 0 ] || { echo "no job finished while sampling"; cat "$tmp/case.out"; exit 1; }
echo "== $label: $n jobs in the $T s sampled"
awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "jobs/s %d, server CPU %.1f us per job (%.2f cores)\n", n / (t1 - t0), (c1 - c0) * 1e6 / hz / n, (c1 - c0) / hz / (t1 - t0) }'
echo "WAL $(psql -X -At -d postgres -c "SELECT round(pg_wal_lsn_diff('$w1', '$w0') / $n)") bytes per job"
perf script -i "$tmp/perf.data" -F pid,ip,sym 2>/dev/null >"$tmp/stacks"
python3 bench/profile.py "$tmp/names" <"$tmp/stacks"
if [ -n "${PROFILE_OUT:-}" ]; then
	mkdir -p "$PROFILE_OUT"
	cp "$tmp/perf.data" "$tmp/stacks" "$tmp/names" "$PROFILE_OUT/"
fi
