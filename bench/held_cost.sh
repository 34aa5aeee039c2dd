#!/usr/bin/env bash
# bench/held_cost.sh: the instructions a backend spends per call of
# qml.fail (1 job), qml.fail_batch (10), qml.heartbeat (10) and
# qml.release (1), on version 1.2's SQL functions (a database created at
# 1.2) and on 1.3's C ones, with the same library. Counted by callgrind,
# which a busy machine does not blur. No pass/fail.
#
# One backend in single-user mode (no scheduler, no other session) runs
# the calls as statements; the collection is toggled on for each whole
# statement's parts (exec_simple_query is static, so: the transaction's
# start, parse, analysis, plan, the portal's run, which makes the call, and
# the commit). A run of N calls and a
# run of 2N calls, each on a fresh copy of the same data directory, give
# the cost of one call as (I(2N) - I(N)) / N: what the first call spends
# building caches and plans cancels out. The jobs are claimed beforehand,
# each call on jobs of its own (ten jobs extended again and again would
# measure their chains of dead versions, which VACUUM removes in use).
# qml must be installed in $PGBIN's tree (scripts/test.sh does that).
# BENCH_CALLS is N (default 40); BENCH_OTHER_JOBS (default 10,000) finished
# jobs of another queue make qml.jobs the size of a table in use: 1.2's
# statements are planned for it (on a table of a few hundred rows its
# fail_batch joins by a scan of the whole table, a cost that grows with it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh
N=${BENCH_CALLS:-40}
OTHER=${BENCH_OTHER_JOBS:-10000}
owner=${QML_PGUSER_OS:-postgres}
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
as_owner() { if [ "$(id -u)" = 0 ]; then su "$owner" -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown "$owner" "$tmp"

single() {	# single DB < stdin: statements, one a line
	as_owner "'$PGBIN/postgres' --single -D '$tmp/data' -c shared_preload_libraries=qml \
		-c synchronous_commit=off $1" >/dev/null 2>&1
}

as_owner "'$PGBIN/initdb' -D '$tmp/data' -A trust -U postgres -E UTF8 --locale=C.UTF-8" >/dev/null
echo "CREATE DATABASE v12" | single postgres
echo "CREATE DATABASE v13" | single postgres
# 4N jobs per database, claimed by w with an hour's lease; up to 25
# attempts, so that every failure retries
jobs=$((4 * N))
for v in 12 13; do
	{
		[ $v = 12 ] && echo "CREATE EXTENSION qml VERSION '1.2'" || echo "CREATE EXTENSION qml"
		echo "SELECT count(*) FROM (SELECT qml.enqueue('m', max_attempts => 25) FROM generate_series(1, $jobs)) x"
		echo "SELECT count(*) FROM qml.fetch('w', batch => 1000, lease => '1 hour')"
		echo "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'o', 'queue', 'other')) FROM generate_series(1, $OTHER)))"
		for ((i = 0; i < OTHER; i += 1000)); do
			echo "SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.fetch('o', '{other}', 1000)), 'o')"
		done
		echo "VACUUM ANALYZE qml.jobs"
	} | single v$v
done

# statements OP FROM COUNT: COUNT calls of OP, the first on job FROM
statements() {
	local op=$1 from=$2 count=$3 i id ids errs
	for ((i = 0; i < count; i++)); do
		case $op in
		fail) id=$((from + i)); echo "SELECT qml.fail($id, 'w', 'boom')" ;;
		release) id=$((from + i)); echo "SELECT qml.release($id, 'w')" ;;
		fail_batch)
			id=$((from + i * 10))
			ids=$(seq -s, "$id" $((id + 9)))
			errs=$(seq -f "'e%g'" -s, "$id" $((id + 9)))
			echo "SELECT count(*) FROM qml.fail_batch(ARRAY[$ids], 'w', ARRAY[$errs])" ;;
		heartbeat)
			id=$((from + i * 10))
			echo "SELECT count(*) FROM qml.heartbeat(ARRAY[$(seq -s, "$id" $((id + 9)))], 'w', '2 hours')" ;;
		esac
	done
}

toggles=""
for f in StartTransactionCommand pg_parse_query pg_analyze_and_rewrite_fixedparams \
	pg_plan_queries PortalRun CommitTransactionCommand; do
	toggles="$toggles --toggle-collect=$f"
done

# instructions OP FROM DB COUNT: the statements' instructions in a copy
instructions() {
	local op=$1 from=$2 db=$3 count=$4
	rm -rf "$tmp/run"
	cp -a "$tmp/data" "$tmp/run"
	statements "$op" "$from" "$count" >"$tmp/stmts"
	as_owner "valgrind --tool=callgrind --callgrind-out-file='$tmp/cg.out' \
		$toggles '$PGBIN/postgres' --single -D '$tmp/run' \
		-c shared_preload_libraries=qml -c synchronous_commit=off $db <'$tmp/stmts'" >/dev/null 2>&1
	grep '^summary:' "$tmp/cg.out" | awk '{ print $2 }'
}

printf '%-28s %14s %14s\n' "instructions per call" "1.2 (SQL)" "1.3 (C)"
# each operation on jobs of its own, in its own copy of the data: the
# single ones on 1..2N, the batches on 1..4N
for spec in "fail 1" "fail_batch 1" "heartbeat 1" "release 1"; do
	set -- $spec
	line=""
	for v in 12 13; do
		n=$N
		[ "$1" = fail_batch ] || [ "$1" = heartbeat ] && n=$((N / 5))	# 10 jobs a call: 2n x 10 jobs at most
		a=$(instructions "$1" "$2" v$v "$n")
		b=$(instructions "$1" "$2" v$v $((2 * n)))
		line="$line $(( (b - a) / n ))"
	done
	set -- $1 $line
	label="$1"
	case $1 in fail) label="fail, 1 job" ;; fail_batch) label="fail_batch, 10 jobs" ;;
		heartbeat) label="heartbeat, 10 jobs" ;; release) label="release, 1 job" ;; esac
	printf '%-28s %14s %14s   (%s)\n' "$label" "$2" "$3" \
		"$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2fx", a / b }')"
done
