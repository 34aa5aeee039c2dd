#!/usr/bin/env bash
# test/scheduler/notify_spoof.sh: anyone may NOTIFY qml (PostgreSQL has no
# privileges on channels). A notification that no commit of qml sent must
# cost nothing: a fetch waiting in the server sleeps on a condition
# variable, not on notifications, so NOTIFY qml with a queue's name, a
# bogus name or the longest payload PostgreSQL takes, sent by a role with
# no rights on qml, makes it claim no more often than when nothing is sent,
# changes no state and raises no error. (libqml's runtime is tested in
# client/tests/runtime_test.c: one empty fetch per notification naming one
# of its queues, none for others.)
. "$(dirname "$0")/lib.sh"
db=qml_sched_spoof
newdb $db || exit 1
# a database its scheduler serves: fetch then leaves due jobs to it
wait_scheduler $db
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql -X -q -d postgres -c "DROP ROLE IF EXISTS qml_spoofer" >/dev/null 2>&1' EXIT

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS qml_spoofer" -c "CREATE ROLE qml_spoofer LOGIN" >/dev/null
# queue sp exists (a finished job, settings of its own); nothing is enqueued
id=$(q $db -c "SELECT qml.enqueue('done', queue => 'sp')")
q $db -c "SELECT count(*) FROM qml.fetch('w', '{sp}')" -c "SELECT qml.complete($id, 'w')" >/dev/null
q $db -c "SELECT qml.configure_queue('sp', retention => '1 day')" >/dev/null
state() { q $db -c "SELECT md5(coalesce((SELECT string_agg(j::text, '|' ORDER BY j.id) FROM qml.jobs j), '') || '#' || coalesce((SELECT string_agg(e::text, '|' ORDER BY e.id) FROM qml.job_events e), '') || '#' || coalesce((SELECT string_agg(x::text, '|' ORDER BY x.name) FROM qml.queues x), ''))"; }

# one fetch that waits 1.5 s in the server: what it claimed, and how many
# scans of qml.jobs its claims made (pg_stat_xact_*: this transaction's own)
waiting_fetch() {
	q $db -F ' ' -c "BEGIN" -c "SELECT count(*) FROM qml.fetch('w', '{sp}', wait => '1.5 s')" \
		-c "SELECT sum(idx_scan + seq_scan) FROM pg_stat_xact_user_tables WHERE relid = 'qml.jobs'::regclass" \
		-c "COMMIT"
}

# run_fetch OUT [payloads...]: a waiting fetch in the background, the
# payloads sent by qml_spoofer while it waits
run_fetch() {
	local out=$1 fpid payload
	shift
	waiting_fetch >"$tmp/$out" 2>&1 &
	fpid=$!
	poll 5 $db "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND wait_event = 'Extension' AND query LIKE '%wait =>%'" 1 >/dev/null
	for payload in "$@"; do
		psql -X -q -At -U qml_spoofer -d $db -c "SELECT pg_notify('qml', '$payload')" >>"$tmp/$out.notify" 2>&1
	done
	[ -n "${WAKE:-}" ] && q $db -c "SELECT qml.resume_queue('sp')" >/dev/null
	wait $fpid
	paste -sd' ' <"$tmp/$out"
}

before=$(state)
big=$(head -c 7999 /dev/zero | tr '\0' 'x')
# the first fetches after the setup may promote due jobs themselves
# (until the scheduler's pass): one not measured
run_fetch warm >/dev/null
quiet=$(run_fetch quiet)
check "a waiting fetch with nothing sent claims nothing" 0 "${quiet%% *}"
t1=$(now)
spoofed=$(run_fetch spoofed sp bogus-queue "" "$big")
t2=$(now)
quiet2=$(run_fetch quiet2)
check "NOTIFY qml with a queue's name, a bogus one, none, 7999 bytes, by a role with no rights: no error" \
	"" "$(grep -v '^$' "$tmp/spoofed.notify")"
check "the spoofed waiting fetch claimed as often as quiet ones, and nothing" "$quiet $quiet" "$spoofed $quiet2"
less_than 1.4 "$(elapsed "$t1" "$t2")" && ok "... and was not cut short ($(elapsed "$t1" "$t2") s)" ||
	fail "the spoofed fetch returned early" "$(elapsed "$t1" "$t2") s"
check "no state changed" "$before" "$(state)"
# the count tells: a commit that may have brought work (resuming the queue)
# does wake the fetch into one more claim
woken=$(WAKE=1 run_fetch woken)
check "a real wakeup costs one more claim" "${quiet%% *} $((${quiet##* } + 1))" "$woken"

dropdb_ $db
finish
