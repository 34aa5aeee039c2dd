#!/usr/bin/env bash
# test/redis/run.sh: the "redis" suite. The Redis store through the qml
# command, on a throwaway redis-server and a 3-master Redis Cluster on this
# host, and its faults: an unreachable server, a wrong or missing password,
# TLS and malformed URLs, a server killed and restarted mid-run (appendonly,
# fsync always: every accepted job runs), the answer to a claim or to a
# completion lost on the way (a proxy drops it: the claim's jobs run at
# once, not after their lease, taken back by their token's set; a resent
# completion is no lost lease, a really lost one still is), a slot
# migrating between masters while a worker runs (ASK during the move,
# MOVED after it). The state machine
# itself is the conformance suite's (client/tests/conformance.sh), which
# runs on Redis and a Redis Cluster too.
#
# Ports QML_REDIS_PORT (default 6620) to +6; needs redis-server and
# redis-cli (scripts/install-deps.sh) and `make client`.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/redis.sh
. test/redis/lib.sh
base=${QML_REDIS_PORT:-6620}
single=$base c1=$((base + 1)) c2=$((base + 2)) c3=$((base + 3))
pw=$((base + 4)) crash=$((base + 5)) proxy=$((base + 6))
dir=$(mktemp -d /tmp/qml-test-redis.XXXXXX)
proxy_pid=
cleanup() {
	[ -n "$wpid" ] && kill "$wpid" 2>/dev/null
	[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
	redis-cli -p "$pw" -a 's3cr@t' --no-auth-warning shutdown nosave >/dev/null 2>&1
	redis_stop "$single" "$c1" "$c2" "$c3" "$pw" "$crash"
	rm -rf "$dir"
}
trap cleanup EXIT
make -s client >/dev/null || exit 1

make_job_commands

# ---- the qml command on one server and on a cluster ----

commands_on() {	# LABEL URL
	local label=$1 url=$2 q=cmd_$1 id fid out
	for i in $(seq 1 20); do
		"$QML" -d "$url" enqueue ok_job "[$i]" --queue "$q" >/dev/null || break
	done
	fid=$("$QML" -d "$url" enqueue fail_job '["x"]' --queue "$q")
	check "$label: 21 jobs enqueued" '[ "$(counts "$url" "$q")" = "0 0 21" ]'
	start_worker "$url" "$q"
	check "$label: worker --exec ran them (20 succeeded, 1 failed)" 'wait_counts "$url" "$q" "20 1 0"'
	check "$label: the worker stops cleanly (exit 0)" 'stop_worker'
	out=$("$QML" -d "$url" jobs --queue "$q" --state failed)
	check "$label: jobs --state failed lists the failed job" 'echo "$out" | grep -q "^$fid .*nope"'
	out=$("$QML" -d "$url" job "$fid")
	check "$label: job shows its history" 'echo "$out" | grep -q "processing  failed"'
	"$QML" -d "$url" pause "$q" >/dev/null
	id=$("$QML" -d "$url" enqueue ok_job '[0]' --queue "$q")
	start_worker "$url" "$q"
	sleep 1.5	# a paused queue must stay put: the worker polls it meanwhile
	check "$label: a paused queue hands out nothing" '[ "$(counts "$url" "$q")" = "20 1 1" ]'
	"$QML" -d "$url" resume "$q" >/dev/null
	check "$label: resumed, its job runs" 'wait_counts "$url" "$q" "21 1 0"'
	stop_worker
}

redis_start "$single" "$dir/single" >/dev/null
redis_cluster "$dir/cluster" "$c1" "$c2" "$c3" || exit 1
url=redis://127.0.0.1:$single/0
curl=redis+cluster://127.0.0.1:$c1,127.0.0.1:$c2
owner() { slot_owner "$1" "$c1"; }

commands_on single "$url"
commands_on cluster "$curl"
# a queue on each master: each gets its jobs, straight or through MOVED
for p in "$c1" "$c2" "$c3"; do
	for i in $(seq 1 100); do
		[ "$(owner "$(redis-cli -p "$c1" cluster keyslot "spread_$i")")" = "$p" ] && break
	done
	"$QML" -d "$curl" enqueue ok_job '[1]' --queue "spread_$i" >/dev/null
	check "cluster: queue spread_$i lives on the master at $p" \
		'[ -n "$(redis-cli -p $p --scan --pattern "qml{*}:q:spread_$i:all")" ]'
done
# scripts gone under a running worker (SCRIPT FLUSH, or a restart without
# a new client to load them): its claims get NOSCRIPT and load them again.
# The queue is resumed with redis-cli, as any qml command would load them.
"$QML" -d "$url" pause noscript >/dev/null
for i in $(seq 1 10); do "$QML" -d "$url" enqueue ok_job "[$i]" --queue noscript >/dev/null; done
start_worker "$url" noscript
sleep 0.5
redis-cli -p "$single" script flush >/dev/null
redis-cli -p "$single" del "$(redis-cli -p "$single" --scan --pattern 'qml{*}:q:noscript:paused')" >/dev/null
# counted with redis-cli too: a qml command would load the scripts itself
done_key=$(redis-cli -p "$single" --scan --pattern 'qml{*}:q:noscript:all' | sed 's/all$/succeeded/')
for i in $(seq 1 100); do
	[ "$(redis-cli -p "$single" zcard "$done_key")" = 10 ] && break
	sleep 0.2
done
check "scripts flushed: the worker loads them again (NOSCRIPT) and runs the jobs" \
	'[ "$(redis-cli -p "$single" zcard "$done_key")" = 10 ]'
stop_worker

# ---- bad URLs and unreachable servers: a message and the documented exit ----

expect_exit() {	# LABEL CODE PATTERN qml-arguments...
	local label=$1 code=$2 pattern=$3 out rc
	shift 3
	out=$(timeout 30 "$QML" "$@" 2>&1)
	rc=$?
	if [ $rc -eq "$code" ] && echo "$out" | grep -qi -- "$pattern"; then
		ok "$label: exit $code, \"$pattern\""
	else
		bad "$label: exit $code, \"$pattern\"" "exit $rc: $(echo "$out" | head -2)"
	fi
}
expect_exit "unreachable" 3 "cannot connect to Redis at 127.0.0.1:1" -d redis://127.0.0.1:1/0 stats
expect_exit "unreachable cluster" 3 "cannot connect to Redis" -d redis+cluster://127.0.0.1:1,127.0.0.1:2 stats
expect_exit "unknown scheme" 2 "unknown storage scheme" -d rediz://127.0.0.1/0 stats
expect_exit "bad port" 2 "bad port" -d redis://127.0.0.1:99999/0 stats
expect_exit "several hosts without cluster" 2 "redis+cluster" -d redis://a:1,b:2/0 stats
expect_exit "rediss" 4 "TLS" -d rediss://127.0.0.1:$single/0 stats
expect_exit "no such database" 2 "refused database" -d redis://127.0.0.1:$single/99999 stats
redis_start "$pw" "$dir/pw" --requirepass 's3cr@t' >/dev/null
expect_exit "wrong password" 3 "refused the password" -d "redis://:wrong@127.0.0.1:$pw/0" stats
expect_exit "missing password" 3 "needs a password" -d "redis://127.0.0.1:$pw/0" stats
check "the right password (percent-encoded @) works" \
	'"$QML" -d "redis://:s3cr%40t@127.0.0.1:$pw/0" enqueue ok_job "[1]" >/dev/null'

# ---- Redis killed and restarted mid-run: every accepted job runs ----

redis_start "$crash" "$dir/crash" --appendfsync always >/dev/null
xurl=redis://127.0.0.1:$crash/0
start_worker "$xurl" crash
: >"$dir/accepted"
refused=0
for i in $(seq 1 150); do
	if id=$("$QML" -d "$xurl" enqueue ok_job "[$i]" --queue crash 2>/dev/null); then
		echo "$id" >>"$dir/accepted"
	else
		refused=$((refused + 1))
	fi
	if [ "$i" = 60 ]; then
		# killed (no chance to save anything more), back two seconds later
		kill -9 "$(cat "$dir/crash/redis.pid")"
		(sleep 2; redis-server --port "$crash" --bind 127.0.0.1 --dir "$dir/crash" \
			--appendonly yes --appendfsync always --save '' --daemonize yes \
			--pidfile "$dir/crash/redis.pid" --logfile "$dir/crash/redis.log" >/dev/null) &
	fi
done
accepted=$(wc -l <"$dir/accepted")
check "restart: refused while down, accepted again after ($accepted accepted, $refused refused)" \
	'[ "$refused" -gt 0 ] && [ "$accepted" -ge 100 ] && [ $((accepted + refused)) = 150 ]'
check "restart: the worker ran every accepted job" \
	'wait_counts "$xurl" crash "$(redis-cli -p $crash zcard "$(redis-cli -p $crash --scan --pattern "qml{*}:q:crash:all" | head -1)") 0 0" ||
		show_unfinished "$xurl" crash'
"$QML" -d "$xurl" --json jobs --queue crash --state succeeded --limit 1000 2>/dev/null |
	python3 -c 'import json, sys; print("\n".join(str(j["id"]) for j in json.load(sys.stdin)))' |
	sort >"$dir/succeeded"
check "restart: each accepted id is among the succeeded" \
	'[ -z "$(sort "$dir/accepted" | comm -23 - "$dir/succeeded")" ]'
check "restart: the worker survived it and stops cleanly" 'kill -0 $wpid && stop_worker'

# ---- a worker's call that ran, but whose answer never came back ----

# What a Redis killed between running a call and answering it does, made
# certain: a proxy (cut_proxy.py) drops one answer to the worker. A lost
# claim's jobs are the worker's, held for the lease (5 minutes): its next
# claim asks for them by the lost claim's token and runs them, in their one
# attempt. A lost completion is sent again: the job is succeeded already,
# which is no lost lease.
start_proxy() {	# QUEUE KIND: drops one answer; sets from (worker.log's next line)
	rm -f "$dir/cut"
	python3 test/redis/cut_proxy.py "$proxy" "$single" "$1" "$2" "$dir/cut" &
	proxy_pid=$!
	for i in $(seq 1 50); do redis-cli -p "$proxy" ping >/dev/null 2>&1 && break; sleep 0.1; done
	from=$(($(wc -l <"$dir/worker.log") + 1))
}
stop_proxy() {	# sets log: the worker's lines since start_proxy
	kill "$proxy_pid" 2>/dev/null
	wait "$proxy_pid" 2>/dev/null
	proxy_pid=
	log=$(tail -n +"$from" "$dir/worker.log")
}
cut_done() { for i in $(seq 1 100); do [ -f "$dir/cut" ] && break; sleep 0.1; done; [ -f "$dir/cut" ]; }
lost_answer() {	# KIND QUEUE
	local kind=$1 q=$2
	start_proxy "$q" "$kind"
	start_worker "redis://127.0.0.1:$proxy/0" "$q"
	for i in $(seq 1 5); do "$QML" -d "$url" enqueue ok_job "[$i]" --queue "$q" >/dev/null; done
	check "lost $kind answer: the proxy dropped one" 'cut_done'
	check "lost $kind answer: every job ran within 20 s, not after its lease" \
		'wait_counts "$url" "$q" "5 0 0" 20 || show_unfinished "$url" "$q"'
	check "lost $kind answer: each job ran once, in one attempt" \
		'[ "$("$QML" -d "$url" --json jobs --queue "$q" --limit 100 |
			python3 -c "import json, sys; print(sorted({j[\"attempts\"] for j in json.load(sys.stdin)}))")" = "[1]" ]'
	stop_worker
	stop_proxy
}
# Every worker takes its lost claims back at once after a restart: that
# must read the claim's own jobs (its token's set), not the queue's whole
# processing set, which other workers' jobs fill (here: 20 held by another).
for i in $(seq 1 20); do "$QML" -d "$url" enqueue ok_job "[$i]" --queue lostclaim >/dev/null; done
redis-cli -p "$single" eval "$(cat <<'LUA'
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, m in ipairs(ids) do
  local id = string.sub(m, 15)
  local k = string.gsub(KEYS[1], 'q:lostclaim:ready$', 'j:' .. id)
  redis.call('HSET', k, 's', 2, 'w', 'someone-else', 'n', 1, 'l', 9999999999999)
  redis.call('ZADD', string.gsub(KEYS[1], 'ready$', 'proc'), 9999999999999, id)
end
redis.call('DEL', KEYS[1])
return #ids
LUA
)" 1 "$(redis-cli -p "$single" --scan --pattern '*q:lostclaim:ready')" >/dev/null
redis-cli -p "$single" monitor >"$dir/monitor" 2>/dev/null &
mon_pid=$!
lost_answer claim lostclaim
kill "$mon_pid" 2>/dev/null
wait "$mon_pid" 2>/dev/null
check "lost claim answer: the worker says it took the claim's jobs back" \
	'echo "$log" | grep -q "took back"' "$(echo "$log" | grep fetcher | head -3)"
check "lost claim answer: taking back read the claim's jobs, not the processing set" \
	'grep -q "SMEMBERS.*q:lostclaim:ct:" "$dir/monitor" &&
		! grep -qi "\"zrange\" \"[^\"]*q:lostclaim:proc\" \"0\" \"-1\"" "$dir/monitor"' \
	"$(grep -i "lostclaim:proc\|lostclaim:ct" "$dir/monitor" | head -3)"
lost_answer complete lostdone
check "lost complete answer: the worker says the outcome was recorded, not that a lease was lost" \
	'echo "$log" | grep -q "already recorded (the first send" && ! echo "$log" | grep -q "no longer held"' \
	"$(echo "$log" | grep flusher | head -3)"
# A completion refused because the lease is really lost (another worker
# holds the job) stays a lost lease when its answer was lost and it is sent
# again: Redis tells a resent outcome (the job finished, last by this
# worker in this attempt) from that.
printf '#!/bin/sh\ncat >/dev/null; sleep 2; echo "{}"\n' >"$dir/slow.sh"
chmod +x "$dir/slow.sh"
start_proxy lostlease complete
start_worker "redis://127.0.0.1:$proxy/0" lostlease --exec slow_job="$dir/slow.sh"
id=$("$QML" -d "$url" enqueue slow_job '[]' --queue lostlease)
key=$(redis-cli -p "$single" --scan --pattern "*:j:$(printf %016d "$id")")
for i in $(seq 1 50); do [ "$(redis-cli -p "$single" hget "$key" s)" = 2 ] && break; sleep 0.1; done
redis-cli -p "$single" hset "$key" w someone-else >/dev/null	# its lease lost while it runs
check "lost lease, answer lost: the proxy dropped the refused completion's answer" 'cut_done'
check "lost lease, answer lost: the resend warns of a lost lease" \
	'for i in $(seq 1 50); do tail -n +"$from" "$dir/worker.log" | grep -q "no longer held" && break; sleep 0.2; done
	tail -n +"$from" "$dir/worker.log" | grep -q "no longer held"' \
	"$(tail -n +"$from" "$dir/worker.log" | grep flusher | head -3)"
stop_worker
stop_proxy

# ---- a slot moving between masters under a running worker ----

node_of() { node_id "$1" "$c1"; }
slot=$(redis-cli -p "$c1" cluster keyslot mig)	# the queue's slot: crc16 of its name
src=$(owner "$slot")
dst=$c1
[ "$src" = "$c1" ] && dst=$c2
for i in $(seq 1 30); do "$QML" -d "$curl" enqueue ok_job "[$i]" --queue mig >/dev/null; done
start_worker "$curl" mig
check "migration: the first 30 ran" 'wait_counts "$curl" mig "30 0 0"'
# the move, step by step, as redis-cli --cluster reshard does it
redis-cli -p "$dst" cluster setslot "$slot" importing "$(node_of "$src")" >/dev/null
redis-cli -p "$src" cluster setslot "$slot" migrating "$(node_of "$dst")" >/dev/null
while keys=$(redis-cli -p "$src" cluster getkeysinslot "$slot" 100) && [ -n "$keys" ]; do
	redis-cli -p "$src" migrate 127.0.0.1 "$dst" "" 0 5000 keys $keys >/dev/null
done
# the keys moved, the slot not yet: the source answers ASK
for i in $(seq 31 40); do "$QML" -d "$curl" enqueue ok_job "[$i]" --queue mig >/dev/null || break; done
check "migration: enqueue during the move follows ASK (40 jobs)" \
	'[ "$(redis-cli -p $dst cluster countkeysinslot $slot)" -gt 0 ] && wait_counts "$curl" mig "40 0 0"'
for p in "$c1" "$c2" "$c3"; do redis-cli -p "$p" cluster setslot "$slot" node "$(node_of "$dst")" >/dev/null; done
for i in $(seq 41 50); do "$QML" -d "$curl" enqueue ok_job "[$i]" --queue mig >/dev/null || break; done
check "migration: after it, the running worker follows MOVED (50 jobs)" 'wait_counts "$curl" mig "50 0 0"'
check "migration: the source holds none of the slot's keys" \
	'[ "$(redis-cli -p $src cluster countkeysinslot $slot)" = 0 ]'
stop_worker

finish
