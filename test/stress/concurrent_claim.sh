#!/usr/bin/env bash
# test/stress/concurrent_claim.sh: exactly-once claiming under concurrency.
#
# Enqueues 20,000 jobs, then 4 concurrent pgbench clients fetch and complete
# them one at a time, fetch and complete in separate transactions, until the
# queue is empty. Then checks: every job succeeded, was claimed once and
# completed once (exactly one enqueued->processing and one
# processing->succeeded event, by the same worker), no job is left
# processing, no completion of a held job was refused, and the counts add up.
# Exits non-zero with a message for each violation.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at (scripts/env.sh), in
# a database of its own (qml_stress, or $QML_STRESS_DB), dropped on success.
set -uo pipefail
db=${QML_STRESS_DB:-qml_stress}
jobs=${QML_STRESS_JOBS:-20000}
clients=${QML_STRESS_CLIENTS:-4}
work=$(mktemp -d /tmp/qml-stress.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"

fresh_db
# completions a worker holding the job was refused (must stay empty)
q -c "CREATE TABLE refused (job_id bigint, worker text)" || exit 1

t0=$(date +%s.%N)
q -c "SELECT count(*) FROM generate_series(1, $jobs, 5000) s,
		LATERAL qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'stress', 'queue', 'stress',
												   'arguments', jsonb_build_array(g)) ORDER BY g)
								  FROM generate_series(s, least(s + 4999, $jobs)) g))" >"$work/enqueued" ||
	die "enqueue failed"
[ "$(cat "$work/enqueued")" = "$jobs" ] || die "enqueued $(cat "$work/enqueued") jobs, wanted $jobs"
t1=$(date +%s.%N)

# one job per transaction: fetch, then complete in a transaction of its own
cat >"$work/claim.sql" <<'SQL'
SELECT coalesce(max(id), 0) AS jid FROM qml.fetch('c' || :client_id, '{stress}', 1) \gset
\if :jid > 0
INSERT INTO refused SELECT :jid, 'c' || :client_id WHERE NOT qml.complete(:jid, 'c' || :client_id);
\endif
SQL

# A fetch comes back empty only while every job left is being claimed by
# another client, so a round can end with a few jobs left: run rounds until
# none is left (a fetch that misses unlocked jobs shows up as rounds that
# make no progress).
fail=0
round=0
while :; do
	left=$(q -c "SELECT count(*) FROM qml.jobs WHERE state = 'enqueued'") || die "cannot count jobs"
	[ "$left" = 0 ] && break
	round=$((round + 1))
	if [ "$round" -gt 10 ]; then
		echo "FAIL fetching: $left jobs still enqueued after 10 rounds of fetching"
		fail=1
		break
	fi
	per_client=$(( (left + clients - 1) / clients ))
	if ! pgbench -n -M prepared -c "$clients" -j 2 -t "$per_client" -f "$work/claim.sql" "$db" \
		>"$work/pgbench.$round.log" 2>&1; then
		cat "$work/pgbench.$round.log" >&2
		die "pgbench failed in round $round"
	fi
	echo "round $round: $left jobs left, $clients clients x $per_client fetches; $(grep -E '^tps' "$work/pgbench.$round.log" | head -1)"
done
t2=$(date +%s.%N)

check() {	# check NAME SQL-returning-a-violation-count-or-text
	local got
	got=$(q -c "$2") || { echo "FAIL $1: query failed"; fail=1; return; }
	if [ "$got" = 0 ]; then
		echo "ok   $1"
	else
		echo "FAIL $1: $got"
		fail=1
	fi
}
check "all $jobs jobs exist" \
	"SELECT abs(count(*) - $jobs) FROM qml.jobs WHERE queue = 'stress'"
check "every job succeeded (jobs not succeeded)" \
	"SELECT count(*) FROM qml.jobs WHERE state <> 'succeeded'"
check "none is left processing" \
	"SELECT count(*) FROM qml.jobs WHERE state = 'processing'"
check "no lease is left (jobs with locked_by / locked_until)" \
	"SELECT count(*) FROM qml.jobs WHERE locked_by IS NOT NULL OR locked_until IS NOT NULL"
check "each job was attempted once (attempts <> 1)" \
	"SELECT count(*) FROM qml.jobs WHERE attempts <> 1"
check "timestamps set (jobs missing started_at/finished_at)" \
	"SELECT count(*) FROM qml.jobs WHERE started_at IS NULL OR finished_at IS NULL OR finished_at < started_at"
check "no completion by the holder was refused" \
	"SELECT count(*) FROM refused"
check "each job claimed exactly once in history (jobs with <> 1 enqueued->processing)" \
	"SELECT count(*) FROM qml.jobs j WHERE (SELECT count(*) FROM qml.job_events e
		WHERE e.job_id = j.id AND e.from_state = 'enqueued' AND e.to_state = 'processing') <> 1"
check "each job succeeded exactly once in history (jobs with <> 1 processing->succeeded)" \
	"SELECT count(*) FROM qml.jobs j WHERE (SELECT count(*) FROM qml.job_events e
		WHERE e.job_id = j.id AND e.from_state = 'processing' AND e.to_state = 'succeeded') <> 1"
check "no other transitions in history (events other than create, claim, success)" \
	"SELECT count(*) FROM qml.job_events WHERE NOT ((from_state IS NULL AND to_state = 'enqueued')
		OR (from_state = 'enqueued' AND to_state = 'processing')
		OR (from_state = 'processing' AND to_state = 'succeeded'))"
check "history has 3 events per job (total events minus 3 x jobs)" \
	"SELECT count(*) - 3 * $jobs FROM qml.job_events"
check "the worker that claimed a job is the one that completed it" \
	"SELECT count(*) FROM qml.job_events c JOIN qml.job_events s ON s.job_id = c.job_id
	  WHERE c.to_state = 'processing' AND s.to_state = 'succeeded' AND c.worker IS DISTINCT FROM s.worker"
check "claims per worker add up to the jobs" \
	"SELECT sum(n) - $jobs FROM (SELECT count(*) AS n FROM qml.job_events WHERE to_state = 'succeeded' GROUP BY worker) w"
check "qml.stats() agrees" \
	"SELECT coalesce((SELECT succeeded - $jobs + enqueued + processing + failed + deleted + awaiting_retry + scheduled
					  FROM qml.stats('stress')), -1)"
check "every argument 1..$jobs is there once" \
	"SELECT count(*) FROM generate_series(1, $jobs) g
	  FULL JOIN (SELECT (arguments->>0)::int AS a FROM qml.jobs) j ON j.a = g
	  WHERE j.a IS NULL OR g IS NULL"
echo "claims per worker: $(q -c "SELECT string_agg(worker || '=' || n, ' ' ORDER BY worker)
	FROM (SELECT worker, count(*) AS n FROM qml.job_events WHERE to_state = 'succeeded' GROUP BY worker) w")"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$jobs" 'BEGIN {
	printf "enqueue: %.1f s (%.0f jobs/s); fetch+complete: %.1f s (%.0f jobs/s)\n", b - a, n / (b - a), c - b, n / (c - b) }'

[ "$fail" = 0 ] || die "violations found; database $db kept for inspection"
drop_db
echo "concurrent_claim: ok"
