#!/usr/bin/env bash
# test/cli/migrate.sh: the "cli_migrate" suite. `qml migrate` creates the
# extension, updates a database on 1.0 to 1.1, says which it did (text and
# JSON), says when there is nothing to do, and refuses clearly, changing
# nothing, when it cannot: bad arguments (exit 2), no server or database
# (exit 3), a role that does not own the extension and an update the
# script refuses (exit 1).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QML_AUTO_MIGRATE
QML=${QML_BIN:-$root/client/qml}
make -s client/qml || exit 1

. "$root/test/cli/lib.sh"
is() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "expected '$2', got '$3'"; fi; }
version() { q -d "$1" -c "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'qml'), 'none')"; }
newdb() {
	q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" \
		-c "CREATE DATABASE $1" >/dev/null && { [ -z "${2:-}" ] || q -d "$1" -c "CREATE EXTENSION qml VERSION '$2'" >/dev/null; }
}
current=$(q -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'qml'")

echo "# an update, then nothing to do"
newdb qml_mig_old 1.0
q -d qml_mig_old -c "SELECT qml.enqueue('m', jsonb_build_array(g)) FROM generate_series(1, 10) g" >/dev/null
expect "qml migrate on 1.0" 0 "$QML" -d dbname=qml_mig_old migrate
is "says what it did" "qml updated from 1.0 to $current" "$out"
is "the database is on $current" "$current" "$(version qml_mig_old)"
is "its jobs are there" "10" "$(q -d qml_mig_old -c "SELECT count(*) FROM qml.jobs")"
expect "qml migrate again" 0 "$QML" -d dbname=qml_mig_old migrate
is "says there was nothing to do" "qml $current is already current" "$out"
expect "qml --json migrate with nothing to do" 0 "$QML" -d dbname=qml_mig_old --json migrate
is "JSON: not migrated" "false $current $current" \
	"$(q -d postgres -c "SELECT j->>'migrated', j->>'from', j->>'version' FROM (SELECT \$j\$$out\$j\$::jsonb j) x" -F ' ')"
newdb qml_mig_old 1.0
expect "qml --json migrate on 1.0" 0 "$QML" -d dbname=qml_mig_old --json migrate
is "JSON: migrated from 1.0" "true 1.0 $current" \
	"$(q -d postgres -c "SELECT j->>'migrated', j->>'from', j->>'version' FROM (SELECT \$j\$$out\$j\$::jsonb j) x" -F ' ')"

echo "# a database without qml"
newdb qml_mig_new
expect "qml migrate creates it" 0 "$QML" -d dbname=qml_mig_new migrate
is "says so" "qml $current created" "$out"
is "the database is on $current" "$current" "$(version qml_mig_new)"

echo "# bad input"
expect "an argument: exit 2" 2 "$QML" -d dbname=qml_mig_new migrate 1.1
has "unexpected argument" "says it is unexpected"
expect "an unknown option: exit 2" 2 "$QML" -d dbname=qml_mig_new migrate --to 1.1
expect "no server: exit 3" 3 "$QML" -d "postgresql://127.0.0.1:1/x?connect_timeout=2" migrate
expect "no such database: exit 3" 3 "$QML" -d dbname=qml_mig_nowhere migrate

echo "# an update that cannot run changes nothing"
q -d postgres -c "DO \$\$BEGIN CREATE ROLE qml_mig_user LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null
newdb qml_mig_old 1.0
expect "a role that does not own the extension: exit 1" 1 "$QML" -d "dbname=qml_mig_old user=qml_mig_user" migrate
is "says why" "qml: cannot update the qml extension: must be owner of extension qml" "$out"
is "still on 1.0" "1.0" "$(version qml_mig_old)"
# 1.0 took a retention of mixed signs; 1.1 refuses one, and so does the update
q -d qml_mig_old -c "SELECT qml.configure_queue('odd', retention => '1 month -1 day')" >/dev/null
expect "an update the script refuses: exit 1" 1 "$QML" -d dbname=qml_mig_old migrate
case "$out" in *"cannot update the qml extension: queue retention mixes positive and negative parts: 'odd'"*"hint: Set each with qml.configure_queue"*)
	ok "says why and what to do" ;; *) bad "says why and what to do" "$out" ;; esac
is "still on 1.0, the queue as it was" "1.0 1 mon -1 days" \
	"$(version qml_mig_old) $(q -d qml_mig_old -c "SELECT retention FROM qml.queues WHERE name = 'odd'")"
q -d qml_mig_old -c "SELECT qml.configure_queue('odd', retention => '29 days')" >/dev/null
expect "once fixed, it updates" 0 "$QML" -d dbname=qml_mig_old migrate
is "to $current" "qml updated from 1.0 to $current" "$out"

for db in qml_mig_old qml_mig_new; do
	q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
