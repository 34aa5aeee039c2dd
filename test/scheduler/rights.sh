#!/usr/bin/env bash
# test/scheduler/rights.sh: the utility hook asks a database's scheduler to
# leave only for a command that passes PostgreSQL's permission checks. A
# role without the rights repeating DROP DATABASE, ALTER DATABASE ...
# RENAME / SET TABLESPACE or CREATE DATABASE ... TEMPLATE (each failing)
# leaves the scheduler where it is, with the same pid; the owner's and a
# superuser's commands still get it out of the way.
. "$(dirname "$0")/lib.sh"
db=qml_sched_rights
newdb $db || exit 1
wait_scheduler $db
pid() { q postgres -c "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$1'"; }
pid0=$(pid $db)
[ "$pid0" != 0 ] && ok "the scheduler runs" || fail "the scheduler runs"

psql -X -q -d postgres -c "SET client_min_messages = warning" \
	-c "DROP ROLE IF EXISTS qml_nobody" -c "DROP ROLE IF EXISTS qml_creator" \
	-c "DROP ROLE IF EXISTS qml_owner" -c "CREATE ROLE qml_nobody LOGIN" \
	-c "CREATE ROLE qml_creator LOGIN CREATEDB" -c "CREATE ROLE qml_owner LOGIN" >/dev/null || exit 1
as() { local role=$1; shift; PGUSER=$role sqlstate postgres "$1"; }

# each refused as PostgreSQL refuses it, twice in a row
for i in 1 2; do
	check "no rights: DROP DATABASE refused ($i)" 42501 "$(as qml_nobody "DROP DATABASE $db")"
	check "no rights: ALTER DATABASE RENAME refused ($i)" 42501 "$(as qml_nobody "ALTER DATABASE $db RENAME TO qml_sched_elsewhere")"
	check "no rights: ALTER DATABASE SET TABLESPACE refused ($i)" 42501 "$(as qml_nobody "ALTER DATABASE $db SET TABLESPACE pg_default")"
	check "no CREATEDB: CREATE DATABASE ... TEMPLATE refused ($i)" 42501 "$(as qml_nobody "CREATE DATABASE qml_sched_copy2 TEMPLATE $db")"
	check "CREATEDB, not the owner: ... TEMPLATE refused ($i)" 42501 "$(as qml_creator "CREATE DATABASE qml_sched_copy2 TEMPLATE $db")"
	check "CREATEDB, not the owner: RENAME refused ($i)" 42501 "$(as qml_creator "ALTER DATABASE $db RENAME TO qml_sched_elsewhere")"
	check "a superuser's DROP in a transaction block refused ($i)" 25001 \
		"$(sqlstate postgres "BEGIN; DROP DATABASE $db")"
done
# a scheduler asked to leave is gone within milliseconds (databases.sh):
# a second is ample for the change to show if there were one
sleep 1
check "... the scheduler stayed, same pid" "$pid0" "$(pid $db)"

# the owner without CREATEDB may drop but not rename: the rename leaves
# the scheduler where it is, the drop gets it out of the way
q postgres -c "ALTER DATABASE $db OWNER TO qml_owner" >/dev/null
check "owner without CREATEDB: RENAME refused" 42501 "$(as qml_owner "ALTER DATABASE $db RENAME TO qml_sched_elsewhere")"
sleep 1
check "... the scheduler stayed, same pid" "$pid0" "$(pid $db)"
check "the owner's DROP DATABASE works (no FORCE)" "no error" "$(as qml_owner "DROP DATABASE $db")"

# a superuser's too
newdb $db || exit 1
wait_scheduler $db
check "a superuser's DROP DATABASE works (no FORCE)" "no error" "$(sqlstate postgres "DROP DATABASE $db")"

psql -X -q -d postgres -c "DROP ROLE qml_nobody" -c "DROP ROLE qml_creator" -c "DROP ROLE qml_owner" >/dev/null
finish
