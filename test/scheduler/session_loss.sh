#!/usr/bin/env bash
# test/scheduler/session_loss.sh: a job whose worker's session ended
# (backend killed) is not failed by its handler: the first loss enqueues it
# again at once, in its old place in line, with the attempt counted and the
# loss in its history; a second loss in a row backs off as a failure does;
# max_attempts still ends it in failed; a handler's failure between two
# losses makes the next loss a first one again; an expired time lease
# still backs off.
. "$(dirname "$0")/lib.sh"
db=qml_sched_session_loss
newdb $db || exit 1
wait_scheduler $db

# claim_and_kill ID WORKER: WORKER claims job ID with a session lease, its
# backend is terminated, and the scheduler rescues the job; prints the
# state the job was left in
claim_and_kill() {
	(q $db -c "SELECT id FROM qml.fetch('$2', '{sl}', session_lease => true)" \
		-c "SELECT pg_sleep(60)" >/dev/null 2>&1) &
	poll 10 $db "SELECT locked_by FROM qml.jobs WHERE id = $1" "$2" >/dev/null
	q $db -c "SELECT pg_terminate_backend(lease_pid) FROM qml.jobs WHERE id = $1" >/dev/null
	wait
	poll 10 $db "SELECT state <> 'processing' FROM qml.jobs WHERE id = $1" t >/dev/null
	q $db -c "SELECT state FROM qml.jobs WHERE id = $1"
}

# one job at a time in queue sl: nothing else claims from it
a=$(q $db -c "SELECT qml.enqueue('a', queue => 'sl', max_attempts => 3, backoff_base => '200 ms', backoff_cap => '200 ms')")
run_at=$(q $db -c "SELECT run_at FROM qml.jobs WHERE id = $a")
check "first loss: enqueued again at once" enqueued "$(claim_and_kill $a w1)"
check "first loss: attempt counted, place in line kept, error says why" \
	"1|t|session of worker w1 ended" \
	"$(q $db -c "SELECT attempts, run_at = '$run_at', last_error FROM qml.jobs WHERE id = $a")"
check "first loss: in the history" "processing|enqueued|session of worker w1 ended" \
	"$(q $db -c "SELECT from_state, to_state, error FROM qml.job_events WHERE job_id = $a ORDER BY id DESC LIMIT 1")"
check "second loss in a row: backs off" awaiting_retry "$(claim_and_kill $a w2)"
check "second loss: attempt counted, due later" "2|t|session of worker w2 ended" \
	"$(q $db -c "SELECT attempts, run_at > '$run_at', last_error FROM qml.jobs WHERE id = $a")"
poll 10 $db "SELECT state FROM qml.jobs WHERE id = $a" enqueued >/dev/null
check "third loss at max_attempts: failed" failed "$(claim_and_kill $a w3)"
check "third loss: attempts" 3 "$(q $db -c "SELECT attempts FROM qml.jobs WHERE id = $a")"

b=$(q $db -c "SELECT qml.enqueue('b', queue => 'sl', max_attempts => 1)")
check "first loss with no attempt left: failed" failed "$(claim_and_kill $b w4)"

# a loss after a handler's failure is a first loss again
c=$(q $db -c "SELECT qml.enqueue('c', queue => 'sl', backoff_base => '200 ms', backoff_cap => '200 ms')")
check "a loss after a first loss" awaiting_retry "$(claim_and_kill $c w5 >/dev/null; claim_and_kill $c w6)"
poll 10 $db "SELECT state FROM qml.jobs WHERE id = $c" enqueued >/dev/null
q $db -c "SELECT id FROM qml.fetch('w7', '{sl}')" -c "SELECT qml.fail($c, 'w7', 'handler error')" >/dev/null
poll 10 $db "SELECT state FROM qml.jobs WHERE id = $c" enqueued >/dev/null
check "a loss after a handler's failure: enqueued at once" enqueued "$(claim_and_kill $c w8)"

# an expired time lease (no session lease) backs off as before
d=$(q $db -c "SELECT qml.enqueue('d', queue => 'tl')")
q $db -c "SELECT id FROM qml.fetch('w9', '{tl}', lease => '1 second')" >/dev/null
check "an expired time lease: backs off" "awaiting_retry|lease expired on worker w9" \
	"$(poll 10 $db "SELECT state, last_error FROM qml.jobs WHERE id = $d" "awaiting_retry|lease expired on worker w9")"

dropdb_ $db
finish
