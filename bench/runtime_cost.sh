#!/usr/bin/env bash
# bench/runtime_cost.sh: the instructions the server spends per job on the
# runtime's claims and completions, and the client's on its store calls,
# counted by callgrind, which a busy machine does not blur. No pass/fail.
#
# bench/runtime_cost.c makes the runtime's own store calls (libqml's fetch
# and flush sessions) with fixed batch sizes: FETCH jobs a claim (the
# runtime's fetch batch, 250) and COMPLETE a completion (the runtime's
# flushes carried 770 jobs at 10 threads and 950 at 24 in bench/runtime;
# 750 by default), after enqueueing its jobs as bench/runtime does. The
# postmaster runs under callgrind, so each backend counts its own
# instructions; the fetch and flush sessions' backends of a run of N1 jobs
# and of a run of N2 give a job's cost as (I(N2) - I(N1)) / (N2 - N1):
# what a session spends starting, reading the catalogs and planning
# cancels out. The program itself under callgrind gives the client's
# instructions the same way. Autovacuum is off (the program vacuums before
# it claims): an ANALYZE of qml.jobs during a run sent its invalidation to
# the sessions, which then read the catalogs again, 1,000 instructions a
# job more in one run out of four.
#
#   bench/runtime_cost.sh [N1 N2 [FETCH COMPLETE]]     defaults 2000 12000 250 750
#
# BENCH_FUNCTIONS=N also prints the N functions whose inclusive counts per
# job differ most, server and client; BENCH_KEEP=DIR keeps the callgrind
# files there (fetch.N, flush.N, client.N) for callgrind_annotate. qml must be installed in $PGBIN's
# tree (scripts/test.sh does that); libqml is built here. Starts its own
# throwaway cluster on QML_PGPORT (default 5535).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export QML_PGPORT=${QML_PGPORT:-5535}
. scripts/env.sh
N1=${1:-2000}
N2=${2:-12000}
FETCH=${3:-250}
COMPLETE=${4:-750}
FUNCS=${BENCH_FUNCTIONS:-0}
owner=${QML_PGUSER_OS:-postgres}
tmp=$(mktemp -d)
chmod 755 "$tmp"
as_owner() { if [ "$(id -u)" = 0 ]; then su "$owner" -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown "$owner" "$tmp"
stop_valgrind() {
	# the postmaster under valgrind, by the pid it wrote
	if [ -f "$QML_PGDIR/data/postmaster.pid" ]; then
		kill -INT "$(head -1 "$QML_PGDIR/data/postmaster.pid")" 2>/dev/null || true
		for _ in $(seq 300); do [ -f "$QML_PGDIR/data/postmaster.pid" ] || break; sleep 0.1; done
	fi
}
trap 'stop_valgrind; scripts/cluster.sh down; rm -rf "$tmp"' EXIT

make -s client/build/runtime-cost >/dev/null
prog=$root/client/build/runtime-cost
scripts/cluster.sh up "shared_preload_libraries = 'qml'
shared_buffers = 1GB
max_wal_size = 4GB
min_wal_size = 1GB
checkpoint_timeout = 15min
fsync = on
synchronous_commit = on
autovacuum = off"
psql -X -q -d postgres -c "CREATE DATABASE qml_cost"
psql -X -q -d qml_cost -c "CREATE EXTENSION qml"
run_as_owner_pg() { as_owner "'$PGBIN/pg_ctl' -D '$QML_PGDIR/data' -l '$QML_PGDIR/log' $*"; }
run_as_owner_pg "-m fast -w stop" >/dev/null
# the postmaster under callgrind: its backends (forked, not exec'ed) too
as_owner "cd '$tmp' && setsid valgrind --tool=callgrind --dump-instr=no \
	--callgrind-out-file='$tmp/server.%p' '$PGBIN/postgres' -D '$QML_PGDIR/data' \
	>'$tmp/valgrind.log' 2>&1 &"
for _ in $(seq 600); do pg_isready -q -d postgres && break; sleep 0.1; done

# run N: the server's two backends' files as $tmp/fetch.N and flush.N, and
# the client's as $tmp/client.N
run() {
	local n=$1 pids f
	pids=$(valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$tmp/client.$n" \
		"$prog" qml_cost "$n" "$FETCH" "$COMPLETE" 2>"$tmp/client.$n.log")
	# a backend writes its file when it exits, right after the session ends
	for f in fetch flush; do
		local pid
		pid=$(echo "$pids" | awk -v k="$f" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }')
		for _ in $(seq 600); do
			grep -q '^totals:' "$tmp/server.$pid" 2>/dev/null && break
			sleep 0.1
		done
		cp "$tmp/server.$pid" "$tmp/$f.$n"
	done
}
total() { awk '/^totals:/ { print $2 }' "$1"; }
per_job() { echo $(( ($(total "$tmp/$1.$N2") - $(total "$tmp/$1.$N1")) / (N2 - N1) )); }

run "$N1"
run "$N2"
echo "instructions per job (fetch $FETCH, complete $COMPLETE; runs of $N1 and $N2 jobs)"
printf '  server, fetch session:  %s\n' "$(per_job fetch)"
printf '  server, flush session:  %s\n' "$(per_job flush)"
printf '  client (its store calls): %s\n' "$(per_job client)"

# the functions whose inclusive counts per job differ most
top() {
	local a=$1 b=$2
	python3 - "$a" "$b" "$((N2 - N1))" "$FUNCS" <<'PY'
import re, subprocess, sys
def load(f):
    out = subprocess.run(['callgrind_annotate', '--auto=no', '--threshold=100',
                          '--inclusive=yes', f], capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        m = re.match(r'\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S+):(\S+)', line)
        if m:
            d[m.group(3)] = d.get(m.group(3), 0) + int(m.group(1).replace(',', ''))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
n, k = float(sys.argv[3]), int(sys.argv[4])
rows = sorted(((b.get(f, 0) - a.get(f, 0)) / n, f) for f in set(a) | set(b))
for v, f in reversed(rows[-k:]):
    print('    %9.0f  %s' % (v, f))
PY
}
if [ -n "${BENCH_KEEP:-}" ]; then
	mkdir -p "$BENCH_KEEP"
	for f in fetch flush client; do cp "$tmp/$f.$N1" "$tmp/$f.$N2" "$BENCH_KEEP/"; done
fi
if [ "$FUNCS" -gt 0 ]; then
	for f in fetch flush client; do
		echo "  $f: inclusive instructions per job, by function"
		top "$tmp/$f.$N1" "$tmp/$f.$N2"
	done
fi
