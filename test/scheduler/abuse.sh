#!/usr/bin/env bash
# test/scheduler/abuse.sh: one caller's huge input must not hurt the
# others (issue 13, item 7). A cancel or statement_timeout stops a huge
# complete_batch at once; enqueue_batch over 40,000 distinct queues costs
# about what it costs in one queue (no search of per-transaction lists);
# a batch over thousands of queues that fills the shared statistics table
# costs no other tenant a count.
. "$(dirname "$0")/lib.sh"
db=qml_sched_abuse
newdb $db || exit 1
wait_scheduler $db

# --- a statement_timeout of 1 s on complete_batch of 30 million ids
q $db -c "CREATE TABLE big AS SELECT array(SELECT generate_series(1, 30000000)::bigint) a" \
	-c "SELECT cardinality(a) FROM big" >/dev/null
t0=$(now)
# a first call looks the tables up (the gate), so that the timeout meets
# complete_batch's own loops
err=$(psql -X -q -At -d $db -c "SELECT count(*) FROM qml.complete_batch('{1}', 'w')" \
	-c "SET statement_timeout = '1s'" \
	-c "SELECT count(*) FROM qml.complete_batch((SELECT a FROM big), 'w')" 2>&1 | grep -v '^0$')
t1=$(now)
check "complete_batch of 30M ids: statement_timeout fires" "ERROR:  canceling statement due to statement timeout" "$err"
# Without interrupt checks the 30 million look-ups run on long after the
# timeout; the bound leaves room for a loaded 2-core CI machine (a run there
# took 3.05 s, most of it reading the 240 MB array and freeing it).
less_than "$(elapsed "$t0" "$t1")" 10 && ok "... and ends within 10 s ($(elapsed "$t0" "$t1") s)" ||
	fail "... and ends within 10 s" "$(elapsed "$t0" "$t1") s"
q $db -c "DROP TABLE big"

# --- 40,000 jobs in distinct queues against 40,000 in one queue
batch() { # queue-expression
	local t0 t1
	t0=$(now)
	q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm', 'queue', $1)) FROM generate_series(1, 40000) i))" >/dev/null
	t1=$(now)
	elapsed "$t0" "$t1"
}
# three rounds, each one queue then distinct queues, the best round's
# ratio counts: a load spike on a shared machine during one batch is no
# property of the code (3.8x was seen once in one round with 8 test runs
# on 2 cores, 2.8x-3.4x usually), while a cost per queue that grows with
# the number of queues (a list searched per queue: 8.4 s against 0.4-0.8 s
# before xact_list.c) shows in every round. Each round makes its own
# 40,000 new queues, as one round did before.
batch "'warm'" >/dev/null
rounds= best=
for r in 1 2 3; do
	one=$(batch "'one'")
	distinct=$(batch "'d${r}_' || i")
	ratio=$(awk -v a="$distinct" -v b="$one" 'BEGIN { printf "%.2f", a / b }')
	rounds+="$distinct/$one s, "
	[ -z "$best" ] || less_than "$ratio" "$best" && best=$ratio
done
less_than "$best" 4 &&
	ok "40,000 distinct queues take less than 4x one queue (best round ${best}x; $rounds)" ||
	fail "40,000 distinct queues take less than 4x one queue" "best round ${best}x; $rounds"

# --- a batch over 6,000 queues fills the shared table while no roll-up
#     can run (another session holds the roll-ups' locks, shared: readers
#     pass); a tenant's counts then find no room, and are still counted
#     exactly, by qml.stats() at once and by the roll-up later
counts_check $db
q $db -c "TRUNCATE qml.jobs" -c "SELECT qml.maintain()" >/dev/null
check "after a TRUNCATE the counts are built again" exact "$(poll 5 $db "SELECT counts_check()" exact)"
lines=$(log_lines)
fifo=${TMPDIR:-/tmp}/qml_abuse.$$
rm -f "$fifo"
mkfifo "$fifo"
psql -X -q -At -d $db <"$fifo" >/dev/null 2>&1 &
holder=$!
exec 3>"$fifo"
echo "SELECT pg_advisory_lock_shared(7433580, 1), pg_advisory_lock_shared(7433580, 2);" >&3
poll 5 $db "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid IN (1, 2) AND granted" 2 >/dev/null
q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm', 'queue', 'many' || i)) FROM generate_series(1, 6000) i))" >/dev/null
q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'm', 'queue', 'tenant')) FROM generate_series(1, 30)))" >/dev/null
q $db -c "SELECT count(*) FROM qml.fetch('w', '{tenant}', 30, session_lease => false)" >/dev/null
q $db -c "SELECT count(*) FROM qml.complete_batch(array(SELECT id FROM qml.jobs WHERE queue = 'tenant' ORDER BY id LIMIT 20), 'w')" >/dev/null
q $db -c "SELECT count(qml.fail(id, 'w', 'x', false)) FROM qml.jobs WHERE queue = 'tenant' AND state = 'processing'" >/dev/null
spilled=$(q $db -c "SELECT coalesce(sum(enqueued), 0) FROM qml.throughput_minutes WHERE queue LIKE 'many%'")
[ "$spilled" -gt 0 ] && [ "$spilled" -lt 6000 ] && ok "the shared table filled: $spilled counts written by their transaction" ||
	fail "the shared table filled" "$spilled counts written by their transaction"
check "qml.stats() exact while nothing is rolled up" "20 10" "$(q $db -F ' ' -c "SELECT succeeded, failed FROM qml.stats('tenant')")"
check "... every queue's job counts exact, without a scan" exact "$(q $db -c "SELECT counts_check()")"
# a repeatable read transaction whose count rows another one changed since
# its snapshot: its own counts are still written, and it commits
fifo2=$fifo.rr
mkfifo "$fifo2"
rr_out=$(mktemp)
psql -X -q -At -v ON_ERROR_STOP=1 -d $db <"$fifo2" >"$rr_out" 2>&1 &
rr=$!
exec 4>"$fifo2"
echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 'snapshot';" >&4
poll 5 $db "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND state = 'idle in transaction'" 1 >/dev/null
q $db -c "SELECT qml.enqueue('m', queue => 'tenant')" >/dev/null
echo "SELECT qml.enqueue('m', queue => 'tenant'); COMMIT;" >&4
exec 4>&-
wait "$rr" && ok "a repeatable read transaction commits its counts" ||
	fail "a repeatable read transaction commits its counts" "$(grep ERROR "$rr_out")"
rm -f "$fifo2" "$rr_out"
echo "SELECT pg_advisory_unlock_all();" >&3
exec 3>&-
wait "$holder"
rm -f "$fifo"
check "the tenant's counts rolled up exactly" "32 20 10" "$(poll 5 $db "SELECT sum(enqueued) || ' ' || sum(succeeded) || ' ' || sum(failed) FROM qml.throughput_minutes WHERE queue = 'tenant'" "32 20 10")"
check "every queue's enqueued counted" 6032 "$(poll 5 $db "SELECT sum(enqueued) FROM qml.throughput_minutes WHERE queue LIKE 'many%' OR queue = 'tenant'" 6032)"
check "job counts exact after the roll-up" exact "$(q $db -c "SELECT counts_check()")"
check "nothing dropped" "" "$(log_since "$lines" | grep -i "dropped")"

dropdb_ $db
finish
