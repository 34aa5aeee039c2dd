#!/usr/bin/env bash
# bench/sql_edition.sh: the pure-SQL edition (docs/sql-edition.md) beside
# the extension, as ratios to the raw baselines, from one run on one
# cluster: fetch(10) + complete_batch, and enqueue, at 16 clients, with
# bench/'s own raw cases (bench/sql/raw_*.sql: SKIP LOCKED claim of 10 then
# DELETE; plain INSERT) measured in the same run. One sample per case;
# prints jobs/s and ratios, never pass or fail.
#
# Environment: QML_PGPORT (5535: a throwaway cluster, bench/own_cluster.sh),
# BENCH_T (seconds per measurement, 10), BENCH_JOBS (jobs waiting when a
# fetch case starts, 300000), BENCH_CLIENTS (16).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS="-c client_min_messages=warning"
db=qml_bench_c
. bench/own_cluster.sh
T=${BENCH_T:-10}
N=${BENCH_JOBS:-300000}
C=${BENCH_CLIENTS:-16}
sqldb=qml_bench_sql
owner=qml_bench_owner

make -s client/qml >/dev/null
test/sql_edition/install.sh "$sqldb" "$owner"
q -f bench/sql/schema.sql >/dev/null

# pgbench on database $1 as role $2 with script $3: jobs/s (transactions/s x $4)
rate() {
	pgbench -n -M prepared -T "$T" -c "$C" -j 2 -U "$2" -f "$3" "$1" 2>&1 |
		awk -v k="$4" '/^tps = /{ printf "%.0f", $3 * k; exit }'
}
sed 's/@BATCH@/10/g' bench/sql/raw_claim_delete.sql >"$tmp/raw_fetch.sql"
sed 's/@BATCH@/10/g' bench/sql/qml_fetch_complete.sql >"$tmp/qml_fetch.sql"

# empties the jobs and their history in database $1 (as role $2): the
# history is the table qml.job_events in the SQL edition, a view of
# qml.jobs and the table qml.job_events_1_1 in the extension from 1.2
clear_qml() {
	psql -X -q -At -v ON_ERROR_STOP=1 -U "$2" -d "$1" -c "DO \$\$ BEGIN
		IF to_regclass('qml.job_events_1_1') IS NOT NULL THEN DELETE FROM qml.job_events_1_1;
		ELSE DELETE FROM qml.job_events; END IF; END \$\$" -c "DELETE FROM qml.jobs" >/dev/null
}

# a queue of $N jobs in database $1 (as role $2), vacuumed and checkpointed
fill_qml() {
	local i
	clear_qml "$1" "$2"
	for i in $(seq 1 $((N / 10000))); do
		psql -X -q -At -v ON_ERROR_STOP=1 -U "$2" -d "$1" -v n=10000 -f bench/sql/qml_prefill_chunk.sql >/dev/null
	done
	psql -X -q -d "$1" -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

echo "fetch(10) + complete_batch, $C clients, $T s, $N jobs waiting"
q -v n="$N" -f bench/sql/raw_prefill.sql >/dev/null
raw_f=$(rate "$db" postgres "$tmp/raw_fetch.sql" 10)
fill_qml "$db" postgres
c_f=$(rate "$db" postgres "$tmp/qml_fetch.sql" 10)
fill_qml "$sqldb" "$owner"
s_f=$(rate "$sqldb" "$owner" "$tmp/qml_fetch.sql" 10)

echo "enqueue, $C clients, $T s"
q -c "TRUNCATE jobs" -c "CHECKPOINT" >/dev/null
raw_e=$(rate "$db" postgres bench/sql/raw_enqueue.sql 1)
clear_qml "$db" postgres
q -c "CHECKPOINT" >/dev/null
c_e=$(rate "$db" postgres bench/sql/qml_enqueue.sql 1)
clear_qml "$sqldb" "$owner"
psql -X -q -d "$sqldb" -c "CHECKPOINT" >/dev/null
s_e=$(rate "$sqldb" "$owner" bench/sql/qml_enqueue.sql 1)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
printf '\n%-28s %10s %10s %10s %8s %8s\n' case raw C SQL "C/raw" "SQL/raw"
printf '%-28s %10s %10s %10s %8s %8s\n' "fetch10+complete (jobs/s)" "$raw_f" "$c_f" "$s_f" \
	"$(ratio "$c_f" "$raw_f")" "$(ratio "$s_f" "$raw_f")"
printf '%-28s %10s %10s %10s %8s %8s\n' "enqueue (jobs/s)" "$raw_e" "$c_e" "$s_e" \
	"$(ratio "$c_e" "$raw_e")" "$(ratio "$s_e" "$raw_e")"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $sqldb WITH (FORCE)"
