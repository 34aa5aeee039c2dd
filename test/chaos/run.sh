#!/usr/bin/env bash
# test/chaos/run.sh: many faults at once. Producers enqueue (single, batch,
# scheduled, unique keys, a recurring job) and record every id their
# committed statements returned; four `qml worker --exec` processes (the
# libqml runtime, session leases on) run handler.sh, which records every
# execution outside qml.jobs and fails at random. Phases:
#   before  no faults
#   kill    worker sessions terminated (some inside fetch's wait) and
#           worker processes SIGKILLed and restarted; the claim latency of
#           this phase is printed (a lost session should cost no backoff)
#   chaos   besides those: workers SIGSTOPped past their lease and
#           SIGCONTed, connections cut by a TCP proxy (proxy.py) the
#           workers connect through, two pg_ctl -m immediate restarts, a
#           session idle in transaction holding the xmin horizon
#   after   no faults, the producers stop, the queue drains
# then check.py checks the invariants and prints jobs/s per phase.
#
#   test/chaos/run.sh [--short]     (--short: about 3 minutes; else 20)
#
# The cluster is up (scripts/test.sh, or `make chaos`) and PGHOST/PGPORT/
# PGUSER point at it; scripts/cluster.sh restarts it, so QML_PGPORT and
# PGBIN must name it as they did for scripts/test.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"
qml=$root/client/qml
if [ "${1:-}" = --short ]; then
	t_before=15 t_kill=40 t_chaos=60 t_after=15 rate=20 idle=30 drain=300
else
	t_before=120 t_kill=360 t_chaos=600 t_after=120 rate=22 idle=60 drain=900
fi
lease=3
db=qml_chaos
tmp=$(mktemp -d)
export CHAOS_EXEC_LOG=$tmp/execs
: >"$CHAOS_EXEC_LOG"
: >"$tmp/acked"
: >"$tmp/phases"
: >"$tmp/restarts"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}" $(cat "$tmp/wpids" 2>/dev/null); do
		kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	if [ "${rc:-1}" = 0 ]; then rm -rf "$tmp"; else echo "records kept in $tmp"; fi
}
trap cleanup EXIT
log() { echo "$(date +%T) $*"; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now() { date +%s.%N; }
# wait_up: the server accepts connections again and a scheduler serves the
# database (without one nothing is rescued: say so instead of timing out)
wait_up() {
	local i
	for i in $(seq 1 600); do
		[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$db'" 2>/dev/null)" = 1 ] && return 0
		sleep 0.1
	done
	echo "FAIL no qml scheduler serves $db (max_worker_processes? see the server log)"
	exit 1
}

psql -X -q -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" || exit 1
q -c "CREATE EXTENSION qml" -c "SELECT qml.add_recurring('tick', '1 second', 'tick', queue => 'chaos')" >/dev/null || exit 1
wait_up

python3 "$here/proxy.py" 127.0.0.1 "$PGPORT" "$tmp/proxy_port" &
proxy=$!
pids+=($proxy)
for i in $(seq 1 50); do [ -s "$tmp/proxy_port" ] && break; sleep 0.1; done
pport=$(cat "$tmp/proxy_port")

# workers 1-3 reach the server through the proxy, worker 4 directly; each
# (re)start is a new incarnation with its own name
wpid=() wgen=()
start_worker() {
	local i=$1 name url
	wgen[$i]=$((${wgen[$i]:-0} + 1))
	name=c$i.${wgen[$i]}
	url="host=127.0.0.1 port=$pport dbname=$db user=$PGUSER"
	[ "$i" = 4 ] && url="host=$PGHOST port=$PGPORT dbname=$db user=$PGUSER"
	CHAOS_WORKER=$name "$qml" worker -d "$url" --exec "job=$here/handler.sh" \
		--exec "tick=$here/handler.sh" --queues chaos --workers 2 --batch 4 \
		--lease ${lease}s --grace 5s --name "$name" >>"$tmp/worker.log" 2>&1 &
	wpid[$i]=$!
}
# keeper: starts the workers, and again any that exited (a kill, a lost
# connection it gave up on)
keeper() {
	local i
	while sleep 0.5; do
		for i in 1 2 3 4; do kill -0 "${wpid[$i]:-}" 2>/dev/null || start_worker $i; done
		echo "${wpid[*]}" >"$tmp/wpids.new" && mv "$tmp/wpids.new" "$tmp/wpids"
	done
}

# producer: statements at $rate jobs/s; psql prints an id once its
# statement committed. A lost connection (restart) starts a new psql.
statements() {
	local n=0 r
	while [ ! -e "$tmp/stop_producers" ]; do
		for _ in $(seq 1 $((rate / 5))); do
			n=$((n + 1)) r=$((RANDOM % 20))
			if [ $r -eq 0 ]; then
				echo "SELECT * FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'job', 'queue', 'chaos', 'arguments', jsonb_build_array(g), 'max_attempts', 3)) FROM generate_series(1, 5) g));"
			elif [ $r -eq 1 ]; then
				echo "SELECT qml.enqueue('job', '[$n]', 'chaos', run_at => now() + interval '2 s', max_attempts => 3);"
			elif [ $r -eq 2 ]; then
				echo "SELECT qml.enqueue('job', '[$n]', 'chaos', max_attempts => 3, unique_key => 'k$((n % 7))');"
			else
				echo "SELECT qml.enqueue('job', '[$n]', 'chaos', max_attempts => 3);"
			fi
		done
		sleep 0.2
	done
}
producer() {
	while [ ! -e "$tmp/stop_producers" ]; do
		statements | PGAPPNAME=chaos_producer psql -X -q -At -d "$db" >>"$tmp/acked" 2>/dev/null
		sleep 0.2
	done
}

# faults
worker_pid() { cat "$tmp/wpids" 2>/dev/null | tr ' ' '\n' | sed -n "$1p"; }
terminate() {
	local where=""
	[ "${1:-}" = waiting ] && where="AND query LIKE '%qml.fetch%' AND wait_event_type IS DISTINCT FROM 'Client'"
	q -c "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
		   WHERE datname = '$db' AND application_name LIKE 'qml worker %' $where
		   ORDER BY random() LIMIT 1) s" 2>/dev/null
}
kill_worker() { local p; p=$(worker_pid $((RANDOM % 4 + 1))); [ -n "$p" ] && kill -9 "$p" 2>/dev/null; }
stop_worker() {
	local p; p=$(worker_pid $((RANDOM % 4 + 1)))
	[ -n "$p" ] && kill -STOP "$p" 2>/dev/null && (sleep $((lease + 2)); kill -CONT "$p" 2>/dev/null) &
}
fault_loop() {	# KIND SECONDS
	local end=$(($(date +%s) + $2)) f
	while [ "$(date +%s)" -lt "$end" ]; do
		if [ "$1" = kill ]; then f=$((RANDOM % 3)); else f=$((RANDOM % 6)); fi
		case $f in
			0) terminate >/dev/null; echo terminate ;;
			1) [ "$(terminate waiting)" = 1 ] && echo terminate_in_fetch_wait ;;
			2) kill_worker; echo sigkill ;;
			3) stop_worker; echo sigstop ;;
			4) kill -USR1 $proxy; echo proxy_cut ;;
			5) terminate >/dev/null; echo terminate ;;
		esac >>"$tmp/faults"
		sleep "0.$((RANDOM % 5 + 3))"
	done
}
phase() { echo "$1 $2 $(now)" >>"$tmp/phases"; }

keeper 2>>"$tmp/worker.log" &
pids+=($!)
producer &
pids+=($!)
producer &
pids+=($!)

log "before: ${t_before}s without faults"
t=$(now); sleep $t_before; phase before "$t"
log "kill: ${t_kill}s of terminated sessions and killed workers"
t=$(now); fault_loop kill $t_kill; phase kill "$t"
log "chaos: ${t_chaos}s of every fault, two immediate restarts"
t=$(now)
( printf 'BEGIN;\nSELECT txid_current();\n'; sleep $idle; printf 'COMMIT;\n' ) |
	PGAPPNAME=chaos_idle psql -X -q -At -d "$db" >/dev/null 2>&1 &
fault_loop chaos $((t_chaos / 3)) &
wait $!
now >>"$tmp/restarts"; "$root/scripts/cluster.sh" restart immediate && log "restarted (immediate)"; wait_up
fault_loop chaos $((t_chaos / 3)) &
wait $!
now >>"$tmp/restarts"; "$root/scripts/cluster.sh" restart immediate && log "restarted (immediate)"; wait_up
fault_loop chaos $((t_chaos / 3)) &
wait $!
phase chaos "$t"
log "after: ${t_after}s without faults, then the producers stop and the queue drains"
t=$(now); sleep $t_after
touch "$tmp/stop_producers"
q -c "SELECT qml.remove_recurring('tick')" >/dev/null
end=$(($(date +%s) + drain))
while [ "$(date +%s)" -lt "$end" ]; do
	left=$(q -c "SELECT count(*) FROM qml.jobs WHERE state NOT IN ('succeeded', 'failed', 'deleted')" 2>/dev/null)
	[ "$left" = 0 ] && break
	sleep 1
done
phase after "$t"
log "drained ($left left); faults: $(sort "$tmp/faults" | uniq -c | awk '{printf "%s %s, ", $2, $1}')restarts 2"
kill "${pids[1]}" 2>/dev/null	# the keeper
for p in $(worker_pid 1) $(worker_pid 2) $(worker_pid 3) $(worker_pid 4); do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
wait "${pids[2]}" "${pids[3]}" 2>/dev/null
sleep 2
python3 "$here/check.py" "$tmp" "$db"
rc=$?
[ $rc = 0 ] && psql -X -q -d postgres -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
exit $rc
