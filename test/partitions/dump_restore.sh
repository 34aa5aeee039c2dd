#!/usr/bin/env bash
# test/partitions/dump_restore.sh: pg_dump and restore of a schema 1.4
# database. pg_dump writes CREATE EXTENSION without a version, so a
# restore makes the default version (1.3) and the partitions' data has
# nowhere to go: the target must have CREATE EXTENSION qml VERSION '1.4'
# first (docs/partitions.md). Then, for a custom-format dump restored with
# pg_restore and a plain one run by psql: every job of every partition,
# the archive's included, comes back in its slot with every column as it
# was (no history or stamp of its own), qml.job_keys is taken again by
# the trigger as the rows load (it is not dumped), the ring starts afresh,
# and enqueue, unique keys, fetch and rotation work at once.
. "$(dirname "$0")/../scheduler/lib.sh"
src=qml_part_dump_src
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mk14() {
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null &&
		q "$1" -c "CREATE EXTENSION qml VERSION '1.4'" >/dev/null
}
mk14 $src || exit 1
q $src >/dev/null <<'SQL' || exit 1
SET qml.generation_length = 0;
SELECT count(qml.enqueue('m', jsonb_build_array(i), queue => 'q',
						 unique_key => CASE WHEN i % 10 = 0 THEN 'k' || i END))
  FROM generate_series(1, 40) i;
SELECT count(*) FROM qml.fetch('w', '{q}', 10, interval '1 day');
SELECT count(qml.complete(id, 'w')) FROM qml.jobs WHERE state = 'processing' AND id % 2 = 0;
SELECT count(*) FROM (SELECT qml.rotate() FROM generate_series(1, 19)) r;
SELECT count(qml.enqueue('n', queue => 'q')) FROM generate_series(1, 5);
SELECT qml.schedule('later', delay => '1 day');
SQL
rows="SELECT string_agg(to_jsonb(j)::text, E'\n' ORDER BY id) FROM qml.jobs j"
keys="SELECT string_agg(format('%s %s %s', queue, unique_key, job_id), ',' ORDER BY 1) FROM qml.job_keys"
want_rows=$(q $src -c "$rows")
want_keys=$(q $src -c "$keys")
check "the source has archived, moved and new jobs" t \
	"$(q $src -c "SELECT count(DISTINCT slot) >= 3 AND bool_or(slot = -1) FROM qml.jobs")"

for fmt in custom plain; do
	db=qml_part_dump_$fmt
	mk14 $db || exit 1
	if [ $fmt = custom ]; then
		pg_dump -Fc -d $src -f "$tmp/d" && pg_restore -d $db "$tmp/d" >"$tmp/log" 2>&1
	else
		pg_dump -d $src -f "$tmp/d.sql" && psql -X -q -v ON_ERROR_STOP=1 -d $db -f "$tmp/d.sql" >"$tmp/log" 2>&1
	fi
	check "$fmt: restored without an error" 0 "$?"
	check "$fmt: every job in its slot, every column as it was" "$want_rows" "$(q $db -c "$rows")"
	check "$fmt: the live keys taken again" "$want_keys" "$(q $db -c "$keys")"
	check "$fmt: a key still held" t "$(q $db -c "SELECT qml.enqueue('x', queue => 'q', unique_key => 'k40') = 40")"
	check "$fmt: a new job takes a new id" t "$(q $db -c "SELECT qml.enqueue('x') > (SELECT max(id) FROM qml.jobs WHERE method <> 'x')")"
	check "$fmt: restored jobs are fetched and completed" t "$(q $db -c "
		SELECT bool_and(qml.complete(f.id, 'w2')) FROM qml.fetch('w2', '{q}', 5) f")"
	check "$fmt: the ring turns" t "$(q $db -c "SET qml.generation_length = 0" -c "
		SELECT count(*) = 19 FROM (SELECT qml.rotate() FROM generate_series(1, 19)) r")"
	dropdb_ $db
done
dropdb_ $src
finish
