#!/usr/bin/env bash
# test/scheduler/databases.sh: one launcher, a scheduler per database,
# visible in pg_stat_activity; qml.databases reloads (a bad value is
# refused with a log line); a failing pass is logged once and retried; a
# database without the extension gets no scheduler until CREATE EXTENSION;
# DROP/CREATE EXTENSION, DROP DATABASE and CREATE DATABASE ... TEMPLATE work
# while the scheduler runs; SIGTERM stops a scheduler at once and the
# launcher starts a new one.
. "$(dirname "$0")/lib.sh"
a=qml_sched_db1
b=qml_sched_db2
c=qml_sched_noext
log0=$(log_lines)
newdb $a && newdb $b || exit 1
dropdb_ $c; psql -X -q -d postgres -c "CREATE DATABASE $c" || exit 1
wait_scheduler $a; wait_scheduler $b

sched() { q postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND application_name = 'qml scheduler' AND datname = '$1'"; }
check "one launcher" 1 "$(q postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml launcher' AND application_name = 'qml launcher'")"
check "a scheduler in each database with qml, none without" "1 1 0" \
	"$(sched $a) $(sched $b) $(poll 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$c'" 0)"

due() { q "$1" -c "SELECT qml.enqueue('due', run_at => clock_timestamp() + interval '${2:-1} s')"; }
ida=$(due $a); idb=$(due $b)
check "two databases served at once" "enqueued enqueued" \
	"$(poll 3 $a "SELECT state FROM qml.jobs WHERE id = $ida" enqueued) $(poll 3 $b "SELECT state FROM qml.jobs WHERE id = $idb" enqueued)"

# --- no extension: no scheduler; CREATE EXTENSION starts one at commit
q $c -c "CREATE EXTENSION qml" >/dev/null
id=$(due $c)
check "CREATE EXTENSION: served at once" enqueued "$(poll 3 $c "SELECT state FROM qml.jobs WHERE id = $id" enqueued)"

# --- DROP EXTENSION and CREATE EXTENSION while the scheduler runs
id=$(due $a 1)
q $a -c "DROP EXTENSION qml CASCADE" >/dev/null
sleep 1.5
q $a -c "CREATE EXTENSION qml" >/dev/null
id=$(due $a)
check "DROP/CREATE EXTENSION while running" enqueued "$(poll 3 $a "SELECT state FROM qml.jobs WHERE id = $id" enqueued)"

# --- a pass that fails is logged once, rolled back and retried
mark=$(log_lines)
q $a -c "ALTER TABLE qml.recurring RENAME TO recurring_away" >/dev/null
id=$(due $a)
sleep 2.5
check "a failing pass changes nothing" scheduled "$(q $a -c "SELECT state FROM qml.jobs WHERE id = $id")"
check "... and is logged once" 1 "$(log_since "$mark" | grep -c "qml scheduler pass in database \"$a\"")"
q $a -c "ALTER TABLE qml.recurring_away RENAME TO recurring" >/dev/null
check "... and retried until it passes" enqueued "$(poll 8 $a "SELECT state FROM qml.jobs WHERE id = $id" enqueued)"

# --- qml.databases on reload: leave a database, come back; bad values refused
q postgres -c "ALTER SYSTEM SET qml.databases = '!contrib_regression, !isolation_regression, !$b'" -c "SELECT pg_reload_conf()" >/dev/null
check "reload: a database left out loses its scheduler" 0 "$(poll 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$b'" 0)"
check "... the others keep theirs" 1 "$(sched $a)"
q postgres -c "ALTER SYSTEM RESET qml.databases" -c "SELECT pg_reload_conf()" >/dev/null
check "reload: it comes back" 1 "$(poll 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$b'" 1)"
# one session asks all along whether its database has a scheduler (which
# decides whether its job counts are kept): the answer it remembers goes
# when a scheduler leaves or comes (src/shmem.c)
live=$(q $b <<SQL
SELECT qml.stats_live();
\\! psql -X -q -d postgres -c "ALTER SYSTEM SET qml.databases = '!contrib_regression, !isolation_regression, !$b'" -c "SELECT pg_reload_conf()" >/dev/null
DO \$\$ BEGIN FOR i IN 1..100 LOOP EXIT WHEN NOT qml.stats_live(); PERFORM pg_sleep(0.1); END LOOP; END \$\$;
SELECT qml.stats_live();
\\! psql -X -q -d postgres -c "ALTER SYSTEM RESET qml.databases" -c "SELECT pg_reload_conf()" >/dev/null
DO \$\$ BEGIN FOR i IN 1..100 LOOP EXIT WHEN qml.stats_live(); PERFORM pg_sleep(0.1); END LOOP; END \$\$;
SELECT qml.stats_live();
SQL
)
check "a session sees its scheduler leave and come back" "t f t" "$(echo $live)"
check "ALTER SYSTEM refuses a bad list: 22023" 22023 "$(sqlstate postgres "ALTER SYSTEM SET qml.databases = 'a,,b'")"
check "... and a bad interval: 22023" 22023 "$(sqlstate postgres "ALTER SYSTEM SET qml.scheduler_interval = '-1'")"
conf=$(q postgres -c "SHOW data_directory")/postgresql.auto.conf
before=$(q postgres -c "SHOW qml.databases")
mark=$(log_lines)
cp "$conf" "$conf.qml-test"
echo "qml.databases = 'x,,y'" >>"$conf"
q postgres -c "SELECT pg_reload_conf()" >/dev/null
# the postmaster reads the file when it gets to the SIGHUP: wait for its
# log line (up to 10 s) before the file is put back, not a fixed 0.5 s
# after which a loaded machine may not have read it yet
refused=f
for _ in $(seq 100); do
	grep -q 'invalid value for parameter "qml.databases"' <(log_since "$mark") && { refused=t; break; }
	sleep 0.1
done
cp "$conf.qml-test" "$conf"; rm -f "$conf.qml-test"
q postgres -c "SELECT pg_reload_conf()" >/dev/null
[ $refused = t ] &&
	ok "a bad value at reload is refused with a log line" || fail "a bad value at reload is refused with a log line"
check "... and the old value kept" "$before" "$(q postgres -c "SHOW qml.databases")"
check "... with every scheduler still there" "1 1 1" "$(sched $a) $(sched $b) $(sched $c)"

# --- commands that need a database to themselves
t0=$(now)
psql -X -q -d postgres -c "DROP DATABASE $b" && ok "DROP DATABASE of a served database (no FORCE), $(elapsed "$t0" "$(now)") s" ||
	fail "DROP DATABASE of a served database"
psql -X -q -d postgres -c "CREATE DATABASE qml_sched_copy TEMPLATE $c" && ok "CREATE DATABASE ... TEMPLATE a served database" ||
	fail "CREATE DATABASE ... TEMPLATE a served database"
check "the template's scheduler comes back" 1 "$(poll 15 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$c'" 1)"
check "the copy is served" 1 "$(poll 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = 'qml_sched_copy'" 1)"

# --- SIGTERM: a scheduler stops at once, the launcher starts another;
#     a restarted launcher adopts the running schedulers
pid=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$a'")
# timed in the server (pg_terminate_backend waits for the exit), so that
# psql's start on a loaded machine is not counted; a scheduler that slept
# out its pass interval (1 s) before it looked at the signal fails the bound
read -r gone took < <(q postgres -F ' ' -c "SELECT pg_terminate_backend($pid, 5000), round(extract(epoch FROM clock_timestamp() - statement_timestamp()), 3)")
check "SIGTERM stops a scheduler within a second ($took s)" t "$([ "$gone" = t ] && less_than "$took" 1 && echo t || echo "f ($gone, $took s)")"
check "the launcher starts another" 1 "$(poll 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$a' AND pid <> $pid" 1)"
q postgres -c "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE backend_type = 'qml launcher'" >/dev/null
check "a new launcher" 1 "$(poll 10 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml launcher'" 1)"
sleep 1
check "no database gets two schedulers" 0 "$(q postgres -c "SELECT count(*) FROM (SELECT datname FROM pg_stat_activity WHERE backend_type = 'qml scheduler' GROUP BY datname HAVING count(*) > 1) x")"
id=$(due $a)
check "and the new scheduler serves" enqueued "$(poll 3 $a "SELECT state FROM qml.jobs WHERE id = $id" enqueued)"

# --- nothing crashed, and the schedulers said nothing but the SIGTERMs
log_since "$log0" | grep -Eq '(server process|background worker) .* was terminated by|terminating any other active server processes' &&
	fail "no crash in the log" || ok "no crash in the log"
# (the two SIGTERMs above log "terminating ..." and "exited with exit code 1",
# the failing pass its error)
noise=$(log_since "$log0" | grep 'qml scheduler\|qml launcher' | grep -v 'due to administrator command\|exited with exit code 1' |
	grep -v "qml scheduler pass in database \"$a\"")
[ -z "$noise" ] && ok "no other log lines from the launcher or schedulers" || fail "no other log lines from the launcher or schedulers" "$(echo "$noise" | head -3)"

dropdb_ $a; dropdb_ $c; dropdb_ qml_sched_copy
finish
