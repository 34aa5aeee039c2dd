#!/usr/bin/env bash
# test/sql_edition/build.sh: sql_edition/build.py refuses what would let the
# two editions drift apart, and writes the edition make builds from the
# committed scripts. No server needed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# refuses WHAT LATER [SCHEMA]: build.py with LATER as its later script (and
# SCHEMA, qml--1.1.sql by default, as its script) must fail and say WHAT
refuses() {
	local what=$1 later=$2 schema=${3:-qml--1.1.sql}
	if python3 sql_edition/build.py "$schema" "$tmp/out.sql" "$later" \
		2>"$tmp/err"; then
		echo "FAIL: build.py accepted a later script where $what"
		failed=1
	elif ! grep -q "another signature" "$tmp/err"; then
		echo "FAIL: build.py refused ($what) but said: $(cat "$tmp/err")"
		failed=1
	else
		echo "ok: refused, $what"
	fi
}

# the edition is generated (make sql-edition, not committed), and a
# `make clean` removes it: made here, so that this suite needs no other's
make -s sql-edition || failed=1
python3 sql_edition/build.py qml--1.1.sql "$tmp/out.sql" qml--1.3.sql || failed=1
if cmp -s "$tmp/out.sql" qml-sql--1.1.sql; then
	echo "ok: make's qml-sql--1.1.sql is what build.py writes from 1.1 and 1.3"
else
	echo "FAIL: make's qml-sql--1.1.sql differs from what build.py writes from 1.1 and 1.3"
	failed=1
fi

# a default changed on a later line of the statement (the first line alone
# was compared once)
sed "s/for_queue text DEFAULT NULL)/for_queue text DEFAULT 'x')/" qml--1.3.sql \
	>"$tmp/default.sql"
refuses "qml.throughput's last default changed" "$tmp/default.sql"
# a column of RETURNS TABLE renamed
sed 's/RETURNS TABLE (bucket timestamptz, queue text, succeeded bigint, failed bigint)/RETURNS TABLE (bucket timestamptz, queue text, succeeded bigint, dead bigint)/' \
	qml--1.3.sql >"$tmp/column.sql"
if cmp -s qml--1.3.sql "$tmp/column.sql"; then
	echo "FAIL: the test could not rename a column of qml.throughput"; failed=1
else
	refuses "a result column of qml.throughput renamed" "$tmp/column.sql"
fi
# an argument's type changed on the first line
sed 's/^CREATE FUNCTION qml.run_recurring(name text)/CREATE FUNCTION qml.run_recurring(name varchar)/' \
	qml--1.3.sql >"$tmp/type.sql"
refuses "qml.run_recurring's argument type changed" "$tmp/type.sql"
# a default's string changed in case only: keywords are compared in any
# case, the text of a literal exactly
mkdir "$tmp/case"
sed "s/for_queue text DEFAULT NULL)/for_queue text DEFAULT 'Q')/" qml--1.1.sql \
	>"$tmp/case/qml--1.1.sql"
sed "s/for_queue text DEFAULT NULL)/for_queue text default 'q')/" qml--1.3.sql \
	>"$tmp/case/later.sql"
if cmp -s qml--1.1.sql "$tmp/case/qml--1.1.sql" || cmp -s qml--1.3.sql "$tmp/case/later.sql"; then
	echo "FAIL: the test could not change qml.throughput's default"; failed=1
else
	refuses "qml.throughput's default 'Q' made 'q'" "$tmp/case/later.sql" "$tmp/case/qml--1.1.sql"
fi
# a result column named like an attribute (cost, rows ...) at the start of
# a line is still in the signature: a change after it is seen
mkdir "$tmp/attr"
sed 's/succeeded bigint, failed bigint)/succeeded bigint,\n\t\t\t\t   cost bigint, failed bigint)/' \
	qml--1.1.sql >"$tmp/attr/qml--1.1.sql"
sed 's/succeeded bigint, failed bigint)/succeeded bigint,\n\t\t\t\t   cost bigint, dead bigint)/' \
	qml--1.3.sql >"$tmp/attr/later.sql"
if ! grep -q '^[[:space:]]*cost bigint, failed' "$tmp/attr/qml--1.1.sql" ||
	! grep -q '^[[:space:]]*cost bigint, dead' "$tmp/attr/later.sql"; then
	echo "FAIL: the test could not add a column cost to qml.throughput"; failed=1
else
	refuses "a result column after one named cost renamed" "$tmp/attr/later.sql" "$tmp/attr/qml--1.1.sql"
fi
exit $failed
