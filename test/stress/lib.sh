# test/stress/lib.sh: sourced by the stress scripts beside it. Each sets
# `db` (its own database) before sourcing; `die` names the script.

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
die() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }

# a fresh database $db with the extension in it
fresh_db() {
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ||
		die "cannot create database $db"
	q -c "CREATE EXTENSION qml" || die "cannot create extension qml"
}

drop_db() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; }

# check NAME SQL: prints "ok   NAME" when SQL returns 0, else FAIL and
# what it returned, and sets fail=1
check() {
	local got
	got=$(q -c "$2") || { echo "FAIL $1: query failed"; fail=1; return; }
	if [ "$got" = 0 ]; then echo "ok   $1"; else echo "FAIL $1: $got"; fail=1; fi
}

# head_flow DIR QUEUE: the pgbench scripts of the queue head tests, in
# DIR: worker.sql fetches up to 10 jobs of QUEUE and completes them, or
# one time in five rolls the claim back and notes its jobs in a table
# rolled_back (job_id bigint); producer.sql enqueues one job into QUEUE,
# one in ten of them urgent (priority 9), the others at priority 0-3
head_flow() {
	cat >"$1/worker.sql" <<SQL
\\set rollback random(1, 5)
BEGIN;
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM qml.fetch('w' || :client_id, '{$2}', 10) \\gset
\\if :rollback = 1
ROLLBACK;
INSERT INTO rolled_back SELECT unnest(:ids::bigint[]);
\\else
COMMIT;
SELECT count(*) FROM qml.complete_batch(:ids::bigint[], 'w' || :client_id);
\\endif
SQL
	cat >"$1/producer.sql" <<SQL
\\set urgent random(1, 10)
\\set p random(0, 3)
\\if :urgent = 1
SELECT qml.enqueue('urgent', queue => '$2', priority => 9);
\\else
SELECT qml.enqueue('more', queue => '$2', priority => :p);
\\endif
SQL
}

# head_drain_and_check QUEUE: claims and completes what QUEUE has left, until a round
# claims nothing; then the checks every queue head test makes: each job
# succeeded once, by one committed claim, also those of rolled-back claims
head_drain_and_check() {
	local n rolled
	for _ in $(seq 1 1000); do
		n=$(q -c "SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.fetch('drain', '{$1}', 1000)), 'drain')")
		[ "$n" = 0 ] && break
	done
	check "every job succeeded (jobs not succeeded)" \
		"SELECT count(*) FROM qml.jobs WHERE state <> 'succeeded'"
	check "each job was claimed by one committed claim and completed once" \
		"SELECT count(*) FROM (SELECT e.job_id FROM qml.job_events e
		   GROUP BY e.job_id
		  HAVING count(*) FILTER (WHERE e.to_state = 'processing') <> 1
		      OR count(*) FILTER (WHERE e.to_state = 'succeeded') <> 1) bad"
	rolled=$(q -c "SELECT count(DISTINCT job_id) FROM rolled_back")
	[ "$rolled" -gt 0 ] || die "no claim was rolled back"
	check "the $rolled jobs of rolled-back claims were claimed again and succeeded" \
		"SELECT count(*) FROM rolled_back r JOIN qml.jobs j ON j.id = r.job_id WHERE j.state <> 'succeeded'"
}

# head_run DIR WORKER-OPTION...: runs DIR's head_flow scripts, 4 workers
# for 8 s (with the pgbench options given) and 2 producers at 400 jobs/s
# for 7 s. The producers stop a second before the workers: a job enqueued
# as the workers stop would wait for the drain (psql starts on a loaded
# machine), not for the head, and the tests' bounds are about the head.
head_run() {
	local dir=$1 workers
	shift
	pgbench -n -M prepared -c 4 -j 2 -T 8 "$@" -f "$dir/worker.sql" "$db" >"$dir/workers.log" 2>&1 &
	workers=$!
	pgbench -n -M prepared -c 2 -j 1 -T 7 -R 400 -f "$dir/producer.sql" "$db" >"$dir/producers.log" 2>&1 ||
		{ cat "$dir/producers.log" >&2; die "producers failed"; }
	wait $workers || { cat "$dir/workers.log" >&2; die "workers failed"; }
	grep -E '^tps' "$dir/workers.log" | head -1 | sed 's/^/workers: /'
}
