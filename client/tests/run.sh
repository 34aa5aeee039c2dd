#!/usr/bin/env bash
# client/tests/run.sh: the "client" suite. libqml's C tests against the
# running cluster (PGHOST/PGPORT/PGUSER from scripts/env.sh, or any libpq
# environment), then the same tests, shortened, under valgrind.
# QML_CLIENT_TESTS and QML_NO_VALGRIND: make check-asan's sanitized run.
#
# Databases of its own, created afresh: qml_client_test (the API and the
# runtime), qml_client_noext (never gets the extension), qml_client_old
# (recurring jobs taken away), qml_client_sqled (the pure-SQL edition).
# Run from anywhere; needs `make client`.
set -uo pipefail
cd "$(dirname "$0")/../.."
unset DATABASE_URL
export PGDATABASE=qml_client_test

for db in qml_client_test qml_client_noext qml_client_old; do
	psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
		-c "CREATE DATABASE $db" || exit 1
done
make -s client || exit 1
# the pure-SQL edition, for the runtime's maintainer lock (runtime_test.c)
test/sql_edition/install.sh qml_client_sqled qml_sqled_owner || exit 1
export QML_TEST_SQLED_URL="postgresql:///qml_client_sqled?user=qml_sqled_owner"

failed=0
run() {
	local name=$1; shift
	echo "# $name"
	local out
	out=$("$@" 2>&1)
	local rc=$?
	# the passing lines are noise; keep failures, diagnostics and the plan
	echo "$out" | grep -v '^ok ' || true
	if [ $rc -ne 0 ]; then
		echo "# $name: FAILED (exit $rc)"
		failed=1
	fi
}

# QML_CLIENT_TESTS: where the test binaries are (make check-asan's build)
bin=${QML_CLIENT_TESTS:-client/tests}
run unit "$bin/unit_test"
run redis_url "$bin/redis_url_test"
run api "$bin/api_test"
run runtime "$bin/runtime_test"
run read "$bin/read_test"

# valgrind: leaks and memory errors in the library, its threads included
if [ -n "${QML_NO_VALGRIND:-}" ]; then
	echo "# valgrind: skipped (QML_NO_VALGRIND)"
elif command -v valgrind >/dev/null; then
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS qml_client_test WITH (FORCE)" -c "CREATE DATABASE qml_client_test" \
		-c "DROP DATABASE IF EXISTS qml_client_old WITH (FORCE)" -c "CREATE DATABASE qml_client_old"
	vg=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible
		--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99)
	for t in unit api runtime read; do
		run "valgrind $t" env QML_TEST_QUICK=1 "${vg[@]}" client/tests/${t}_test
	done
else
	echo "# valgrind not installed: skipped"
fi
exit $failed
