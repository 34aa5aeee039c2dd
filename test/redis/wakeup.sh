#!/usr/bin/env bash
# test/redis/wakeup.sh: the "redis_wakeup" suite. A `qml worker` on Redis
# that polls only every 30 s, idle, must start a job that another process
# (`qml enqueue`) adds within 3 s: only its wakeup can do that (the scripts
# PUBLISH the queue's name on P:wake, the worker's fetch session SUBSCRIBEs
# to it, store_redis.c). On one server, and on a 3-master Redis Cluster for
# a queue on another master than the one the worker subscribed to (a
# cluster passes every PUBLISH to all its nodes). How long each job waited
# is read from the job itself (created_at to started_at, both the Redis
# server's clock), so a slow `qml` process does not count. The worker
# waits idle longer than its command timeout between the jobs: that must
# neither break its session nor slow its stop.
#
# Ports QML_REDIS_PORT (default 6620) + 20 to + 23; needs redis-server and
# redis-cli (scripts/install-deps.sh) and `make client`.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/redis.sh
. test/redis/lib.sh
base=$((${QML_REDIS_PORT:-6620} + 20))
single=$base c1=$((base + 1)) c2=$((base + 2)) c3=$((base + 3))
dir=$(mktemp -d /tmp/qml-test-redis-wakeup.XXXXXX)
cleanup() {
	[ -n "$wpid" ] && kill "$wpid" 2>/dev/null
	redis_stop "$single" "$c1" "$c2" "$c3"
	rm -rf "$dir"
}
trap cleanup EXIT
make -s client >/dev/null || exit 1
make_job_commands
bound_ms=3000

# ms from job $2's creation to its start (the server's clock); "" until it started
start_delay() {
	"$QML" -d "$1" --json job "$2" 2>/dev/null | python3 -c '
import datetime, json, sys
j = json.load(sys.stdin)
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
if j["started_at"]:
    print(int((t(j["started_at"]) - t(j["created_at"])).total_seconds() * 1000))'
}

wakeups_on() {	# LABEL URL QUEUE
	local label=$1 url=$2 q=$3 id d i w slowest=0 late= t0
	: >"$dir/worker.log"
	# the first job is there before the worker: its first fetch takes it
	"$QML" -d "$url" enqueue ok_job '[0]' --queue "$q" >/dev/null
	# a 1 s command timeout: waiting idle longer than it must not break
	# the session (a wakeup socket read with nothing there would block)
	QML_CONNECT_TIMEOUT=1 start_worker "$url" "$q" --poll-interval 30s
	check "$label: the worker runs the job that was there" 'wait_counts "$url" "$q" "1 0 0" 15'
	for i in 1 2 3 4 5; do
		sleep 1.5	# its fetch came back empty: it waits (30 s unless woken)
		id=$("$QML" -d "$url" enqueue ok_job "[$i]" --queue "$q")
		for w in $(seq 1 50); do
			d=$(start_delay "$url" "$id")
			[ -n "$d" ] && break
			sleep 0.2
		done
		if [ -z "$d" ] || [ "$d" -gt "$bound_ms" ]; then
			late="job $i not started after ${d:-10000+} ms"
			break
		fi
		[ "$d" -gt "$slowest" ] && slowest=$d
	done
	check "$label: 5 jobs enqueued by another process each started within $bound_ms ms, polling every 30 s (slowest $slowest ms)" \
		'[ -z "$late" ]' "$late"
	check "$label: idle past its command timeout, the worker kept its session" \
		'! grep -q "reconnected" "$dir/worker.log"' "$(grep -c reconnected "$dir/worker.log") reconnects"
	t0=$SECONDS
	check "$label: the idle worker stops cleanly, within 5 s" 'stop_worker && [ $((SECONDS - t0)) -le 5 ]' \
		"took $((SECONDS - t0)) s"
}

redis_start "$single" "$dir/single" >/dev/null || exit 1
redis_cluster "$dir/cluster" "$c1" "$c2" "$c3" || exit 1
wakeups_on single "redis://127.0.0.1:$single/0" wake

# the wakeup connection killed under a busy worker (CLIENT KILL TYPE
# pubsub): the fetch session subscribes again and keeps the jobs it had
# claimed ahead (a new session dropped them, left processing until their
# 5-minute lease ran out)
url=redis://127.0.0.1:$single/0
: >"$dir/worker.log"
"$QML" -d "$url" pause busy >/dev/null 2>&1
for i in $(seq 1 10); do
	"$QML" -d "$url" enqueue ok_job "[$i]" --queue busy >/dev/null
done
for i in $(seq 11 300); do echo "$i"; done | xargs -P 4 -I{} "$QML" -d "$url" enqueue ok_job "[{}]" --queue busy >/dev/null
"$QML" -d "$url" resume busy >/dev/null
start_worker "$url" busy
for k in 1 2 3 4 5 6 7 8; do
	sleep 0.3
	redis-cli -p "$single" client kill type pubsub >/dev/null
done
check "wakeup connection killed 8 times under a busy worker: all 300 jobs ran, none left claimed" \
	'wait_counts "$url" busy "300 0 0" 60'
check "... and the worker stops cleanly" 'stop_worker'

# the worker subscribes on the first node of the URL (c1): a queue of c2's
for i in $(seq 1 100); do
	[ "$(slot_owner "$(redis-cli -p "$c1" cluster keyslot "wake_$i")" "$c1")" = "$c2" ] && break
done
wakeups_on cluster "redis+cluster://127.0.0.1:$c1,127.0.0.1:$c2" "wake_$i"
check "cluster: the worker's queue lives on another master than the one it subscribed to" \
	'[ -n "$(redis-cli -p $c2 --scan --pattern "qml{*}:q:wake_$i:all")" ]'
finish
