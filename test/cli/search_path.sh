# test/cli/search_path.sh: sourced by test/cli/run.sh (its helpers, $QML
# and $tmp). A database whose owner set a hostile search_path (ALTER
# DATABASE ... SET search_path = trap, pg_catalog, which any database owner
# may do): schema trap shadows the operators, functions and type names the
# library's statements use unqualified (=, *, +, count, now, ::int8,
# ::text, ::jsonb). Each of them counts its calls in a sequence (which no
# rollback undoes) and notes itself in trap.calls. Every command, the
# worker runtime's fetch, complete, fail, heartbeat, release and LISTEN
# included, must leave the counter untouched: the library pins search_path
# on every connection (client/src/pool.c).

echo "# a hostile search_path set by the database owner"
tdb=qml_cli_trap
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $tdb WITH (FORCE)" -c "CREATE DATABASE $tdb" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d "$tdb" <<'EOF' || exit 1
CREATE EXTENSION qml;
CREATE SCHEMA trap;
CREATE SEQUENCE trap.hits;
CREATE TABLE trap.calls (what text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION trap.spy(what text) RETURNS boolean LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$
BEGIN
	PERFORM nextval('trap.hits');
	INSERT INTO trap.calls (what) VALUES (what);
	RETURN true;
END$$;
CREATE FUNCTION trap.eq(a int8, b int8) RETURNS boolean LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('= int8'); RETURN a = b; END$$;
CREATE OPERATOR trap.= (LEFTARG = int8, RIGHTARG = int8, FUNCTION = trap.eq);
CREATE FUNCTION trap.eq(a text, b text) RETURNS boolean LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('= text'); RETURN a = b; END$$;
CREATE OPERATOR trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trap.eq);
CREATE FUNCTION trap.eq(a name, b name) RETURNS boolean LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('= name'); RETURN a = b; END$$;
CREATE OPERATOR trap.= (LEFTARG = name, RIGHTARG = name, FUNCTION = trap.eq);
CREATE FUNCTION trap.eq(a qml.job_state, b qml.job_state) RETURNS boolean LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('= job_state'); RETURN a = b; END$$;
CREATE OPERATOR trap.= (LEFTARG = qml.job_state, RIGHTARG = qml.job_state, FUNCTION = trap.eq);
CREATE FUNCTION trap.mul(a int8, b interval) RETURNS interval LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('* interval'); RETURN a * b; END$$;
CREATE OPERATOR trap.* (LEFTARG = int8, RIGHTARG = interval, FUNCTION = trap.mul);
CREATE FUNCTION trap.mul(a numeric, b integer) RETURNS numeric LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('* numeric'); RETURN a * b; END$$;
CREATE OPERATOR trap.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = trap.mul);
CREATE FUNCTION trap.plus(a timestamptz, b interval) RETURNS timestamptz LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('+ timestamptz'); RETURN a + b; END$$;
CREATE OPERATOR trap.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = trap.plus);
CREATE FUNCTION trap.now() RETURNS timestamptz LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('now()'); RETURN now(); END$$;
CREATE FUNCTION trap.count_step(n int8) RETURNS int8 LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$BEGIN PERFORM trap.spy('count(*)'); RETURN n + 1; END$$;
CREATE AGGREGATE trap.count(*) (SFUNC = trap.count_step, STYPE = int8, INITCOND = '0');
CREATE DOMAIN trap.int8 AS pg_catalog.int8 CHECK (trap.spy('::int8'));
CREATE DOMAIN trap.text AS pg_catalog.text CHECK (trap.spy('::text'));
CREATE DOMAIN trap.jsonb AS pg_catalog.jsonb CHECK (trap.spy('::jsonb'));
-- the trap works: a plain session with the owner's path walks into it
SET search_path = trap, pg_catalog;
SELECT 1::int8 AS one, now() IS NOT NULL AS now \g /dev/null
RESET search_path;
EOF
# the owner's path for every new session; checks pin their own
psql -X -q -v ON_ERROR_STOP=1 -d "$tdb" -c "ALTER DATABASE $tdb SET search_path = trap, pg_catalog" || exit 1
tq() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$tdb" -c "SET search_path = pg_catalog, pg_temp" -c "$1"; }
hits() { tq "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM trap.hits"; }
[ "$(hits)" -gt 0 ] && ok "the trap catches an unpinned statement" || bad "the trap catches an unpinned statement"
tq "SELECT setval('trap.hits', 1, false); TRUNCATE trap.calls" >/dev/null

export PGDATABASE=$tdb
T=(timeout 60 "$QML")
expect "trap: migrate" 0 "${T[@]}" migrate
expect "trap: enqueue" 0 "${T[@]}" enqueue trap_ok '["x"]' --queue trapq --priority 3
id=$(echo "$out" | grep -o '[0-9][0-9]*' | head -1)
expect "trap: enqueue --delay --unique" 0 "${T[@]}" enqueue trap_later --queue trapq --delay 90s --unique trap-u --max-attempts 2
expect "trap: enqueue --at" 0 "${T[@]}" enqueue trap_at --queue trapq --at "2099-06-01 12:00"
expect "trap: stats" 0 "${T[@]}" stats
expect "trap: stats --json" 0 "${T[@]}" --json stats
expect "trap: status" 0 "${T[@]}" status
expect "trap: jobs" 0 "${T[@]}" jobs --state scheduled --queue trapq
expect "trap: job N" 0 "${T[@]}" job "$id"
expect "trap: job N --json" 0 "${T[@]}" job "$id" --json
expect "trap: pause" 0 "${T[@]}" pause trapq
expect "trap: resume" 0 "${T[@]}" resume trapq
expect "trap: recurring add" 0 "${T[@]}" recurring add trap-r '0 3 * * *' trap_cron
expect "trap: recurring list" 0 "${T[@]}" recurring list
expect "trap: recurring remove" 0 "${T[@]}" recurring remove trap-r
later=$(tq "SELECT id FROM qml.jobs WHERE method = 'trap_later'")
expect "trap: delete" 0 "${T[@]}" delete "$later"
expect "trap: retry" 0 "${T[@]}" retry "$later"

# the runtime: a job that succeeds, one that fails, one that runs past a
# 600 ms lease (heartbeat), and one still running at shutdown past the
# grace period (release)
printf '#!/bin/sh\nexit 0\n' >"$tmp/trap_ok.sh"
printf '#!/bin/sh\nexit 1\n' >"$tmp/trap_fail.sh"
printf '#!/bin/sh\nsleep 2\n' >"$tmp/trap_slow.sh"
printf '#!/bin/sh\nsleep 30\n' >"$tmp/trap_hold.sh"
chmod +x "$tmp"/trap_*.sh
tq "SELECT qml.enqueue('trap_fail', queue => 'trapq', max_attempts => 1);
    SELECT qml.enqueue('trap_slow', queue => 'trapq', priority => -1);
    SELECT qml.enqueue('trap_hold', queue => 'trapq', priority => -2)" >/dev/null
QML_LEASE=600 "$QML" worker --queues trapq --workers 1 --grace 300ms \
	--exec trap_ok="$tmp/trap_ok.sh" --exec trap_fail="$tmp/trap_fail.sh" \
	--exec trap_slow="$tmp/trap_slow.sh" --exec trap_hold="$tmp/trap_hold.sh" >"$tmp/trap_w.out" 2>&1 &
wpid=$!
pids+=("$wpid")
until_sql() {
	local i
	for i in $(seq 1 200); do [ "$(tq "$1")" = t ] && return 0; sleep 0.1; done
	return 1
}
until_sql "SELECT locked_until > started_at + interval '700 ms' FROM qml.jobs WHERE method = 'trap_slow'" &&
	ok "trap: heartbeats extended a 600 ms lease" || bad "trap: heartbeats extended a 600 ms lease"
until_sql "SELECT bool_and(state = CASE method WHEN 'trap_hold' THEN 'processing' ELSE 'succeeded' END::qml.job_state)
	 FROM qml.jobs WHERE method IN ('trap_slow', 'trap_hold')" ||
	bad "trap: the last job started" "$(cat "$tmp/trap_w.out")"
kill -TERM "$wpid"; wait "$wpid"
r=$(tq "SELECT string_agg(method || ':' || state, ' ' ORDER BY priority DESC) FROM qml.jobs
	 WHERE method IN ('trap_ok', 'trap_fail', 'trap_slow', 'trap_hold')")
[ "$r" = "trap_ok:succeeded trap_fail:failed trap_slow:succeeded trap_hold:enqueued" ] &&
	ok "trap: the worker completed, failed and released jobs" ||
	bad "trap: the worker completed, failed and released jobs" "$r"

calls=$(tq "SELECT string_agg(DISTINCT what, ', ') FROM trap.calls")
[ "$(hits)" = 0 ] && ok "no statement of the qml command or the runtime ran the owner's objects" ||
	bad "no statement of the qml command or the runtime ran the owner's objects" "$(hits) calls: $calls"
export PGDATABASE=qml_cli_test
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $tdb WITH (FORCE)" >/dev/null 2>&1
