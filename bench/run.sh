#!/usr/bin/env bash
# bench/run.sh: the qml benchmark suite (issue 5), one command.
#
#   bench/run.sh            the full suite, about 30 minutes on 2 cores
#   bench/run.sh --quick    the main ratios only, one run each, about 3 minutes
#   bench/run.sh --long     also 10,000,000 waiting jobs and 10 minutes of churn
#   bench/run.sh --churn    the churn case alone, 10 minutes (BENCH_CHURN_MINUTES)
#   bench/run.sh --wait     the waiting-fetch cases alone (issue 19), about 2 minutes
#   bench/run.sh --batch    case 2 alone (batch enqueue, both forms), 1 and 4
#                           clients, 3 runs, about 4 minutes
#   bench/run.sh --horizon  10,000 jobs/s with a snapshot held 10 minutes, about 37 minutes
#   bench/run.sh --targets  only the cases issue 19 sets a target for, medians of 3
#
# Installs what is missing (scripts/install-deps.sh; graphile-worker from npm
# into bench/.peer/), builds qml and installs it into a private copy of the
# PostgreSQL tree (so the machine's installation is left alone), starts its
# own throwaway cluster through scripts/cluster.sh (port $QML_PGPORT, default
# 5550) with production-like settings, runs every case, and removes the
# cluster whatever happens. A second pass repeats the main cases with
# synchronous_commit off. Prints jobs/s or ms for every measurement, never
# pass or fail, and writes bench/results/latest.md and latest.json.
#
# Environment: QML_PGPORT (5550), QML_BENCH_PREFIX (/tmp/qml-bench-$QML_PGPORT,
# the private install), BENCH_T (seconds per measurement), BENCH_RUNS,
# BENCH_CHURN_RATE (jobs/s offered in the churn case; default half of the
# measured fetch rate), BENCH_RUNTIME_ARGS (arguments for bench/runtime),
# BENCH_HORIZON_* (the rate and phases of --horizon: bench/horizon.sh),
# BENCH_PREVIOUS (an earlier report whose figures the new one shows beside
# its own; default in the default mode: bench/RESULTS.md).
set -uo pipefail

# read to the end before running: editing or updating the file during a
# run does not change the run
{
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
cd "$ROOT" || exit 1

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
MODE=default
for a in "$@"; do
	case $a in
	--quick) MODE=quick ;;
	--long) MODE=long ;;
	--churn) MODE=churn ;;
	--wait) MODE=wait ;;
	--batch) MODE=batch ;;
	--horizon) MODE=horizon ;;
	--targets) MODE=targets ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

# --- what each mode runs ---------------------------------------------------
# the modes that run one case alone start from nothing
alone() {
	T=5 T_MAIN=5 RUNS=1
	ENQ_CLIENTS="" BATCH_CLIENTS="" FETCH_CASES="" HOFF_FETCH="" DUR_FETCH="" ENQ_VARIANTS=()
	DEPTHS="" OFF_ENQ="" OFF_FETCH="" PEER_CONC="" NO_EXTERNAL=1
	EXT_T=5 EXT_SAMPLES=0 PEER_WAKE=0 PEER_JOBS=0 RUNTIME_ARGS=""
	CHURN_MIN=0 WAIT_CASE=0
}
case $MODE in
quick)
	T=5 T_MAIN=5 RUNS=1
	ENQ_CLIENTS="16" BATCH_CLIENTS="1"
	FETCH_CASES="16/10 4/100" HOFF_FETCH="16/10"
	ENQ_VARIANTS=("wakeups off" "history off")
	DEPTHS="1000 100000"
	OFF_ENQ="16" OFF_FETCH="16/10"
	PEER_CONC="10" PEER_WAKE=50 PEER_JOBS=10000
	EXT_T=3 EXT_SAMPLES=100 RUNTIME_ARGS="--reps 1 --jobs 3000 --latency 20"
	CHURN_MIN=0 WAIT_CASE=1
	;;
default)
	T=5 T_MAIN=10 RUNS=3
	ENQ_CLIENTS="1 4 16" BATCH_CLIENTS="1 4"
	FETCH_CASES="1/1 4/1 16/1 1/10 4/10 16/10 1/100 4/100 16/100" HOFF_FETCH="16/10 4/100"
	DUR_FETCH="1/100 16/10"
	ENQ_VARIANTS=("wakeups off" "wakeups always" "history off")
	DEPTHS="1000 100000 1000000"
	OFF_ENQ="16" OFF_FETCH="16/10 4/100"
	PEER_CONC="10 24" PEER_WAKE=100 PEER_JOBS=20000
	EXT_T=5 EXT_SAMPLES=200 RUNTIME_ARGS="--reps 3 --jobs 10000 --latency 1000"
	CHURN_MIN=0 WAIT_CASE=1
	;;
churn) alone; CHURN_MIN=10 ;;
wait) alone; EXT_T=20 WAIT_CASE=1 ;;
batch) alone; RUNS=3 BATCH_CLIENTS="1 4" ;;
horizon) alone ;;
targets)
	# the default mode's settings for the cases with a target of issue 19,
	# to check a change on them without the full run's 30 minutes
	T=5 T_MAIN=10 RUNS=3
	ENQ_CLIENTS="1 16" BATCH_CLIENTS="1 4"
	FETCH_CASES="1/100 16/10" HOFF_FETCH="16/10" DUR_FETCH="1/100 16/10"
	ENQ_VARIANTS=("history off")
	DEPTHS="" OFF_ENQ="" OFF_FETCH="" NO_EXTERNAL=1
	PEER_CONC="10 24" PEER_WAKE=20 PEER_JOBS=20000
	EXT_T=5 EXT_SAMPLES=0 RUNTIME_ARGS=""
	CHURN_MIN=0 WAIT_CASE=1
	;;
long)
	T=20 T_MAIN=20 RUNS=3
	ENQ_CLIENTS="1 4 16" BATCH_CLIENTS="1 4"
	FETCH_CASES="1/1 4/1 16/1 1/10 4/10 16/10 1/100 4/100 16/100" HOFF_FETCH="16/10 4/100"
	ENQ_VARIANTS=("wakeups off" "wakeups always" "history off")
	DEPTHS="1000 100000 1000000 10000000"
	OFF_ENQ="16" OFF_FETCH="16/10 4/100"
	PEER_CONC="10 24" PEER_WAKE=200 PEER_JOBS=20000
	EXT_T=20 EXT_SAMPLES=500 RUNTIME_ARGS="--reps 3 --jobs 20000 --latency 1000"
	CHURN_MIN=10 WAIT_CASE=1
	;;
esac
# BENCH_T sets both durations; BENCH_DEPTHS and BENCH_CHURN_MINUTES are for
# trying the harness out
DEPTHS=${BENCH_DEPTHS:-$DEPTHS}
DUR_FETCH=${DUR_FETCH:-}
CHURN_MIN=${BENCH_CHURN_MINUTES:-$CHURN_MIN}
T=${BENCH_T:-$T}
T_MAIN=${BENCH_T:-$T_MAIN}
EXT_T=${BENCH_T:-$EXT_T}
RUNS=${BENCH_RUNS:-$RUNS}
PEER_VERSION=0.18.0
PEER_DIR=$BENCH/.peer

export QML_PGPORT=${QML_PGPORT:-5550}
PREFIX=${QML_BENCH_PREFIX:-/tmp/qml-bench-$QML_PGPORT}
DB=qmlbench
SQL=$BENCH/sql
RES=$BENCH/results
WORK=$(mktemp -d /tmp/qml-bench-work.XXXXXX)
BG_PIDS=
T0=$SECONDS

mkdir -p "$RES"
rm -f "$RES"/{cases.tsv,runs.tsv,churn.tsv,horizon.tsv,notes.txt,meta.tsv,bench.log,latest.md,latest.json}
: >"$RES/cases.tsv"
: >"$RES/runs.tsv"
: >"$RES/notes.txt"

. "$BENCH/lib.sh"
. "$BENCH/cases.sh"

note() { printf '%s\n' "$*" >>"$RES/notes.txt"; }

# step COMMAND...: runs one case and says how long it took
step() {
	local t=$SECONDS
	"$@"
	say "    ($((SECONDS - t)) s)"
}

# main SECONDS COMMAND...: runs a case whose ratio issue 5 sets a target with
# measurements of SECONDS (as the outside check measures them), the rest
# of the suite keeps $T
main() {
	local T=$1
	shift
	"$@"
}

cleanup() {
	local p
	for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
	scripts/cluster.sh down >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "== qml benchmark, $MODE mode: $T s per measurement, $RUNS run(s) per case"

# --- dependencies, build, private install ----------------------------------
say "== installing what is missing"
scripts/install-deps.sh || exit 1
command -v pg_config >/dev/null || { say "pg_config not found"; exit 1; }

say "== building qml"
# the tree may be shared with someone's "make clean": one retry
if ! make -s qml.so >"$RES/build.log" 2>&1 && ! make -s qml.so >>"$RES/build.log" 2>&1; then
	tail -20 "$RES/build.log"
	say "build failed (bench/results/build.log)"
	exit 1
fi
bindir=$(pg_config --bindir)
pgroot=$(dirname "$bindir")
sharedir=$(pg_config --sharedir)
pkglibdir=$(pg_config --pkglibdir)
rm -rf "$PREFIX/install"
mkdir -p "$PREFIX/install$(dirname "$pgroot")" "$PREFIX/install$(dirname "$sharedir")"
cp -a "$pgroot" "$PREFIX/install$(dirname "$pgroot")/" &&
	cp -a "$sharedir" "$PREFIX/install$(dirname "$sharedir")/" &&
	install -m 755 qml.so "$PREFIX/install$pkglibdir/qml.so" &&
	install -m 644 qml.control qml--*.sql "$PREFIX/install$sharedir/extension/" ||
	{ say "installing into $PREFIX/install failed"; exit 1; }
# client headers for programs that compile against libpq (pg_config --includedir)
incdir=$(pg_config --includedir)
mkdir -p "$PREFIX/install$(dirname "$incdir")"
ln -s "$incdir" "$PREFIX/install$incdir"
chmod -R a+rX "$PREFIX"
export PGBIN=$PREFIX/install$bindir
. scripts/env.sh

# bench/runtime, copied out of the tree at once (a "make clean" elsewhere
# must not pull it away)
RUNTIME=
if [ -f bench/runtime.c ]; then
	for _ in 1 2; do
		make -s client/build/bench-runtime >>"$RES/build.log" 2>&1 &&
			cp client/build/bench-runtime "$PREFIX/bench-runtime" 2>/dev/null &&
			RUNTIME=$PREFIX/bench-runtime && break
	done
	[ -n "$RUNTIME" ] || note "4 end to end: bench/runtime did not build (bench/results/build.log)"
fi
# bench/horizon.c (--horizon), the same way
HORIZON=
if [ "$MODE" = horizon ]; then
	for _ in 1 2; do
		make -s client/build/bench-horizon >>"$RES/build.log" 2>&1 &&
			cp client/build/bench-horizon "$PREFIX/bench-horizon" 2>/dev/null &&
			HORIZON=$PREFIX/bench-horizon && break
	done
	[ -n "$HORIZON" ] || { say "bench/horizon.c did not build (bench/results/build.log)"; exit 1; }
fi

# bench/batch_param (case 2 with the batch bound by the client), likewise
BATCH_PARAM=
cc -O2 -Wall -o "$PREFIX/batch-param" bench/batch_param.c -I"$incdir" -L"$(pg_config --libdir)" -lpq \
	>>"$RES/build.log" 2>&1 && BATCH_PARAM=$PREFIX/batch-param

# --- the cluster -----------------------------------------------------------
say "== cluster on port $QML_PGPORT"
CONF="shared_preload_libraries = 'qml'
shared_buffers = 1GB
max_wal_size = 4GB
min_wal_size = 1GB
checkpoint_timeout = 15min
fsync = on
synchronous_commit = on
max_connections = 200"
scripts/cluster.sh up "$CONF" || exit 1
PG_URL="postgresql://postgres@127.0.0.1:$QML_PGPORT"
# the WAL segments a server in service recycles, made before measuring: a
# new cluster has none, so the commit that needs the next one writes its
# 16 MB of zeros and syncs them holding WALWriteLock, and every other
# commit waits (IO/WALInitWrite, then LWLock/WALWrite). That came every 7 s
# in the first runs of bench/wait.sh, holding every claim for up to 100 ms.
# The checkpoint keeps the switched-away segments as future ones
# (min_wal_size).
psql -X -q -d postgres -c "DO \$\$ BEGIN FOR i IN 1..32 LOOP
	PERFORM pg_logical_emit_message(false, 'qml-bench', ''); PERFORM pg_switch_wal();
	END LOOP; END \$\$" -c CHECKPOINT || exit 1
# shared_buffers in use, as a server in service has them: on a new cluster
# the first touch of each of its pages is a page fault that also zeroes the
# page, which counted as a tenth of a batch enqueue's backend CPU (and
# more against the side that touches more pages). An unlogged table the
# size of shared_buffers, read into them with pg_prewarm, then dropped:
# the pages stay allocated, their buffers free.
psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" \
	-c "CREATE UNLOGGED TABLE bench_warm AS SELECT g FROM generate_series(1, 30000000) g" \
	-c "SELECT pg_prewarm('bench_warm')" -c "DROP TABLE bench_warm" -c "DROP EXTENSION pg_prewarm" \
	>/dev/null || exit 1
psql -X -q -d postgres -c "CREATE DATABASE $DB" || exit 1
q -c "CREATE EXTENSION qml" || exit 1
PGOPTIONS="-c client_min_messages=warning" q -f "$SQL/schema.sql" || exit 1

# the wakeup switch (qml.wakeups): measure what exists
ENQ_DEFAULT="wakeups on"
if [ -z "$(q -c "SELECT 1 FROM pg_settings WHERE name = 'qml.wakeups'")" ]; then
	ENQ_VARIANTS=("history off")
	ENQ_DEFAULT="NOTIFY on every enqueue"
	note "This build of qml has no qml.wakeups setting: enqueue was measured as it is (a NOTIFY on every enqueue); no wakeups-off figures."
fi

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
	printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'mode\t%s\n' "$MODE"
	printf 'machine\t%s\n' "$(nproc) cores (${cpu:-unknown cpu}), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
	printf 'postgres\t%s\n' "$(q -c 'SHOW server_version' | sed 's/^/PostgreSQL /')"
	printf 'qml\t%s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
	printf 'settings\t%s\n' "fsync on, shared_buffers 1GB, max_wal_size 4GB, min_wal_size 1GB (512 MB of WAL segments made and shared_buffers faulted in before the cases), checkpoint_timeout 15min, qml preloaded (scheduler running), $ENQ_DEFAULT and history on unless a case says"
	printf 'duration\t%s\n' "$T"
	printf 'duration_main\t%s\n' "$T_MAIN"
	printf 'runs\t%s\n' "$RUNS"
} >"$RES/meta.tsv"

# --- pass 1: synchronous_commit on -----------------------------------------
PASS="synchronous_commit = on"
REF_PASS=$PASS
say "== $PASS"
for c in $ENQ_CLIENTS; do
	if [ "$c" = 16 ]; then
		step main "$T_MAIN" case_enqueue "$c" variants
	else
		step case_enqueue "$c"
	fi
done
for c in $BATCH_CLIENTS; do
	step case_batch "$c"
	step case_batch_param "$c"
done
for cb in $FETCH_CASES; do
	c=${cb%/*} b=${cb#*/}
	if [[ " $HOFF_FETCH " == *" $cb "* ]]; then
		step main "$T_MAIN" case_fetch "$c" "$b" history-off
	else
		step case_fetch "$c" "$b"
	fi
done
# shellcheck disable=SC2086
[ -n "$DEPTHS" ] && step main "$T_MAIN" case_depth $DEPTHS
[ -n "$PEER_CONC" ] && step case_peer "$PEER_CONC"

if [ -n "${NO_EXTERNAL:-}" ]; then
	:
elif [ -n "$RUNTIME" ]; then
	# its own database (it drops and creates it), its own repetitions
	# shellcheck disable=SC2086
	step external bench/runtime "4 end to end" "$RUNTIME" --db "${DB}_runtime" ${RUNTIME_ARGS} ${BENCH_RUNTIME_ARGS:-}
else
	defcase runtime "4 end to end through the C runtime" jobs/s "bench/runtime" "" ""
	record runtime qml "" "not built"
	say "  4 end to end: bench/runtime not built"
	[ -f bench/runtime.c ] || note "4 end to end: bench/runtime (bench/runtime.c, make bench-runtime) not built."
fi
if [ -n "${NO_EXTERNAL:-}" ]; then
	:
elif [ -f bench/scheduler.sh ]; then
	step external bench/scheduler.sh "5/6 scheduler" bash bench/scheduler.sh
else
	defcase scheduler "5/6 wake latency, promotion lag" ms "bench/scheduler.sh" "" ""
	record scheduler qml "" "not built"
	say "  5/6 wake latency, promotion lag: bench/scheduler.sh not built"
	note "5/6 wake latency and promotion lag: bench/scheduler.sh not built (the peer rows above measure wake latency from Node)."
fi

# workers waiting in fetch(wait): bursts, and completions while others wait
[ "$WAIT_CASE" = 1 ] && step external bench/wait.sh "10 waiting fetches" bash bench/wait.sh
# a snapshot held for 10 minutes under a steady flow (only with --horizon)
[ "$MODE" = horizon ] && step case_horizon

if [ "$CHURN_MIN" -gt 0 ]; then
	rate=${BENCH_CHURN_RATE:-$(awk -F'\t' -v p="$PASS" '$1 == p && $2 == "fetch_c4_b10" && $3 == "qml" && $4 != "" { s += $4; n++ } END { r = n ? s / n / 2 : 2000; printf "%d", int(r / 100) * 100 }' "$RES/runs.tsv")}
	step case_churn "$CHURN_MIN" "$rate"
fi

# --- pass 2: synchronous_commit off ----------------------------------------
PASS="synchronous_commit = off"
say "== $PASS"
q -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
for c in $OFF_ENQ; do step case_enqueue "$c"; done
for cb in $OFF_FETCH; do step case_fetch "${cb%/*}" "${cb#*/}"; done
q -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null

# --- wakeups note and report -----------------------------------------------
note "Wakeups: qml.wakeups = on (the default) sends NOTIFY only when a fetch on the queue came back empty; the enqueue cases have no idle worker, so 'on' measures its bookkeeping, 'always' a NOTIFY on every commit (the cost when workers are always idle), 'off' neither."
[ -n "$BATCH_CLIENTS" ] && note "Case 2 'from the client': bench/batch_param.c binds the 1,000 jobs as parameters of one prepared statement, as a producer sends them (libqml's qml_enqueue_batch binds one JSON array): qml gets the JSON array and returns the ids; the raw side gets two arrays (priorities, arguments), its fastest form, or in the 'same JSON' row qml's very JSON. The pgbench rows build the batch inside the statement, with jsonb_agg on qml's side (docs/performance.md)."
note "Raw baseline: table jobs (bench/sql/schema.sql), primary key plus one partial index for the claim; claim = SKIP LOCKED UPDATE in one transaction, DELETE in the next; the queries match the outside check's (bench/sql/)."
printf 'wall\t%s\n' "$(((SECONDS - T0) / 60)) min $(((SECONDS - T0) % 60)) s" >>"$RES/meta.tsv"
# the default mode's report shows RESULTS.md's figures beside its own
[ "$MODE" = default ] && [ -z "${BENCH_PREVIOUS+set}" ] && [ -f "$BENCH/RESULTS.md" ] &&
	export BENCH_PREVIOUS=$BENCH/RESULTS.md
perl "$BENCH/report.pl" "$RES" || exit 1
say ""
cat "$RES/latest.md"
say ""
say "written: bench/results/latest.md, bench/results/latest.json (log: bench/results/bench.log)"
exit 0
}
