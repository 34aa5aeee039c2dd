#!/usr/bin/env bash
# test/docs/error_table.sh: docs/errors.md's error table matches the code. The
# SQLSTATEs qml raises (errcode() in src/*.c, RAISE ... ERRCODE in
# qml--1.1.sql, and those PostgreSQL raises for qml's own declarations) are
# the ones the table lists, both ways; and each row the API can be made to
# raise is raised here by a statement and checked.
. "$(dirname "$0")/../scheduler/lib.sh"
root=$(cd "$here/../.." && pwd)
errcodes=$(pg_config --sharedir)/errcodes.txt
[ -r "$errcodes" ] || { echo "no $errcodes"; exit 1; }

# the table: every `XXXXX` in the rows of the generated table
readme=$(awk '/^<!-- error table/ { on = 1; next } /^<!-- end of the generated error table/ { on = 0 } on && /^\| `/' "$root/docs/errors.md" |
	grep -o '`[0-9A-Z]\{5\}`' | tr -d '`' | sort -u)

# the code: ERRCODE_ macros and condition names, through errcodes.txt
macro_code() { awk -v m="$1" '$3 == m { print $1; exit }' "$errcodes"; }
name_code() { awk -v n="$1" '$4 == n { print $1; exit }' "$errcodes"; }
code=$(
	for m in $(grep -ho 'errcode(ERRCODE_[A-Z0-9_]*)' "$root"/src/*.c | sed 's/errcode(\(.*\))/\1/' | sort -u); do
		c=$(macro_code "$m"); [ -n "$c" ] && echo "$c" || echo "unknown:$m"
	done
	for n in $(grep -o "ERRCODE = '[a-z_0-9A-Z]*'" "$root/qml--1.1.sql" | sed "s/ERRCODE = '\(.*\)'/\1/" | sort -u); do
		case $n in [0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z]) echo "$n" ;;
		*) c=$(name_code "$n"); [ -n "$c" ] && echo "$c" || echo "unknown:$n" ;; esac
	done
	# what PostgreSQL raises for qml's own declarations
	grep -q 'CHECK (' "$root/qml--1.1.sql" && echo 23514            # a table's CHECK
	grep -q 'PreventCommandIfReadOnly' "$root"/src/*.c && echo 25006  # writes refused read-only
	grep -q 'REVOKE EXECUTE ON ALL FUNCTIONS' "$root/qml--1.1.sql" && echo 42501  # no grant
	grep -q 'arguments jsonb' "$root/qml--1.1.sql" && echo 22P02    # jsonb input
	# ... and for arguments it cannot read before qml sees them
	grep -q 'arguments jsonb' "$root/qml--1.1.sql" && printf "%s\n" 22P05 54001  # \u0000, nesting
	grep -q 'run_at timestamptz' "$root/qml--1.1.sql" && printf "%s\n" 22007 22008  # timestamps
	grep -q 'lease interval' "$root/qml--1.1.sql" && echo 22015       # interval fields
	grep -q 'method text' "$root/qml--1.1.sql" && echo 22021          # NUL, bad UTF-8
	grep -q 'role regrole' "$root/qml--1.1.sql" && echo 42704         # no such role
	grep -q 'CREATE FUNCTION qml\.' "$root/qml--1.1.sql" && echo 42883  # no such signature
	true
) 
code=$(echo "$code" | sort -u)

missing=$(comm -13 <(echo "$readme") <(echo "$code") | tr '\n' ' ')
extra=$(comm -23 <(echo "$readme") <(echo "$code") | tr '\n' ' ')
check "every SQLSTATE the code raises is in docs/errors.md's table" "" "$missing"
check "every SQLSTATE in docs/errors.md's table is raised by the code" "" "$extra"

# each row, raised
db=qml_error_table
newdb $db || exit 1
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS qml_no_grants" -c "CREATE ROLE qml_no_grants" >/dev/null
declare -A raise=(
	[22004]="SELECT qml.enqueue(NULL)"
	[22023]="SELECT qml.enqueue('m', run_at => 'infinity')"
	[22001]="SELECT qml.enqueue('m', unique_key => repeat('k', 501))"
	[22P02]="SELECT qml.enqueue('m', 'not json')"
	[P0002]="SELECT qml.delete(123456789)"
	[23505]="SELECT qml.add_recurring('r', '@daily', 'm'); SELECT qml.add_recurring('r', '@daily', 'm')"
	[23514]="INSERT INTO qml.queues (name, retention) VALUES ('q', '10000 years')"
	[54000]="SELECT * FROM qml.throughput('1 second', '100 days')"
	[42501]="SET ROLE qml_no_grants; SELECT qml.enqueue('m')"
	[25006]="BEGIN READ ONLY; SELECT qml.enqueue('m')"
	[0A000]="BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM qml.fetch('w', wait => '1 second')"
	[22P05]="SELECT qml.enqueue('m', '\"\\u0000\"')"
	[54001]="SELECT qml.enqueue('m', (repeat('[', 1000000) || repeat(']', 1000000))::jsonb)"
	[22007]="SELECT qml.enqueue('m', run_at => 'next tuesday')"
	[22008]="SELECT qml.enqueue('m', run_at => '294277-01-01')"
	[22015]="SELECT * FROM qml.fetch('w', lease => '999999999999 hours')"
	[22021]="SELECT qml.enqueue(E'a\\x00b')"
	[42704]="SELECT qml.grant_producer('qml_no_such_role')"
	[42883]="SELECT qml.enqueue(42)"
	[428C9]="SELECT qml.enqueue('m'); UPDATE qml.jobs SET history = '\\x0301'"
)
# raised only when the extension's objects are broken, a counter wraps
# or a concurrent change meets a snapshot, or more prepared transactions
# are open than max_prepared_transactions allows: checked by the comparison above
internal="40001 22003 42P01 55000 53400"
for c in $readme; do
	if [ -n "${raise[$c]:-}" ]; then
		check "$c is raised as the table says" "$c" "$(sqlstate $db "${raise[$c]}")"
	elif [[ " $internal " != *" $c "* ]]; then
		fail "$c has a statement that raises it here"
	fi
done
check "... and nothing changed" "0 0" "$(q $db -c "SELECT (SELECT count(*) FROM qml.jobs), (SELECT count(*) FROM qml.queues)" | tr '|' ' ')"

psql -X -q -d postgres -c "DROP ROLE qml_no_grants" >/dev/null
dropdb_ $db
finish
