#!/usr/bin/env bash
# client/tests/conformance.sh: the "conformance" suite. The same test
# program (conformance_test.c) against every storage backend: PostgreSQL
# (the test cluster, a database of its own), the memory store, Redis on a
# throwaway server and on a throwaway 3-master Redis Cluster (ports
# QML_CONFORMANCE_REDIS_PORT, default 6626, to +3; skipped with a note when
# redis-server is missing), and any URL in QML_CONFORMANCE_URLS (space
# separated).
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/redis.sh
rport=${QML_CONFORMANCE_REDIS_PORT:-6626}
rdir=$(mktemp -d /tmp/qml-conformance-redis.XXXXXX)
trap 'redis_stop $rport $((rport + 1)) $((rport + 2)) $((rport + 3)); rm -rf "$rdir"' EXIT
redis_urls=
if command -v redis-server >/dev/null; then
	redis_start "$rport" "$rdir/single" >/dev/null &&
		redis_urls="redis://127.0.0.1:$rport/0"
	redis_cluster "$rdir/cluster" $((rport + 1)) $((rport + 2)) $((rport + 3)) &&
		redis_urls+=" redis+cluster://127.0.0.1:$((rport + 1)),127.0.0.1:$((rport + 2))"
else
	echo "# no redis-server (scripts/install-deps.sh): the Redis store is not checked"
fi
unset DATABASE_URL
export PGDATABASE=qml_conformance
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS qml_conformance WITH (FORCE)" \
	-c "CREATE DATABASE qml_conformance" || exit 1
make -s client || exit 1
# QML_CLIENT_TESTS: where the test binaries are (make check-asan's build)
bin=${QML_CLIENT_TESTS:-client/tests}

failed=0
for url in postgresql memory: $redis_urls ${QML_CONFORMANCE_URLS:-}; do
	echo "# conformance: $url"
	arg=$url
	[ "$url" = postgresql ] && arg=   # the PG* environment of the test cluster
	out=$("$bin/conformance_test" $arg 2>&1)
	rc=$?
	echo "$out" | grep -v '^ok '
	[ $rc -eq 0 ] || { echo "# conformance: $url FAILED (exit $rc)"; failed=1; }
done
# what only the memory store has: URL, capacity, snapshot, lock, retention
echo "# memory store"
out=$("$bin/memory_test" 2>&1) || { echo "$out" | grep -v '^ok '; echo "# memory store FAILED"; failed=1; }
echo "$out" | tail -1
exit $failed
