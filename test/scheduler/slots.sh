#!/usr/bin/env bash
# test/scheduler/slots.sh: background worker slots. On a cluster of its
# own (max_worker_processes = 8, the default): 50 databases of which 2 use
# qml hold 3 qml background workers (launcher + 2), found one probe at a
# time, also after a restart; parallel query gets its workers; DROP
# EXTENSION frees its slot at once; a CREATE EXTENSION that is rolled back
# (or to a savepoint) starts nothing and one that is prepared is refused;
# one that commits is served; DROP DATABASE and ALTER DATABASE RENAME
# leave no scheduler looping. Then with max_worker_processes = 4: the
# database that gets no slot is logged once with the setting to raise,
# shown by qml.scheduler_slot_wait_since() and `qml status`, and served as
# soon as a slot is free.
base=${QML_PGPORT:-5499}
# a cluster of our own, beside the suites' one (a private socket directory)
export QML_PGPORT=$((base + 1000)) QML_PGDIR=/tmp/qml-pg-slots-$((base + 1000))
. "$(dirname "$0")/lib.sh"
root=$(cd "$here/../.." && pwd)
QML=${QML_BIN:-$root/client/qml}
cluster() { "$root/scripts/cluster.sh" "$@"; }
cluster up "shared_preload_libraries = 'qml'
max_worker_processes = 8
max_prepared_transactions = 2
log_min_messages = debug1
# 100 CREATE and DROP DATABASE: durability is not what this tests
fsync = off
full_page_writes = off" || exit 1
trap 'cluster down' EXIT
make -s -C "$root" client/qml || exit 1

workers_sql="SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'qml%'"
schedulers_sql="SELECT coalesce(string_agg(datname, ' ' ORDER BY datname), '') FROM pg_stat_activity WHERE backend_type = 'qml scheduler'"
# probes LOG-LINE QML-DBS: from the log since that line, how many schedulers
# left a database without qml, and the most that were probing at once
# (started by the postmaster, in a database not in QML-DBS, not yet left)
probes() {
	log_since "$1" | awk -v keep=" $2 " '
		/starting background worker process "qml scheduler for database / {
			d = $0; sub(/.*for database /, "", d); sub(/".*/, "", d)
			if (index(keep, " " d " ") == 0 && ++active > most) most = active }
		/extension qml is not installed in database .*; leaving/ { left++; active-- }
		END { print left + 0, most + 0 }'
}
# settle SECONDS EXPECTED: samples the schedulers every 0.1 s until they
# have been EXPECTED for 2 s in a row; prints "seconds-to-settle
# most-qml-workers-seen most-probes-seen last-set"
settle() {
	local t0 until stable=0 most=0 probes=0 set n p
	t0=$(now); until=$(($(date +%s) + $1))
	while [ "$(date +%s)" -lt "$until" ]; do
		read -r n set <<<"$(q postgres -c "SELECT ($workers_sql), ($schedulers_sql)" -F ' ')"
		p=$(for d in $set; do echo "$d"; done | grep -cvxF -f <(echo "$2" | tr ' ' '\n'))
		[ "$n" -gt "$most" ] && most=$n
		[ "$p" -gt "$probes" ] && probes=$p
		if [ "$set" = "$2" ]; then stable=$((stable + 1)); else stable=0; fi
		[ "$stable" -ge 20 ] && break
		sleep 0.1
	done
	echo "$(elapsed "$t0" "$(now)") $most $probes $set"
}

# --- 50 databases made while the launcher runs, qml in 2
log0=$(log_lines)
t0=$(now)
for i in $(seq 1 50); do echo "CREATE DATABASE qml_many_$i;"; done | psql -X -q -d postgres || exit 1
echo "     (50 databases made in $(elapsed "$t0" "$(now)") s)"
q qml_many_7 -c "CREATE EXTENSION qml" >/dev/null
q qml_many_31 -c "CREATE EXTENSION qml" >/dev/null
read -r secs most probes set <<<"$(settle 60 "qml_many_31 qml_many_7")"
check "50 databases, qml in 2: schedulers in those 2 only" "qml_many_31 qml_many_7" "$set"
check "... 3 qml background workers (launcher + 2)" 3 "$(q postgres -c "$workers_sql")"
# (polled, up to 30 s: the settle above ends after 2 s with no change, and
# a loaded machine may pause that long between two probes)
for _ in $(seq 1 300); do
	left=$(log_since "$log0" | grep -c 'extension qml is not installed in database "qml_many_.*"; leaving')
	[ "$left" -ge 48 ] && break
	sleep 0.1
done
# 48, or up to 50 when qml_many_7 or 31 was probed before its CREATE
# EXTENSION: more is a database probed again (a probe's finding lost)
[ "$left" -ge 48 ] && [ "$left" -le 50 ] &&
	ok "... the 48 new databases without qml were probed and left, once each ($left probes left)" ||
	fail "... the 48 new databases without qml were probed and left" "$left probes left"

w=$(q qml_many_7 -c "SET max_parallel_workers_per_gather = 2" -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
	-c "SET min_parallel_table_scan_size = 0" -c "CREATE TABLE big AS SELECT g FROM generate_series(1, 200000) g" \
	-c "EXPLAIN (ANALYZE, COSTS OFF) SELECT count(*) FROM big" | sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p')
check "parallel query gets the workers it planned" 2 "${w:-none}"

# --- a restart: the launcher probes all 51 databases again
log0=$(log_lines)
t0=$(now)
cluster restart fast || { fail "restart"; finish; }
read -r secs most probes set <<<"$(settle 60 "qml_many_31 qml_many_7")"
check "after a restart: schedulers in the 2 databases only" "qml_many_31 qml_many_7" "$set"
read -r left at_once <<<"$(probes "$log0" "qml_many_31 qml_many_7")"
check "... 49 databases probed again, one at a time" "49 1" "$left $at_once"
last=$(log_since "$log0" | grep 'extension qml is not installed in database .*; leaving' | tail -1 | cut -d' ' -f1,2)
first=$(log_since "$log0" | grep 'starting background worker process "qml scheduler for database' | head -1 | cut -d' ' -f1,2)
[ -n "$first" ] && [ -n "$last" ] && echo "     (51 databases probed in $(python3 -c "from datetime import datetime as d; f='%Y-%m-%d %H:%M:%S.%f'; print('%.3f' % (d.strptime('$last', f) - d.strptime('$first', f)).total_seconds())") s; most qml workers seen: $most)"

# --- DROP EXTENSION frees the slot at once
q qml_many_31 -c "DROP EXTENSION qml" >/dev/null
check "DROP EXTENSION stops its scheduler" "qml_many_7" "$(poll 5 postgres "$schedulers_sql" qml_many_7)"
check "... 2 qml background workers left" 2 "$(q postgres -c "$workers_sql")"

# --- CREATE EXTENSION: only one that commits starts a scheduler
q qml_many_40 -c "BEGIN" -c "CREATE EXTENSION qml" -c "ROLLBACK" >/dev/null
q qml_many_40 -c "BEGIN" -c "SAVEPOINT s" -c "CREATE EXTENSION qml" -c "ROLLBACK TO s" -c "COMMIT" >/dev/null
check "PREPARE TRANSACTION of a CREATE EXTENSION qml: 0A000" 0A000 \
	"$(sqlstate qml_many_40 "BEGIN; CREATE EXTENSION qml; PREPARE TRANSACTION 'qml_create'")"
check "... and nothing is prepared" 0 "$(q postgres -c "SELECT count(*) FROM pg_prepared_xacts")"
q qml_many_41 -c "CREATE EXTENSION qml" >/dev/null
check "a committed CREATE EXTENSION starts a scheduler; rolled back ones none" "qml_many_41 qml_many_7" \
	"$(poll 5 postgres "$schedulers_sql" "qml_many_41 qml_many_7")"
id=$(q qml_many_41 -c "SELECT qml.enqueue('due', run_at => clock_timestamp() + interval '1 s')")
check "... which serves the database" enqueued "$(poll 5 qml_many_41 "SELECT state FROM qml.jobs WHERE id = $id" enqueued)"
pid_sql="SELECT pid FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = 'qml_many_41'"
pid=$(q postgres -c "$pid_sql")
q qml_many_41 -c "BEGIN" -c "DROP EXTENSION qml" -c "CREATE EXTENSION qml" -c "COMMIT" >/dev/null
id=$(q qml_many_41 -c "SELECT qml.enqueue('due', run_at => clock_timestamp() + interval '1 s')")
check "DROP and CREATE EXTENSION in one transaction: the same scheduler serves on" "enqueued $pid" \
	"$(poll 5 qml_many_41 "SELECT state FROM qml.jobs WHERE id = $id" enqueued) $(q postgres -c "$pid_sql")"

# --- DROP DATABASE and RENAME of served databases leave nothing looping
log0=$(log_lines)
psql -X -q -d postgres -c "DROP DATABASE qml_many_41" && ok "DROP DATABASE of a served database (no FORCE)" ||
	fail "DROP DATABASE of a served database"
psql -X -q -d postgres -c "ALTER DATABASE qml_many_7 RENAME TO qml_renamed" && ok "ALTER DATABASE RENAME of a served database" ||
	fail "ALTER DATABASE RENAME of a served database"
check "... its scheduler comes back under the new name" qml_renamed "$(poll 20 postgres "$schedulers_sql" qml_renamed)"
# (autovacuum may log a FATAL for a database dropped under it: not ours)
check "... no scheduler failed to start since" "" \
	"$(log_since "$log0" | grep -E 'background worker "qml (scheduler|launcher)" \(PID [0-9]+\) exited with exit code [^0]' | head -2)"

# --- too few slots: max_worker_processes = 4 is PostgreSQL's logical
# replication launcher, qml's launcher and 2 schedulers
# (closed rather than dropped: each DROP DATABASE makes a checkpoint)
for i in $(seq 1 50); do echo "ALTER DATABASE qml_many_$i ALLOW_CONNECTIONS false;"; done |
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres 2>&1 | grep -v 'does not exist'
for d in qml_slot_b qml_slot_c; do psql -X -q -d postgres -c "CREATE DATABASE $d" && q $d -c "CREATE EXTENSION qml" >/dev/null; done
q postgres -c "ALTER SYSTEM SET max_worker_processes = 4" >/dev/null
log0=$(log_lines)
cluster restart fast || { fail "restart"; finish; }
waits="SELECT qml.scheduler_slot_wait_since() IS NOT NULL"
poll 20 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname <> 'postgres'" 2 >/dev/null
running=$(q postgres -c "$schedulers_sql")
check "3 databases, 2 slots: two schedulers run" 2 "$(echo "$running" | wc -w)"
waiting=$(for d in qml_renamed qml_slot_b qml_slot_c; do [[ " $running " == *" $d "* ]] || echo $d; done)
check "... qml.scheduler_slot_wait_since() shows the third ($waiting) waiting" t "$(poll 5 "${waiting:-postgres}" "$waits" t)"
out=$(PGDATABASE=$waiting "$QML" status 2>&1)
echo "$out" | grep -q "^scheduler   waiting for a background worker slot since .*: raise max_worker_processes" &&
	ok "... and qml status" || fail "... and qml status" "$(echo "$out" | grep scheduler)"
[ "$(PGDATABASE=$waiting "$QML" --json status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["scheduler"]["waiting_for_slot_since"] is not None)')" = True ] &&
	ok "... and qml --json status" || fail "... and qml --json status"
other=${running%% *}
check "... a running one is not waiting" f "$(q $other -c "$waits")"
# retries come 1, 3, 7 s after the first try: let two of them fail
sleep 4
check "the missing slot is logged once, with the setting to raise" 1 \
	"$(log_since "$log0" | grep -c 'qml could not start a scheduler for database .*: no background worker slot is free')"
check "... naming max_worker_processes" 1 "$(log_since "$log0" | grep -c 'HINT:  Raise max_worker_processes (now 4)')"
q $other -c "DROP EXTENSION qml" >/dev/null
check "a slot freed: the waiting database gets its scheduler at once" 1 \
	"$(poll 3 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$waiting'" 1)"
check "... and waits no more" f "$(q $waiting -c "$waits")"
echo "$(PGDATABASE=$waiting "$QML" status 2>&1)" | grep -q "^scheduler   running for this database" &&
	ok "... qml status says it runs" || fail "... qml status says it runs"
finish
