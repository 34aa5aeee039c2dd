#!/usr/bin/env bash
# test/stress/held_memory.sh: a write of many held jobs keeps the server's
# memory to its ids, not a share of every job written.
#
# 200,000 jobs are claimed by one worker; one session then extends their
# leases in one qml.heartbeat and completes them in one qml.complete_batch,
# each given the 200,000 ids: written directly, then again by the UPDATE
# statements (an admin's trigger on qml.jobs). While each call runs, the backend's private
# memory (RssAnon in /proc/PID/status, so the server must run on this
# machine) is read every few milliseconds; its growth over the session's
# before the call must stay under BOUND_MB. The ids themselves take about
# 10 MB there (the array, its elements, their sorted copy); each job's
# write kept 0.25 KB more until the call ended (worker_write.c), 48 MB
# for these, and the statements' rows stayed with SPI until its end besides
# going to the result set (worker_held.c, run_statement), 31 MB. The memory only grows during a call, so a late sample sees
# its peak.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at, in a database of
# its own (qml_held_memory, or $QML_HELD_MEMORY_DB), dropped on success.
set -uo pipefail
db=${QML_HELD_MEMORY_DB:-qml_held_memory}
jobs=${QML_HELD_MEMORY_JOBS:-200000}
bound_mb=${QML_HELD_MEMORY_BOUND_MB:-25}

. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d /tmp/qml-held-memory.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# held: $jobs jobs of queue mem, claimed by w for an hour
held() {
	q -c "TRUNCATE qml.jobs CASCADE" >/dev/null || die "truncate failed"
	q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
			'method', 'm', 'queue', 'mem')) FROM generate_series(1, $jobs)))" >/dev/null ||
		die "enqueue failed"
	q -c "DO \$\$ BEGIN
		FOR i IN 1..($jobs + 999) / 1000 LOOP
			PERFORM qml.fetch('w', '{mem}', 1000, interval '1 hour');
		END LOOP;
	END \$\$" || die "fetch failed"
}

# peak CALL: the backend's RssAnon growth (kB) while CALL runs on the ids
peak() {
	local pid base top v client
	rm -f "$tmp/pid"
	q >"$tmp/out" 2>&1 <<SQL &
SELECT pg_backend_pid() \\g $tmp/pid
SELECT pg_sleep(0.3);
SELECT count(*) FROM $1(ARRAY(SELECT id FROM qml.jobs WHERE queue = 'mem'), 'w');
SQL
	client=$!
	while [ ! -s "$tmp/pid" ] && kill -0 $client 2>/dev/null; do sleep 0.01; done
	pid=$(cat "$tmp/pid" 2>/dev/null)
	[ -n "$pid" ] && [ -r "/proc/$pid/status" ] || die "cannot read the backend's /proc/$pid/status"
	sleep 0.1
	base=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
	top=$base
	while kill -0 $client 2>/dev/null; do
		v=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$top" ] && top=$v
		sleep 0.005
	done
	wait $client || die "$1 failed: $(cat "$tmp/out")"
	[ "$(tail -1 "$tmp/out")" = "$jobs" ] || die "$1 wrote $(tail -1 "$tmp/out") jobs, not $jobs"
	echo $((top - base))
}

# check HOW: a heartbeat and a completion of all the held jobs, each
# growing the backend by less than the bound
check_calls() {
	local call grew
	held
	for call in qml.heartbeat qml.complete_batch; do
		grew=$(peak $call) || exit 1
		if [ "$grew" -lt $((bound_mb * 1024)) ]; then
			echo "ok   $call of $jobs ids, $1: the backend grew $((grew / 1024)) MB (bound $bound_mb)"
		else
			echo "FAIL $call of $jobs ids, $1: the backend grew $((grew / 1024)) MB (bound $bound_mb)"
			fail=1
		fi
	done
}

fresh_db
fail=0
check_calls "written directly"
# a trigger of an admin's own: the UPDATE statements run (direct_gate.c)
q -c "CREATE FUNCTION public.pass() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RETURN NEW; END\$\$;
	  CREATE TRIGGER admin_own BEFORE UPDATE ON qml.jobs FOR EACH ROW EXECUTE FUNCTION public.pass()" ||
	die "cannot create the trigger"
check_calls "by the statements"
[ $fail = 0 ] || exit 1
drop_db
