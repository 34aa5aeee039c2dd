#!/usr/bin/env bash
# test/examples/run.sh: the "examples" suite. Runs the worker examples of
# docs/workers.md (docs/examples/python/worker.py with psycopg 3, and
# docs/examples/node/worker.js with pg) against the running cluster
# (PGHOST/PGPORT/PGUSER from scripts/env.sh): jobs succeed with their
# result, fail as the handler decides, a long job's lease is renewed by its
# heartbeats, and SIGTERM mid-job releases the job (enqueued, no attempt
# counted) and the worker exits 0. Prints ok/FAIL per check.
#
# A database of its own, created afresh: qml_examples.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QUEUES
export PGDATABASE=qml_examples
tmp=$(mktemp -d /tmp/qml-examples.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS qml_examples WITH (FORCE)" -c "CREATE DATABASE qml_examples" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION qml" || exit 1

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
. "$root/test/lib/wait_sql.sh"

# example LANG COMMAND...: runs one example through its paces in queue ex_LANG
example() {
	local lang=$1 qu=ex_$1; shift
	echo "# $lang: $*"
	q -c "SELECT qml.enqueue('echo', jsonb_build_object('n', i), queue => '$qu') FROM generate_series(1, 3) i" \
		-c "SELECT qml.enqueue('sleep', '{\"seconds\": \"soon\"}', queue => '$qu', max_attempts => 1)" \
		-c "SELECT qml.enqueue('no_such_method', queue => '$qu', max_attempts => 1)" >/dev/null
	QUEUES=$qu "$@" >"$tmp/$lang.out" 2>"$tmp/$lang.err" &
	local wpid=$! r
	pids+=("$wpid")
	wait_sql "SELECT count(*) FROM qml.jobs WHERE queue = '$qu' AND state IN ('succeeded', 'failed')" 5 20 ||
		bad "$lang: the worker ran its jobs" "$(tail -3 "$tmp/$lang.err")"
	r=$(q -c "SELECT count(*) FROM qml.jobs WHERE queue = '$qu' AND method = 'echo' AND state = 'succeeded' AND result = arguments AND attempts = 1")
	[ "$r" = 3 ] && ok "$lang: jobs succeed, their result stored" || bad "$lang: jobs succeed" "$r of 3"
	r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE queue = '$qu' AND method = 'sleep'")
	[ "$r" = "failed|seconds must be an integer" ] && ok "$lang: a handler's error fails the job with its message" ||
		bad "$lang: a handler's error fails the job" "$r"
	r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE queue = '$qu' AND method = 'no_such_method'")
	[ "$r" = "failed|no handler for no_such_method" ] && ok "$lang: a method without a handler fails, named" ||
		bad "$lang: a method without a handler" "$r"

	# a long job: its heartbeats renew the lease; SIGTERM gives it back
	q -c "SELECT qml.enqueue('sleep', '{\"seconds\": 60}', queue => '$qu')" >/dev/null
	wait_sql "SELECT state FROM qml.jobs WHERE queue = '$qu' AND arguments = '{\"seconds\": 60}'" processing 10
	local first
	first=$(q -c "SELECT locked_until FROM qml.jobs WHERE queue = '$qu' AND state = 'processing'")
	wait_sql "SELECT locked_until > '$first' FROM qml.jobs WHERE queue = '$qu' AND state = 'processing'" t 5 &&
		ok "$lang: heartbeats renew the running job's lease" || bad "$lang: heartbeats renew the lease" "$first"
	local t0=$SECONDS
	kill -TERM "$wpid"
	for i in $(seq 1 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$wpid" 2>/dev/null; then bad "$lang: SIGTERM stops the worker within 10 s"; else
		wait "$wpid"; r=$?
		[ $r = 0 ] && ok "$lang: SIGTERM mid-job: exit 0 in $((SECONDS - t0)) s" ||
			bad "$lang: SIGTERM mid-job: exit 0" "exit $r: $(tail -3 "$tmp/$lang.err")"
	fi
	r=$(q -c "SELECT state || ' ' || attempts FROM qml.jobs WHERE queue = '$qu' AND arguments = '{\"seconds\": 60}'")
	[ "$r" = "enqueued 0" ] && ok "$lang: the running job was released, no attempt counted" ||
		bad "$lang: the running job released" "$r"
}

# block LANG: the first ```LANG code block of docs/workers.md
block() { awk -v l="$1" '$0 == "```" l { on = 1; next } on && $0 == "```" { exit } on' docs/workers.md; }
echo "# docs/workers.md shows the code that runs here"
diff <(block python) docs/examples/python/worker.py >/dev/null && ok "its Python block is docs/examples/python/worker.py" ||
	bad "its Python block is docs/examples/python/worker.py"
diff <(block js) docs/examples/node/worker.js >/dev/null && ok "its Node block is docs/examples/node/worker.js" ||
	bad "its Node block is docs/examples/node/worker.js"
r=$(block sql | psql -X -q -At -v ON_ERROR_STOP=1 2>&1 >/dev/null && q -c "SELECT string_agg(method, ' ' ORDER BY id) FROM qml.jobs WHERE queue = 'mail'")
[ "$r" = "echo sleep" ] && ok "its SQL block runs" || bad "its SQL block runs" "$r"
q -c "DELETE FROM qml.jobs WHERE queue = 'mail'" >/dev/null

if /usr/bin/python3 -c "import psycopg" 2>/dev/null; then
	example python /usr/bin/python3 docs/examples/python/worker.py
else
	bad "python: psycopg 3 is installed (python3-psycopg; scripts/install-deps.sh)"
fi
if [ -d docs/examples/node/node_modules/pg ] && command -v node >/dev/null; then
	example node node docs/examples/node/worker.js
else
	bad "node: node and pg are installed (scripts/install-deps.sh)"
fi

echo "$pass/$((pass + fail)) checks passed"
[ "$fail" -eq 0 ]
