#!/usr/bin/env bash
# test/upgrade/catalog.sh: CREATE EXTENSION qml (1.3) in one database, and
# CREATE EXTENSION qml VERSION '1.0' (and '1.1', '1.2') + ALTER EXTENSION qml
# UPDATE in others, give the same catalog; so do CREATE EXTENSION qml
# VERSION '1.4' and '1.3' + ALTER EXTENSION qml UPDATE TO '1.4' (test/upgrade/catalog.sql lists
# it: the extension's members and config, columns, types, defaults,
# constraints, indexes, triggers, rules and views, functions with their
# signatures, attributes and definitions, privileges, dependencies,
# comments, the recorded table shapes). Every database grants a producer,
# a worker and an admin role, the fresh one after CREATE EXTENSION, the
# others before the update, and holds jobs, history, queues and recurring
# jobs when it is updated. Then the comparison is shown to see a change of
# each kind.
. "$(dirname "$0")/../scheduler/lib.sh"
up=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fresh=qml_up_fresh
updated=qml_up_updated
updated11=qml_up_updated_1_1
updated12=qml_up_updated_1_2
fresh14=qml_up_fresh_1_4
updated14=qml_up_updated_1_3_1_4

# roles are the cluster's: made once, kept
for r in qml_up_producer qml_up_worker qml_up_admin; do
	psql -X -q -d postgres -c "DO \$\$BEGIN CREATE ROLE $r; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null
done
grants="SELECT qml.grant_producer('qml_up_producer'), qml.grant_worker('qml_up_worker'), qml.grant_admin('qml_up_admin')"

newdb $fresh || { fail "CREATE EXTENSION qml"; finish; }
q $fresh -c "$grants" >/dev/null
dropdb_ $fresh14
psql -X -q -d postgres -c "CREATE DATABASE $fresh14" >/dev/null
q $fresh14 -c "CREATE EXTENSION qml VERSION '1.4'" -c "$grants" >/dev/null ||
	{ fail "CREATE EXTENSION qml VERSION '1.4'"; finish; }

# updated_from VERSION DB [TO]: DB made at VERSION, with grants, queues,
# recurring jobs, jobs and their history, then updated (to the default
# version, or to TO)
updated_from() {
	local version=$1 db=$2 to=${3:-}
	dropdb_ $db
	psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
	q $db -c "CREATE EXTENSION qml VERSION '$version'" -c "$grants" >/dev/null ||
		{ fail "CREATE EXTENSION qml VERSION '$version'"; finish; }
	q $db >/dev/null <<'SQL'
SELECT qml.configure_queue('kept', history => false, retention => '2 days');
SELECT qml.add_recurring('tick', '*/5 * * * *', 'tick_job');
SELECT qml.enqueue('m', jsonb_build_array(g), unique_key => 'k' || g) FROM generate_series(1, 20) g;
SELECT count(*) FROM qml.fetch('w', batch => 5, session_lease => false);
SQL
	check "ALTER EXTENSION qml UPDATE from $version${to:+ to $to}" "${to:-1.3}" \
		"$(q $db -c "ALTER EXTENSION qml UPDATE${to:+ TO '$to'}" -c "SELECT extversion FROM pg_extension WHERE extname = 'qml'" 2>&1)"
}
updated_from 1.0 $updated
updated_from 1.1 $updated11
updated_from 1.2 $updated12
updated_from 1.3 $updated14 1.4

dump() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@" -f "$up/catalog.sql"; }
dump $fresh >"$tmp/fresh" || fail "catalog of $fresh"
for db in $updated $updated11 $updated12; do
	from=1.0
	[ $db = $updated11 ] && from=1.1
	[ $db = $updated12 ] && from=1.2
	dump $db >"$tmp/updated" || fail "catalog of $db"
	if diff "$tmp/fresh" "$tmp/updated" >"$tmp/diff"; then
		ok "$from + update has the catalog of a fresh 1.3 ($(wc -l <"$tmp/fresh") facts)"
	else
		fail "$from + update has the catalog of a fresh 1.3" "$(grep -c '^[<>]' "$tmp/diff") lines differ (< fresh, > updated):"
		cat "$tmp/diff"
	fi
done
dump $fresh14 >"$tmp/fresh14" || fail "catalog of $fresh14"
dump $updated14 >"$tmp/updated14" || fail "catalog of $updated14"
if diff "$tmp/fresh14" "$tmp/updated14" >"$tmp/diff"; then
	ok "1.3 + update to 1.4 has the catalog of a fresh 1.4 ($(wc -l <"$tmp/fresh14") facts)"
else
	fail "1.3 + update to 1.4 has the catalog of a fresh 1.4" "$(grep -c '^[<>]' "$tmp/diff") lines differ (< fresh, > updated):"
	cat "$tmp/diff"
fi

# jobs_fetch_idx without deduplication, and qml.jobs still as the script
# made it, so that enqueue and enqueue_batch keep writing rows themselves
# (src/direct_gate.c) instead of through the statement
for db in $fresh $updated $updated11 $updated12; do
	check "jobs_fetch_idx without deduplication, qml.jobs as made ($db)" "{deduplicate_items=off}|t" \
		"$(q $db -F '|' -c "SELECT c.reloptions, qml.table_is_original('qml.jobs')
							  FROM pg_class c WHERE c.oid = 'qml.jobs_fetch_idx'::regclass")"
done

# the history recorded before the update reads as it did, and the changes
# after it follow on: 25 creations and claims on 1.0 and 1.1 (in the table
# qml.job_events_1_1) or 1.2 (in the rows), then one completion; of jobs 1
# to 20 only, since the recurring 'tick' (every five minutes) may have
# enqueued a job of its own by now
for db in $updated $updated11 $updated12; do
	expected="25|1|t"
	[ $db = $updated12 ] && expected="0|26|t"
	check "history kept across the update ($db)" "$expected" "$(q $db -F '|' -c "
		SELECT qml.complete(1, 'w') AND true;
		SELECT (SELECT count(*) FROM qml.job_events_1_1),
			   (SELECT count(*) FROM qml.jobs j, qml.history_events(j.history) WHERE j.id <= 20),
			   (SELECT array_agg(to_state ORDER BY id) = '{enqueued,processing,succeeded}'
				  FROM qml.job_events WHERE job_id = 1)" | tail -1)"
	check "the admin granted before the update reads the history ($db)" "t" \
		"$(q $db -c "SET ROLE qml_up_admin" -c "SELECT count(*) = 26 FROM qml.job_events WHERE job_id <= 20")"
	check "a producer does not ($db)" "42501" \
		"$(q $db -c "SET ROLE qml_up_producer" -c "SELECT count(*) FROM qml.job_events" 2>&1 | grep -o 'permission denied' | sed 's/permission denied/42501/')"
done

# what an admin granted on the history table beyond qml's roles, to PUBLIC
# too, is granted on the view: a role with no grant of its own reads it
public=qml_up_public
dropdb_ $public
psql -X -q -d postgres -c "CREATE DATABASE $public" >/dev/null
q $public -c "CREATE EXTENSION qml VERSION '1.1'" -c "SELECT qml.enqueue('m')" \
	-c "GRANT USAGE ON SCHEMA qml TO PUBLIC" -c "GRANT SELECT ON qml.job_events TO PUBLIC" \
	-c "ALTER EXTENSION qml UPDATE" >/dev/null || fail "update with a grant to PUBLIC"
check "a grant to PUBLIC on the history is carried to the view" "1" \
	"$(q $public -c "SET ROLE qml_up_producer" -c "SELECT count(*) FROM qml.job_events" 2>&1)"
dropdb_ $public

# the comparison sees each kind of change (made in a transaction, rolled back)
sees() {
	local what=$1 sql=$2
	psql -X -q -v ON_ERROR_STOP=1 -d $updated -c "BEGIN" -c "$sql" -f "$up/catalog.sql" \
		-c "ROLLBACK" >"$tmp/changed" 2>"$tmp/err"
	if [ -s "$tmp/err" ]; then fail "sees $what" "$(cat "$tmp/err")"; return; fi
	if diff -q "$tmp/fresh" "$tmp/changed" >/dev/null; then fail "sees $what" "no difference found"
	else ok "sees $what"; fi
}
sees "a volatility" "ALTER FUNCTION qml.fetch(text,text[],integer,interval,interval,boolean) STABLE"
sees "a pinned setting" "ALTER FUNCTION qml.complete(bigint,text,jsonb) RESET search_path"
sees "security definer" "ALTER FUNCTION qml.release(bigint,text) SECURITY INVOKER"
sees "strictness" "ALTER FUNCTION qml.duration_ok(interval,boolean) CALLED ON NULL INPUT"
sees "cost and rows" "ALTER FUNCTION qml.state_counts() ROWS 5"
sees "an argument default" "CREATE OR REPLACE FUNCTION qml.fetch(worker text, queues text[] DEFAULT '{default}', batch integer DEFAULT 1, lease interval DEFAULT '5 minutes', wait interval DEFAULT NULL, session_lease boolean DEFAULT true) RETURNS SETOF qml.jobs LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS '\$libdir/qml', 'qml_fetch'"
sees "a function body" "CREATE OR REPLACE FUNCTION qml.remove_recurring(name text) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS \$f\$BEGIN RETURN false; END\$f\$"
sees "a column default" "ALTER TABLE qml.jobs ALTER COLUMN priority SET DEFAULT 1"
sees "a column type" "ALTER TABLE qml.queue_state_counts ALTER COLUMN jobs TYPE numeric"
sees "a constraint" "ALTER TABLE qml.queues DROP CONSTRAINT queues_retention_check"
sees "an index" "DROP INDEX qml.jobs_unique_key_idx; CREATE UNIQUE INDEX jobs_unique_key_idx ON qml.jobs (unique_key) WHERE unique_key IS NOT NULL"
sees "a trigger" "ALTER TABLE qml.jobs DISABLE TRIGGER jobs_count_truncate"
sees "a table privilege" "GRANT SELECT ON qml.jobs TO qml_up_producer"
sees "a function privilege" "REVOKE EXECUTE ON FUNCTION qml.run_recurring(text) FROM qml_up_admin"
sees "a schema privilege" "GRANT USAGE ON SCHEMA qml TO PUBLIC"
sees "a sequence privilege" "GRANT USAGE ON SEQUENCE qml.jobs_id_seq TO qml_up_worker"
sees "membership" "ALTER EXTENSION qml DROP FUNCTION qml.run_recurring(text)"
sees "a comment" "COMMENT ON FUNCTION qml.stats(text) IS 'counts'"
sees "an enum label" "ALTER TYPE qml.job_state ADD VALUE 'paused'"

dropdb_ $fresh
dropdb_ $updated
dropdb_ $updated11
dropdb_ $updated12
dropdb_ $fresh14
dropdb_ $updated14
finish
