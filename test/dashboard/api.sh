#!/usr/bin/env bash
# test/dashboard/api.sh: the "dashboard_api" suite. `qml dashboard` against
# the running cluster (PGHOST/PGPORT/PGUSER from scripts/env.sh): every
# route, paging across 10,000 jobs, filters, bad input, tokens, SQL
# injection in every parameter, limits, the WebSocket, the one-connection
# property, and the database going away under it (api_test.py says what).
#
# A database of its own, created afresh: qml_dashboard_test. The
# dashboards listen on 127.0.0.1, ports derived from the cluster's.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QML_DASHBOARD_TOKEN QML_DASHBOARD_PUBLIC_URL
make -s client/qml || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS qml_dashboard_test WITH (FORCE)" \
	-c "CREATE DATABASE qml_dashboard_test" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d qml_dashboard_test -c "CREATE EXTENSION qml" || exit 1
exec python3 test/dashboard/api_test.py
