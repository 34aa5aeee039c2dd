#!/usr/bin/env bash
# test/redis/failover.sh: the "redis_failover" suite. A Redis Cluster of 3
# masters with a replica each (node timeout 2 s) under a running `qml
# worker` while a producer process enqueues:
#  (a) a manual CLUSTER FAILOVER on the replica of the master that holds
#      the queue: the replica catches up before it takes over, so every
#      accepted job runs, once, and none is left claimed;
#  (b) kill -9 of that queue's master (the first node of the URL, too):
#      the cluster promotes its replica by itself after the node timeout.
#      Replication is asynchronous, so what the dead master acknowledged
#      last may be missing on its replica: the test asserts what holds (the
#      worker survives and carries on, new `qml` commands skip the dead
#      seed, every job accepted after the failover runs, every job that
#      exists ends succeeded) and prints what was lost or run again.
# The worker's lease is 15 s, so a job whose claim reached the replica but
# whose completion did not is rescued and run again within the test.
#
# Ports QML_REDIS_PORT (default 6620) + 24 to + 29; needs redis-server and
# redis-cli (scripts/install-deps.sh) and `make client`.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/redis.sh
. test/redis/lib.sh
base=$((${QML_REDIS_PORT:-6620} + 24))
ports=$(seq "$base" $((base + 5)))
dir=$(mktemp -d /tmp/qml-test-redis-failover.XXXXXX)
ppid_=
cleanup() {
	[ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null
	[ -n "$wpid" ] && kill -9 "$wpid" 2>/dev/null
	redis_stop $ports
	rm -rf "$dir"
}
trap cleanup EXIT
make -s client >/dev/null || exit 1
make_job_commands
q=failover

redis_cluster_replicated "$dir/cluster" 1 2000 $ports || exit 1
any=$base	# a node to ask about the cluster (never the one killed)
slot=$(redis-cli -p "$any" cluster keyslot "$q")
master=$(slot_owner "$slot" "$any")
replica=$(redis-cli -p "$master" cluster replicas "$(node_id "$master" "$master")" |
	awk '{split($2, a, "@"); n = split(a[1], b, ":"); print b[n]; exit}')
[ "$master" = "$any" ] || [ "$replica" = "$any" ] && any=$(echo $ports | tr ' ' '\n' | grep -vx "$master" | grep -vx "$replica" | head -1)
echo "# queue $q: slot $slot on the master at $master, its replica at $replica"
# the replica first: it is the master killed in (b), and stays in the URL
url="redis+cluster://127.0.0.1:$replica,127.0.0.1:$master,127.0.0.1:$any"

# produce LABEL SECONDS: qml enqueue in a loop, one process each; the ids
# accepted go to $dir/LABEL.ids, the refusals are counted in $dir/LABEL.refused
produce() {
	local label=$1 end=$((SECONDS + $2)) i=0 id
	: >"$dir/$label.ids"
	: >"$dir/$label.refused"
	while [ $SECONDS -lt $end ]; do
		i=$((i + 1))
		if id=$(timeout 20 "$QML" -d "$url" enqueue ok_job "[$i]" --queue "$q" 2>>"$dir/$label.err"); then
			echo "$id" >>"$dir/$label.ids"
		else
			echo x >>"$dir/$label.refused"
		fi
		sleep 0.05
	done
}

# states of the jobs whose ids are in files $@: "succeeded other missing
# rerun" (rerun: succeeded after more than one attempt)
states() {
	"$QML" -d "$url" --json jobs --queue "$q" --limit 10000 2>/dev/null | python3 -c '
import json, sys
try:
    jobs = {j["id"]: j for j in json.load(sys.stdin)}
except ValueError:  # qml failed: say so, counting nothing as done
    print("- - - -")
    sys.exit()
ids = [int(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
done = [i for i in ids if i in jobs and jobs[i]["state"] == "succeeded"]
other = [i for i in ids if i in jobs and jobs[i]["state"] != "succeeded"]
missing = [i for i in ids if i not in jobs]
rerun = [i for i in done if jobs[i]["attempts"] > 1]
print(len(done), len(other), len(missing), len(rerun))' "$@"
}

# the states once no job of files $@ is left unfinished (60 s at most)
settled() {
	local i s
	for i in $(seq 1 60); do
		s=$(states "$@")
		[ "$(echo "$s" | cut -d' ' -f2)" = 0 ] && break
		sleep 1
	done
	echo "$s"
}

count() { cat "$@" 2>/dev/null | wc -l; }

start_worker "$url" "$q" --lease 15s

# ---- (a) a manual failover: nothing accepted is lost ----

produce a 8 &
ppid_=$!
sleep 2
redis-cli -p "$replica" cluster failover >/dev/null
for i in $(seq 1 100); do
	[ "$(slot_owner "$slot" "$any")" = "$replica" ] && break
	sleep 0.1
done
check "manual failover: the replica at $replica took the queue's slot over" \
	'[ "$(slot_owner "$slot" "$any")" = "$replica" ]'
wait "$ppid_"
ppid_=
read -r done other missing rerun <<<"$(settled "$dir/a.ids")"
echo "# (a) $(count "$dir/a.ids") accepted, $(count "$dir/a.refused") refused; succeeded $done, other $other, missing $missing, run twice $rerun"
check "manual failover: the producer went on ($(count "$dir/a.ids") accepted)" '[ "$(count "$dir/a.ids")" -ge 5 ]'
check "manual failover: every accepted job succeeded, none lost or left claimed" \
	'[ "$done" = "$(count "$dir/a.ids")" ] && [ "$other" = 0 ] && [ "$missing" = 0 ]'
check "manual failover: each ran once (no lease ran out)" '[ "$rerun" = 0 ]'
check "manual failover: the worker is still running" 'kill -0 "$wpid"'

# ---- (b) kill -9 of the queue's master: the cluster fails over by itself ----

produce b1 3
produce b2 8 &
ppid_=$!
sleep 1
kill -9 "$(cat "$dir/cluster/$replica/redis.pid")"
t0=$SECONDS
for i in $(seq 1 300); do
	[ "$(slot_owner "$slot" "$any")" = "$master" ] && break
	sleep 0.1
done
took=$((SECONDS - t0))
check "kill -9: the replica at $master took the slot over by itself (${took} s)" \
	'[ "$(slot_owner "$slot" "$any")" = "$master" ]'
wait "$ppid_"
# accepted after the failover: by a process started once the slot moved
produce b3 5
ppid_=
read -r done other missing rerun <<<"$(settled "$dir"/b[123].ids)"
accepted=$(count "$dir"/b[123].ids)
echo "# (b) $accepted accepted ($(count "$dir/b1.ids") before the kill, $(count "$dir/b2.ids") around it," \
	"$(count "$dir/b3.ids") after), $(count "$dir"/b[123].refused) refused while the slot had no master;" \
	"succeeded $done, not finished $other, lost (acknowledged, missing on the replica) $missing, run twice $rerun"
check "kill -9: the worker survived" 'kill -0 "$wpid"'
check "kill -9: a new qml process skips the dead first node of the URL (${accepted} accepted, b3 $(count "$dir/b3.ids"))" \
	'[ "$(count "$dir/b3.ids")" -ge 5 ] && [ "$(count "$dir/b3.refused")" = 0 ]'
check "kill -9: every job that exists ended succeeded (the worker carried on)" '[ "$other" = 0 ]'
b3=$(states "$dir/b3.ids")
check "kill -9: every job accepted after the failover succeeded ($b3)" \
	'[ "$(echo "$b3" | cut -d" " -f1)" = "$(count "$dir/b3.ids")" ]'
check "kill -9: the worker stops cleanly" 'stop_worker'
finish
