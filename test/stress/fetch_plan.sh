#!/usr/bin/env bash
# test/stress/fetch_plan.sh: claiming stays an index scan however deep the
# queue. Loads 1,000,000 enqueued jobs and checks, without timing anything:
#  - EXPLAIN of the claim query qml.fetch runs (same shape, custom and
#    generic plan) walks jobs_fetch_idx: no Seq Scan, no Sort;
#  - the plans of the claim statements qml.fetch runs when qml.jobs has
#    something of an admin's own (captured with auto_explain) do too; as
#    created, fetch walks jobs_fetch_idx itself and runs none (claim_lock.c);
#  - qml.fetch hands out the right jobs at that depth (priority, then oldest).
# For information only, prints the time of 100 fetch+complete at a depth of
# 1,000 and of 1,000,000.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at (scripts/env.sh), in
# a database of its own (qml_fetch_plan, or $QML_FETCH_PLAN_DB), dropped on
# success.
set -uo pipefail
db=${QML_FETCH_PLAN_DB:-qml_fetch_plan}
depth=${QML_FETCH_PLAN_DEPTH:-1000000}
work=$(mktemp -d /tmp/qml-fetch-plan.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1${2:+: $2}"; fail=1; }

fresh_db

# 100 fetch+complete, one client, each in its own transaction; prints the
# average latency of a pair in ms
time_100() {	# time_100 QUEUE
	cat >"$work/claim.$1.sql" <<SQL
SELECT coalesce(max(id), 0) AS jid FROM qml.fetch('timer', '{$1}', 1) \\gset
SELECT qml.complete(:jid, 'timer');
SQL
	pgbench -n -M prepared -c 1 -t 100 -f "$work/claim.$1.sql" "$db" >"$work/pgbench.$1.log" 2>&1 ||
		{ cat "$work/pgbench.$1.log" >&2; return 1; }
	sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$work/pgbench.$1.log"
}

# depth 1,000 first, with the table still small
q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'shallow', 'queue', 'shallow'))
											   FROM generate_series(1, 1000)))" >/dev/null || die "enqueue failed"
q -c "VACUUM ANALYZE qml.jobs" || die "vacuum failed"
shallow_ms=$(time_100 shallow) || die "pgbench failed at depth 1000"

# depth 1,000,000: job g runs at 2020-01-01 + g seconds; one job (g = depth/2)
# has priority 5, so it must come first; the oldest job of all is in another
# queue and must not
t0=$SECONDS
q -c "SET qml.history = off" -c "
	INSERT INTO qml.jobs (queue, method, arguments, state, priority, run_at)
	SELECT 'deep', 'deep', jsonb_build_array(g), 'enqueued',
		   CASE WHEN g = $depth / 2 THEN 5 ELSE 0 END,
		   timestamptz '2020-01-01' + g * interval '1 second'
	  FROM generate_series(1, $depth) g;
	INSERT INTO qml.jobs (queue, method, arguments, state, priority, run_at)
	VALUES ('elsewhere', 'deep', '[0]', 'enqueued', 100, timestamptz '2019-01-01')" || die "load failed"
q -c "VACUUM ANALYZE qml.jobs" || die "vacuum failed"
echo "loaded $depth enqueued jobs in $((SECONDS - t0)) s"
[ "$(q -c "SELECT count(*) FROM qml.jobs WHERE queue = 'deep' AND state = 'enqueued'")" = "$depth" ] ||
	die "the deep queue does not hold $depth enqueued jobs"

# runs the SQL on stdin; the plan of every statement, nested ones included,
# goes to stderr as a JSON NOTICE (auto_explain)
with_plans() {
	{ cat <<'SQL'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_format = json;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SQL
	  cat; } | q
}

# the NOTICEs on stdin whose text matches the regular expression $1
plans_of() {
	awk -v re="$1" 'function flush() { if (buf ~ re) printf "%s", buf; buf = "" }
		/NOTICE:/ { flush() } { buf = buf $0 "\n" } END { flush() }'
}

# plan checks: $1 name, file with EXPLAIN (FORMAT JSON) output (one or more plans)
check_plan() {
	local name=$1 file=$2 nodes
	nodes=$(grep -o '"Node Type": "[^"]*"' "$file" | sed 's/"Node Type": //' | tr -d '"' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
	if ! grep -q '"Index Name": "jobs_fetch_idx"' "$file"; then
		bad "$name uses jobs_fetch_idx" "nodes:$nodes"
	elif grep -q '"Node Type": "Seq Scan"' "$file"; then
		bad "$name has no Seq Scan" "nodes:$nodes"
	elif grep -q '"Node Type": "\(Incremental \)\?Sort"' "$file"; then
		bad "$name needs no Sort (the index gives the order)" "nodes:$nodes"
	else
		ok "$name: jobs_fetch_idx, no Seq Scan, no Sort ($nodes)"
	fi
}

# the claim query of qml.fetch (src/worker_api.c), same shape: as written
# with constants, and as the generic plan fetch prepares once per session
# and reuses (where a parameter could tip a join into a Seq Scan). fetch
# reads it as a cursor planned for its first rows (claim_lock.c); the
# LIMIT here plans it for its first rows the same way.
claim="SELECT c.ctid, c.priority, c.run_at, c.id FROM ONLY qml.jobs c
	 WHERE c.state = 'enqueued' AND c.queue = \$1
	   AND NOT EXISTS (SELECT 1 FROM qml.queues p WHERE p.name = \$1 AND p.paused)
	 ORDER BY c.priority DESC, c.run_at, c.id
	 LIMIT \$2"
q -c "EXPLAIN (FORMAT JSON) $(echo "$claim" | sed "s/\\\$1/'deep'/g; s/\\\$2/1/")" \
	>"$work/explain.custom" 2>&1 || { cat "$work/explain.custom"; die "EXPLAIN failed"; }
check_plan "EXPLAIN of the claim (constants)" "$work/explain.custom"
for batch in 1 1000; do
	q -c "PREPARE claim(text, integer) AS $claim" -c "SET plan_cache_mode = force_generic_plan" \
		-c "EXPLAIN (FORMAT JSON) EXECUTE claim('deep', $batch)" >"$work/explain.generic" 2>&1 ||
		{ cat "$work/explain.generic"; die "EXPLAIN of the generic plan failed"; }
	check_plan "EXPLAIN of the claim (generic plan, batch $batch)" "$work/explain.generic"
done

# as created, qml.fetch walks jobs_fetch_idx itself (claim_lock.c): no
# claim statement runs, so none has a plan to show. Rolled back.
with_plans >/dev/null 2>"$work/auto_explain.direct" <<'SQL' ||
BEGIN;
SELECT id FROM qml.fetch('probe0', '{deep}', 1);
SELECT id FROM qml.fetch('probe0', '{deep}', 1);
ROLLBACK;
SQL
	{ cat "$work/auto_explain.direct"; die "fetch with auto_explain failed"; }
direct=$(plans_of "c.state = 'enqueued' AND c.queue" <"$work/auto_explain.direct" | grep -c '"Query Text"')
[ "$direct" = 0 ] && ok "qml.fetch walks jobs_fetch_idx itself while qml.jobs is as created" ||
	bad "qml.fetch walks jobs_fetch_idx itself while qml.jobs is as created" "$direct claim plans ran"

# the claim statements qml.fetch runs when qml.jobs has a trigger of an
# admin's own, as it does inside this transaction, first as custom plans,
# then as generic ones; auto_explain sends them to this client as NOTICEs.
# The fetches are rolled back.
with_plans >/dev/null 2>"$work/auto_explain" <<'SQL' ||
BEGIN;
CREATE FUNCTION pg_temp.admin_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER zz_admin_noop AFTER UPDATE ON qml.jobs FOR EACH ROW EXECUTE FUNCTION pg_temp.admin_noop();
SELECT id FROM qml.fetch('probe', '{deep}', 1);
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT id FROM qml.fetch('probe2', '{deep}', 1);
ROLLBACK;
SQL
	{ cat "$work/auto_explain"; die "fetch with auto_explain failed"; }
# keep the plans of the claim queries (one NOTICE each): those that walk
# the queue's enqueued jobs (from its start, its head, or below the head's
# priority)
plans_of "c.state = 'enqueued' AND c.queue" <"$work/auto_explain" >"$work/auto_explain.claim"
claims=$(grep -c '"Query Text"' "$work/auto_explain.claim")
if [ "$claims" -ge 2 ]; then
	check_plan "qml.fetch's own claim plans ($claims, auto_explain)" "$work/auto_explain.claim"
else
	bad "auto_explain captured the claims of both fetches" "$claims claim plans among $(grep -c '"Query Text"' "$work/auto_explain") plans"
fi

# completions find their jobs by primary key: an index of processing jobs
# (jobs_lease_idx) holds a dead entry for every job finished since the last
# VACUUM, and a generic plan that picked it walked them all. qml's own
# completions look each job up in jobs_pkey themselves (worker_write.c);
# the statements checked here are those that run when qml.jobs has a
# trigger of an admin's own, as it does inside this transaction.
with_plans >/dev/null 2>"$work/auto_explain" <<'SQL' ||
BEGIN;
CREATE FUNCTION pg_temp.admin_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER zz_admin_noop AFTER UPDATE ON qml.jobs FOR EACH ROW EXECUTE FUNCTION pg_temp.admin_noop();
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT id FROM qml.fetch('probe3', '{deep}', 3);
SELECT qml.complete_batch(ARRAY(SELECT id FROM qml.jobs WHERE locked_by = 'probe3' LIMIT 2), 'probe3');
SELECT qml.complete((SELECT id FROM qml.jobs WHERE locked_by = 'probe3'), 'probe3');
ROLLBACK;
SQL
	{ cat "$work/auto_explain"; die "complete with auto_explain failed"; }
plans_of 'SET state = .succeeded' <"$work/auto_explain" >"$work/auto_explain.complete"
completes=$(grep -c '"Query Text"' "$work/auto_explain.complete")
scans=$(grep -o '"Index Name": "[^"]*"' "$work/auto_explain.complete" | sort -u | tr '\n' ' ')
if [ "$completes" -ge 2 ] && [ "$scans" = '"Index Name": "jobs_pkey" ' ] &&
	! grep -q '"Node Type": "Seq Scan"' "$work/auto_explain.complete"; then
	ok "complete and complete_batch find their jobs by jobs_pkey ($completes plans)"
else
	bad "complete and complete_batch find their jobs by jobs_pkey" "$completes plans, indexes: $scans"
fi

# the right jobs at that depth: the priority 5 job, then the oldest ones
got=$(q -c "SELECT string_agg(arguments->>0, ',' ORDER BY n)
			  FROM (SELECT 1 AS n, * FROM qml.fetch('order', '{deep}', 1)) a" \
	  -c "SELECT string_agg(arguments->>0, ',' ORDER BY (arguments->>0)::int)
			  FROM qml.fetch('order', '{deep}', 3)" | tr '\n' ' ')
want="$((depth / 2)) 1,2,3 "
[ "$got" = "$want" ] && ok "qml.fetch at depth $depth returns the right jobs ($got)" ||
	bad "qml.fetch at depth $depth returns the right jobs" "got '$got', want '$want'"

deep_ms=$(time_100 deep) || die "pgbench failed at depth $depth"
got=$(q -c "SELECT count(*) || ' ' || min((arguments->>0)::int) || ' ' || max((arguments->>0)::int)
			  FROM qml.jobs WHERE queue = 'deep' AND state = 'succeeded'")
[ "$got" = "100 4 103" ] && ok "100 fetch+complete at depth $depth took the next 100 oldest jobs" ||
	bad "100 fetch+complete at depth $depth took the next 100 oldest jobs" "succeeded count/min/max: $got"

echo "for information: 100 fetch+complete, average per pair: depth 1000: ${shallow_ms} ms, depth $depth: ${deep_ms} ms"
[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "fetch_plan: ok"
