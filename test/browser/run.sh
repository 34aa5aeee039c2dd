#!/usr/bin/env bash
# test/browser/run.sh: the "browser" suite. The dashboard's page in a real
# browser: Debian's chromium driven by playwright-core (test.mjs), against
# `qml dashboard` on a free port over a database of its own
# (qml_browser_test). The cluster is up (scripts/test.sh) and PGHOST/PGPORT/
# PGUSER point at it. Screenshots go to test/browser/output/ (not
# committed). Exits non-zero if a check failed.
#
#   test/browser/run.sh --screenshot   instead: demo data and docs/dashboard.md's
#                                      docs/dashboard.png
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QML_DASHBOARD_TOKEN QML_DASHBOARD_PUBLIC_URL

make -s client/qml || exit 1
if [ ! -d test/browser/node_modules/playwright-core ]; then
	(cd test/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
		echo "FAIL playwright-core is not installed (scripts/install-deps.sh installs it)"
		exit 1
	}
fi
chromium=${CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}
[ -x "$chromium" ] || { echo "FAIL no chromium (scripts/install-deps.sh installs it)"; exit 1; }

db=qml_browser_test
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION qml" || exit 1

mkdir -p test/browser/output
export QML="${QML_BIN:-$root/client/qml}" CHROMIUM="$chromium" PGDATABASE=$db
export QML_TEST_DB_URL="postgresql:///$db?host=$PGHOST&port=$PGPORT&user=${PGUSER:-postgres}"
export QML_TEST_OUTPUT="$root/test/browser/output"
if [ "${1:-}" = --screenshot ]; then
	mkdir -p docs
	node test/browser/screenshot.mjs "$root/docs/dashboard.png"
else
	node test/browser/test.mjs
fi
rc=$?
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
exit $rc
