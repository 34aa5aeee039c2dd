# test/redis/lib.sh: what the Redis suites (run.sh, wakeup.sh, failover.sh)
# share, sourced after `cd` to the project root: TAP output, a queue's
# counts through the qml command, a `qml worker --exec` in the background,
# and who owns a slot in a cluster. Each suite sets dir (its scratch
# directory) before it starts a worker.

QML=$PWD/client/qml
wpid=
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ -n "${2:-}" ] && echo "#   $2"; }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }

# the job commands: ok.sh succeeds, fail.sh fails for good (exit 65)
make_job_commands() {
	printf '#!/bin/sh\ncat >/dev/null; echo "{\\"done\\":true}"\n' >"$dir/ok.sh"
	printf '#!/bin/sh\necho nope >&2; exit 65\n' >"$dir/fail.sh"
	chmod +x "$dir/ok.sh" "$dir/fail.sh"
}

# counts of a queue from qml --json stats: "succeeded failed enqueued"
counts() {
	"$QML" -d "$1" --json stats 2>/dev/null | python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin) if r["queue"] == sys.argv[1]]
r = rows[0] if rows else {}
print(r.get("succeeded", 0), r.get("failed", 0), r.get("enqueued", 0))' "$2"
}

# waits (30 s at most, or $4 s) until queue $2 at $1 has counts $3
wait_counts() {
	local i got
	for i in $(seq 1 $((${4:-30} * 5))); do
		got=$(counts "$1" "$2")
		[ "$got" = "$3" ] && return 0
		sleep 0.2
	done
	echo "#   counts of $2: $got, want $3"
	return 1
}

# after a wait that failed: the jobs of queue $2 at $1 not succeeded, and
# the history of the first few (what state a late job was left in); false
show_unfinished() {
	local id
	"$QML" -d "$1" jobs --queue "$2" --limit 1000 | awk 'NR == 1 || $2 != "succeeded"' |
		sed 's/^/#   /'
	for id in $("$QML" -d "$1" jobs --queue "$2" --limit 1000 |
		awk 'NR > 1 && $2 != "succeeded" {print $1}' | head -5); do
		"$QML" -d "$1" job "$id" | sed -n '/^history/,$p' | sed 's/^/#   /'
	done
	return 1
}

start_worker() {	# URL QUEUE [worker options...]
	local u=$1 q=$2
	shift 2
	"$QML" -d "$u" worker --workers 4 --queues "$q" "$@" --exec ok_job="$dir/ok.sh" \
		--exec fail_job="$dir/fail.sh" >>"$dir/worker.log" 2>&1 &
	wpid=$!
}

stop_worker() {
	local rc
	kill -TERM "$wpid"
	wait "$wpid"
	rc=$?
	wpid=
	return $rc
}

# the port of the master that owns slot $1, asked of the node at port $2
# (CLUSTER NODES: slot ranges from field 9)
slot_owner() {
	redis-cli -p "$2" cluster nodes | python3 -c '
import sys
slot = int(sys.argv[1])
for line in sys.stdin:
    f = line.split()
    if "fail" in f[2].split(","):
        continue
    for r in f[8:]:
        a, _, b = r.partition("-")
        if a.isdigit() and int(a) <= slot <= int(b or a):
            print(f[1].split("@")[0].rsplit(":", 1)[1])
' "$1"
}

# the node id of the node at port $1, asked of the node at port $2
node_id() { redis-cli -p "$2" cluster nodes | awk -v p=":$1@" 'index($2, p) {print $1}'; }

# the end of a suite: the plan, and the worker's log when something failed
finish() {
	echo "1..$n"
	[ $failed -eq 0 ] && return 0
	echo "# $failed of $n failed; worker log:"
	tail -20 "$dir/worker.log" | sed 's/^/# /'
	return 1
}
