#!/usr/bin/env bash
# test/sql_edition/runtime.sh: without a scheduler, the qml worker runtimes
# run the maintenance passes of the pure-SQL edition, one at a time
# (client/src/maintenance_tick.c). Two `qml worker` processes against one
# database holding the SQL edition:
#   - exactly one session holds the maintainer's advisory lock, and the
#     passes come at most about once a second (not once per runtime);
#   - a scheduled job of a queue no worker fetches (only a pass promotes
#     it) becomes enqueued, and a recurring job fires once per due time;
#   - when the maintainer is killed, the other runtime takes over.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/test/sql_edition
db=qml_sqled_rt
owner=qml_sqled_owner
qml=$root/client/qml
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "runtime: FAILED: $*" >&2; exit 1; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# waits up to $1 seconds for the query $2 to answer t
until_true() {
	local deadline=$((SECONDS + $1))
	while [ "$(q -c "$2")" != t ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
}

make -s -C "$root" client/qml
"$here/install.sh" "$db" "$owner"
# count qml.maintain() calls (a superuser's setting, for the test only)
psql -X -q -d postgres -c "ALTER DATABASE $db SET track_functions = 'pl'"
url="host=$PGHOST port=$PGPORT dbname=$db user=$owner"
for name in rt_a rt_b; do
	"$qml" -d "$url" worker --name "$name" --queues default --exec "m=true" \
		>"$here/$name.log" 2>&1 &
	pids+=($!)
done

# one maintainer
lock="SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
		 AND (l.classid::bigint << 32 | l.objid::bigint) = 8173308115788852852"
until_true 20 "SELECT ($lock) = 1" || fail "no runtime holds the maintainer's lock"
sleep 2
[ "$(q -c "$lock")" = 1 ] || fail "more than one maintainer: $(q -c "$lock")"

# passes: one runtime's worth (one a second), not two
calls="SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'qml' AND funcname = 'maintain'"
c0=$(q -c "SELECT pg_stat_clear_snapshot()" -c "$calls"); sleep 6
c1=$(q -c "$calls")
[ $((c1 - c0)) -ge 1 ] && [ $((c1 - c0)) -le 8 ] ||
	fail "expected 1 to 8 passes in 6 s from one maintainer, saw $((c1 - c0))"

# promotion by a pass: queue "elsewhere" has no worker, so no fetch promotes it
job=$(q -c "SELECT qml.enqueue('later', queue => 'elsewhere', run_at => now() + interval '1 second')")
until_true 15 "SELECT state = 'enqueued' FROM qml.jobs WHERE id = $job" ||
	fail "scheduled job $job was not promoted: $(q -c "SELECT state FROM qml.jobs WHERE id = $job")"
# ... and the workers' own queue runs its scheduled jobs
job2=$(q -c "SELECT qml.enqueue('m', run_at => now() + interval '1 second')")
until_true 15 "SELECT state = 'succeeded' FROM qml.jobs WHERE id = $job2" || fail "job $job2 did not run"

# a recurring job fires once per due time
q -c "SELECT qml.add_recurring('tick', 'every 1 second', 'tick', queue => 'elsewhere')" >/dev/null
until_true 20 "SELECT count(*) >= 4 FROM qml.jobs WHERE method = 'tick'" || fail "recurring job did not fire"
dup=$(q -c "SELECT count(*) FROM (SELECT run_at FROM qml.jobs WHERE method = 'tick' GROUP BY run_at HAVING count(*) > 1) d")
[ "$dup" = 0 ] || fail "$dup due times of the recurring job fired more than once"

# the maintainer dies: the other runtime takes over
leader=$(q -c "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
				WHERE l.locktype = 'advisory' AND (l.classid::bigint << 32 | l.objid::bigint) = 8173308115788852852")
case "$leader" in
	*rt_a) victim=${pids[0]} other=rt_b ;;
	*rt_b) victim=${pids[1]} other=rt_a ;;
	*) fail "the lock holder is not a runtime: '$leader'" ;;
esac
kill -KILL "$victim"; wait "$victim" 2>/dev/null || true
until_true 20 "SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
				WHERE l.locktype = 'advisory' AND a.application_name LIKE '%$other'
				  AND (l.classid::bigint << 32 | l.objid::bigint) = 8173308115788852852)" ||
	fail "runtime $other did not take over from $leader"
job3=$(q -c "SELECT qml.enqueue('later', queue => 'elsewhere', run_at => now() + interval '1 second')")
until_true 15 "SELECT state = 'enqueued' FROM qml.jobs WHERE id = $job3" ||
	fail "after the takeover, scheduled job $job3 was not promoted"
dup=$(q -c "SELECT count(*) FROM (SELECT run_at FROM qml.jobs WHERE method = 'tick' GROUP BY run_at HAVING count(*) > 1) d")
[ "$dup" = 0 ] || fail "$dup due times of the recurring job fired more than once"

echo "runtime: one maintainer of two runtimes ($((c1 - c0)) passes in 6 s), promotion, recurring once per due time, takeover by $other: ok"
cleanup
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
rm -f "$here"/rt_a.log "$here"/rt_b.log
