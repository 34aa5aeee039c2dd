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
# out of memory part way through a batch: all of it or none (memory_oom_test.c)
echo "# memory store out of memory"
out=$("$bin/memory_oom_test" 2>&1) || { echo "$out" | grep -v '^ok '; echo "# memory store out of memory FAILED"; failed=1; }
echo "$out" | tail -1

# the memory store through the qml command, over its capacity: a clear
# error and exit 1 (docs/cli.md), and the jobs accepted before it are kept
# (its snapshot) and all run
echo "# memory store over its capacity (qml command)"
murl="memory:$rdir/mem.snapshot?capacity=2"
printf '#!/bin/sh\necho "$QML_JOB_ID" >>"%s"\n' "$rdir/ran" >"$rdir/job.sh"
chmod +x "$rdir/job.sh"
client/qml -d "$murl" enqueue m '[1]' >/dev/null && client/qml -d "$murl" enqueue m '[2]' >/dev/null ||
	{ echo "# memory: enqueue under the capacity FAILED"; failed=1; }
out=$(client/qml -d "$murl" enqueue m '[3]' 2>&1)
rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "memory store is full" ||
	{ echo "# memory: over the capacity FAILED: want exit 1 \"memory store is full\", got $rc: $out"; failed=1; }
client/qml -d "$murl" worker --exec m="$rdir/job.sh" >/dev/null 2>&1 &
mpid=$!
for i in $(seq 1 150); do
	[ "$(cat "$rdir/ran" 2>/dev/null | wc -l)" -ge 2 ] && break
	sleep 0.2
done
kill -TERM $mpid
wait $mpid
got=$(client/qml -d "$murl" --json stats | python3 -c '
import json, sys
r = [q for q in json.load(sys.stdin) if q["queue"] == "default"][0]
print(r["succeeded"], r["enqueued"])')
[ "$got" = "2 0" ] && [ "$(wc -l <"$rdir/ran")" = 2 ] ||
	{ echo "# memory: the 2 accepted jobs did not both run once: succeeded/enqueued $got"; failed=1; }
[ $failed = 0 ] && echo "# memory store over its capacity: exit 1, \"store is full\", both accepted jobs ran"
exit $failed
