#!/usr/bin/env bash
# test/scheduler/prepared.sh: two-phase commit and the workers that wait
# (src/prepared_xact.c). A fetch waiting in the server and a LISTENer are
# woken by the COMMIT PREPARED of an enqueue, run from another session; a
# claim whose session ended is rescued once committed; statistics count
# what was committed; a transaction left
# prepared across a server restart still gets its urgent job handed out
# next in a busy queue once it is committed.
. "$(dirname "$0")/lib.sh"
db=qml_sched_prepared
newdb $db || exit 1
listen=$(listen_bin) || exit 1
tmp=$(mktemp -d)
trap 'rollback_prepared; rm -rf "$tmp" "$listen"' EXIT

# leaves no transaction of ours prepared, whatever failed
rollback_prepared() {
	for gid in qml_pw qml_ps qml_pc qml_pm qml_pr; do
		q $db -c "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true
	done
}

# --- a fetch waiting in the server, and a LISTENer, woken by COMMIT PREPARED
"$listen" $db pw 20000 >"$tmp/listen" &
lpid=$!
for _ in $(seq 100); do grep -q ready "$tmp/listen" && break; sleep 0.01; done
# come back empty once, so that an enqueue owes listeners a NOTIFY
q $db -c "SELECT count(*) FROM qml.fetch('w', '{pw}')" >/dev/null
(q $db -F ' ' -c "SELECT method, extract(epoch FROM clock_timestamp()) FROM qml.fetch('w', '{pw}', wait => '20 s')" >"$tmp/waited" 2>&1) &
fpid=$!
poll 5 $db "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND wait_event = 'Extension' AND query LIKE '%wait =>%'" 1 >/dev/null
check "an enqueue while a worker waits can be prepared" "no error" \
	"$(sqlstate $db "BEGIN; SELECT qml.enqueue('prepared', queue => 'pw'); PREPARE TRANSACTION 'qml_pw'")"
sleep 0.3
t0=$(now)
q $db -c "COMMIT PREPARED 'qml_pw'" >/dev/null
wait $fpid
wait $lpid
read -r method t_fetch <"$tmp/waited"
if [ "${method:-}" = prepared ] && less_than "$(elapsed "$t0" "$t_fetch")" 2; then
	ok "the waiting fetch got the job at once (in $(elapsed "$t0" "$t_fetch") s)"
else
	fail "the waiting fetch got the job at once" "$(cat "$tmp/waited")"
fi
t_note=$(tail -1 "$tmp/listen")
[ "$t_note" != timeout ] && less_than "$(elapsed "$t0" "$t_note")" 2 &&
	ok "the listener was notified at COMMIT PREPARED" || fail "the listener was notified" "$(cat "$tmp/listen")"
rollback_prepared

# --- a claim prepared with a session lease, by a session that then ends:
# once COMMIT PREPARED makes the claim visible, the job is rescued at once
# (the scheduler skipped it while it was locked), not after its 1 h lease
sid=$(q $db -c "SELECT qml.enqueue('claimed', queue => 'ps')")
q $db -c "BEGIN" -c "SELECT id FROM qml.fetch('w', '{ps}', lease => '1 hour', session_lease => true)" -c "PREPARE TRANSACTION 'qml_ps'" >/dev/null
sleep 1.5
q $db -c "COMMIT PREPARED 'qml_ps'" >/dev/null
check "a committed claim of an ended session is rescued at once" "enqueued / session of worker w ended" \
	"$(poll 5 $db "SELECT state || ' / ' || last_error FROM qml.jobs WHERE id = $sid" "enqueued / session of worker w ended")"

# --- statistics: completions prepared and committed count, rolled back
# ones do not; a maintenance pass that rolled counts up cannot be prepared
q $db -c "SELECT count(*) FROM qml.enqueue_batch('[{\"method\": \"s\", \"queue\": \"pstat\"}, {\"method\": \"s\", \"queue\": \"pstat\"}, {\"method\": \"s\", \"queue\": \"pstat\"}, {\"method\": \"s\", \"queue\": \"pstat\"}]')" >/dev/null
q $db -c "SELECT count(*) FROM qml.fetch('w', '{pstat}', 4, session_lease => false)" >/dev/null
q $db -c "BEGIN" -c "SELECT count(*) FROM qml.complete_batch((SELECT array_agg(id ORDER BY id) FROM qml.jobs WHERE queue = 'pstat' AND id % 2 = 0), 'w')" \
	-c "PREPARE TRANSACTION 'qml_pc'" -c "COMMIT PREPARED 'qml_pc'" >/dev/null
q $db -c "BEGIN" -c "SELECT count(*) FROM qml.complete_batch((SELECT array_agg(id ORDER BY id) FROM qml.jobs WHERE queue = 'pstat' AND id % 2 = 1), 'w')" \
	-c "PREPARE TRANSACTION 'qml_pc'" -c "ROLLBACK PREPARED 'qml_pc'" >/dev/null
check "4 enqueued, 2 completions committed prepared, 2 rolled back: counted" "4 2" \
	"$(poll 5 $db "SELECT sum(enqueued) || ' ' || sum(succeeded) FROM qml.throughput_minutes WHERE queue = 'pstat'" "4 2")"
# counts of a commit wait in shared memory until a pass rolls them up: the
# scheduler's may come first (once a second), so try a few times
got=
for _ in 1 2 3 4 5; do
	q $db -c "SELECT qml.enqueue('s', queue => 'pstat')" >/dev/null
	got=$(sqlstate $db "BEGIN; SELECT qml.maintain(); PREPARE TRANSACTION 'qml_pm'")
	[ "$got" = "no error" ] && q $db -c "ROLLBACK PREPARED 'qml_pm'" >/dev/null && continue
	break
done
check "a pass that rolled counts up cannot be prepared" 0A000 "$got"

# --- prepared across a restart: 300 jobs wait, an urgent one is prepared
q $db -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'job' || g, 'queue', 'pr') ORDER BY g) FROM generate_series(1, 300) g))" >/dev/null
q $db -c "BEGIN" -c "SELECT qml.enqueue('urgent', queue => 'pr', priority => 10)" -c "PREPARE TRANSACTION 'qml_pr'" >/dev/null
"$here/../../scripts/cluster.sh" restart fast || { fail "restart"; rollback_prepared; finish; }
got=$(q $db -c "SELECT method FROM qml.fetch('w', '{pr}')" -c "SELECT method FROM qml.fetch('w', '{pr}')" \
	-c "COMMIT PREPARED 'qml_pr'" -c "SELECT method FROM qml.fetch('w', '{pr}')" | paste -sd' ')
check "after a restart, the job committed with COMMIT PREPARED comes next" "job1 job2 urgent" "$got"
rollback_prepared

dropdb_ $db
finish
