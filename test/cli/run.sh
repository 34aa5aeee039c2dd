#!/usr/bin/env bash
# test/cli/run.sh: the "cli" suite. The qml command end to end against the
# running cluster (PGHOST/PGPORT/PGUSER from scripts/env.sh): help and exit
# codes, bad input, every command, and `qml worker --exec` with shell
# scripts that succeed, fail and are retried, fail for good, crash, time
# out, and a graceful SIGTERM. Prints ok/FAIL per check and exits non-zero
# if any failed.
#
# Databases of its own, created afresh: qml_cli_test, qml_cli_noext (no
# extension), qml_cli_old (recurring jobs taken away).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QML_WORKERS QML_QUEUES QML_AUTO_MIGRATE QML_DASHBOARD_TOKEN QML_DASHBOARD_PUBLIC_URL
export PGDATABASE=qml_cli_test
# QML_BIN: another build of qml (make check-asan's)
QML=${QML_BIN:-$root/client/qml}
tmp=$(mktemp -d /tmp/qml-cli-test.XXXXXX)
pids=()
as_owner() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[ -f "$tmp/nofiles/data/postmaster.pid" ] &&
		as_owner "'$tmp/nofiles/tree$(pg_config --bindir)/pg_ctl' -D '$tmp/nofiles/data' -m immediate -w stop" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

make -s client/qml || exit 1
for db in qml_cli_test qml_cli_noext qml_cli_old; do
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" || exit 1
done

. "$root/test/cli/lib.sh"
. "$root/test/lib/wait_sql.sh"
is_json() { q -c "SELECT \$json\$$1\$json\$::jsonb IS NOT NULL" >/dev/null 2>&1; }

echo "# help and usage"
expect "qml --help exits 0" 0 "$QML" --help
has "Exit codes" "the help documents the exit codes"
for c in demo enqueue jobs job retry delete stats pause resume recurring worker migrate status dashboard; do
	out=$("$QML" "$c" --help 2>&1); rc=$?
	{ [ $rc = 0 ] && [[ "$out" == *"usage: qml $c"* ]]; } && ok "qml $c --help" || bad "qml $c --help" "exit $rc"
done
expect "qml help worker" 0 "$QML" help worker
has "exit 65" "worker help explains exit 65"
for c in dashboard demo; do
	expect "qml help $c" 0 "$QML" help "$c"
	has "[--public-url URL]" "$c help: --public-url in its usage line"
	has "QML_DASHBOARD_PUBLIC_URL" "... and its variable"
done
has "reverse proxy" "demo help: what --public-url is for"
expect "qml help dashboard" 0 "$QML" help dashboard
has "comma-separated or the" "dashboard help: several public URLs, how"
expect "qml --version" 0 "$QML" --version
expect "no command: usage, exit 2" 2 "$QML"
expect "unknown command: exit 2" 2 "$QML" frobnicate
has "unknown command 'frobnicate'" "naming it"
expect "unknown option: exit 2" 2 "$QML" jobs --frob
has "unknown option '--frob'" "naming it"
expect "unknown global option: exit 2" 2 "$QML" --frob stats
expect "missing option value: exit 2" 2 "$QML" jobs --limit
expect "--json usage errors are JSON" 2 "$QML" --json frobnicate
is_json "$out" && ok "the error is valid JSON" || bad "the error is valid JSON" "$out"

echo "# bad connections and no extension: a message and an exit code, never a hang"
t0=$SECONDS
expect "unreachable server: exit 3" 3 timeout 20 "$QML" -d postgresql://postgres@127.0.0.1:1/none stats
has "cannot connect" "says it cannot connect"
expect "malformed URL: exit 3" 3 env DATABASE_URL='postgresql://%zz' timeout 20 "$QML" stats
expect "malformed conninfo: exit 3" 3 timeout 20 "$QML" --database-url 'host= port=notaport' jobs
expect "no such database: exit 3" 3 timeout 20 "$QML" -d dbname=qml_cli_no_such_db status
has "qml_cli_no_such_db" "naming it"
expect "worker with a bad connection: exit 3" 3 env DATABASE_URL=postgresql://postgres@127.0.0.1:1/none timeout 20 "$QML" worker --exec a=true
expect "demo with a bad connection: exit 3" 3 env DATABASE_URL=postgresql://postgres@127.0.0.1:1/none timeout 20 "$QML" demo
[ $((SECONDS - t0)) -lt 30 ] && ok "all of that quickly ($((SECONDS - t0)) s)" || bad "bad connections answer quickly" "$((SECONDS - t0)) s"
expect "malformed QML_MAX_CONNECTIONS: exit 2" 2 env QML_MAX_CONNECTIONS=lots "$QML" stats
has "QML_MAX_CONNECTIONS" "naming the variable"
expect "stats without the extension: exit 4" 4 "$QML" -d dbname=qml_cli_noext stats
has "not installed" "saying it is not installed"
has "qml migrate" "and what to do"
expect "status without the extension: exit 4" 4 "$QML" -d dbname=qml_cli_noext status
has "not installed in this database" "status says so"
expect "worker without the extension, auto-migrate off: exit 4" 4 env QML_AUTO_MIGRATE=false timeout 20 "$QML" -d dbname=qml_cli_noext worker --exec a=true
expect "--json errors are JSON" 4 "$QML" --json -d dbname=qml_cli_noext jobs
is_json "$out" && ok "the error is valid JSON" || bad "the error is valid JSON" "$out"
has '"no_extension"' "with its status"

echo "# a server without qml's files (a copy of the PostgreSQL tree without them)"
# The binaries find share/ and lib/ relative to themselves, so a copy without
# qml.control is a server on which CREATE EXTENSION qml cannot work. Unix
# socket only: no TCP port to collide with.
nofiles=$tmp/nofiles
pgbin=$(pg_config --bindir)
pgshare=$(pg_config --sharedir)
if [ -d "$pgbin" ] && [ -d "$pgshare" ] && [ "$(dirname "$(dirname "$pgbin")")" = "$(dirname "$(dirname "$(pg_config --pkglibdir)")")" ]; then
	mkdir -p "$nofiles/tree$(dirname "$(dirname "$pgbin")")" "$nofiles/tree$(dirname "$pgshare")" "$nofiles/sock"
	cp -a "$(dirname "$pgbin")" "$nofiles/tree$(dirname "$(dirname "$pgbin")")/"
	cp -a "$pgshare" "$nofiles/tree$(dirname "$pgshare")/"
	rm -f "$nofiles/tree$pgshare"/extension/qml* "$nofiles/tree$(dirname "$pgbin")"/lib/qml.so
	[ "$(id -u)" = 0 ] && chown -R postgres: "$nofiles" && chmod 755 "$tmp"
	nb=$nofiles/tree$pgbin
	if as_owner "'$nb/initdb' -D '$nofiles/data' -A trust -U postgres >'$nofiles/initdb.log' 2>&1" &&
		as_owner "'$nb/pg_ctl' -D '$nofiles/data' -l '$nofiles/log' -w -t 30 -o \"-c listen_addresses='' -c unix_socket_directories='$nofiles/sock' -p 5599\" start >/dev/null"; then
		nf="host=$nofiles/sock port=5599 dbname=postgres user=postgres"
		expect "migrate on a server without qml's files: exit 4" 4 "$QML" -d "$nf" migrate
		has "not available on the database server" "saying the files are missing there"
		has "make install" "and how to install them"
		expect "status there: exit 4" 4 "$QML" -d "$nf" status
		has "not available on this server" "status says so"
		expect "worker there: exit 4, no hang" 4 timeout 20 "$QML" -d "$nf" worker --exec a=true
		as_owner "'$nb/pg_ctl' -D '$nofiles/data' -m immediate -w stop" >/dev/null 2>&1
	else
		bad "a server without qml's files starts" "$(tail -3 "$nofiles/initdb.log" "$nofiles/log" 2>/dev/null | tr '\n' ' ')"
	fi
else
	echo "# skipped: this PostgreSQL's layout is not bin/ and lib/ under one directory"
fi

echo "# migrate, status"
expect "qml migrate" 0 "$QML" migrate
has "created" "creates the extension"
[ "$(q -c "SELECT count(*) FROM pg_extension WHERE extname = 'qml'")" = 1 ] && ok "it is there" || bad "it is there"
expect "qml migrate again" 0 "$QML" migrate
has "already current" "nothing to do"
expect "qml status" 0 "$QML" status
has "installed" "shows the version"
has "scheduler" "shows the scheduler"
expect "qml status --json" 0 "$QML" status --json
is_json "$out" && ok "status JSON" || bad "status JSON" "$out"
has '"scheduler"' "with the scheduler"
# shared_preload_libraries is hidden from a role without pg_read_all_settings
q -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS qml_cli_status" \
	-c "CREATE ROLE qml_cli_status LOGIN" -c "SELECT qml.grant_worker('qml_cli_status')" >/dev/null
PGUSER=qml_cli_status expect "qml status as a worker role" 0 "$QML" status
has "user qml_cli_status" "as that role"
PGUSER=qml_cli_status expect "qml status --json as a worker role" 0 "$QML" status --json
has '"preloaded": null' "preloaded: unknown to that role"
q -c "DROP OWNED BY qml_cli_status" -c "DROP ROLE qml_cli_status" >/dev/null

echo "# enqueue, jobs, job, retry, delete"
expect "enqueue prints an id" 0 "$QML" enqueue send_email '["a@b.c"]'
id=$out
[[ "$id" =~ ^[0-9]+$ ]] && ok "an id: $id" || bad "an id" "$id"
[ "$(q -c "SELECT method || ' ' || state || ' ' || arguments::text FROM qml.jobs WHERE id = ${id:-0}")" = 'send_email enqueued ["a@b.c"]' ] &&
	ok "stored as given" || bad "stored as given"
expect "enqueue with options" 0 "$QML" enqueue report '{"m": 1}' --queue reports --priority 5 --delay 90s --max-attempts 2
sid=$out
[ "$(q -c "SELECT state || ' ' || queue || ' ' || priority || ' ' || max_attempts || ' ' || (run_at > now() + interval '80 s') FROM qml.jobs WHERE id = ${sid:-0}")" = "scheduled reports 5 2 true" ] &&
	ok "options applied" || bad "options applied" "$(q -c "SELECT row_to_json(j) FROM qml.jobs j WHERE id = ${sid:-0}")"
expect "enqueue --at in the past" 0 "$QML" enqueue past --at "2020-01-01T00:00:00Z"
[ "$(q -c "SELECT state FROM qml.jobs WHERE id = ${out:-0}")" = enqueued ] && ok "is enqueued" || bad "is enqueued"
expect "enqueue --at local time" 0 "$QML" enqueue future --at "2099-06-01 12:00"
[ "$(q -c "SELECT state FROM qml.jobs WHERE id = ${out:-0}")" = scheduled ] && ok "is scheduled" || bad "is scheduled"
expect "enqueue --unique" 0 "$QML" enqueue nightly --unique night-1
u1=$out
expect "enqueue --unique again" 0 "$QML" enqueue nightly --unique night-1
[ "$u1" = "$out" ] && ok "same id for the same key" || bad "same id for the same key" "$u1 vs $out"
expect "enqueue --json" 0 "$QML" enqueue j --json
is_json "$out" && [[ "$out" == *'"id"'* ]] && ok "prints {\"id\": N}" || bad "prints {\"id\": N}" "$out"
expect "invalid JSON: exit 2" 2 "$QML" enqueue m '{"a":'
has "not valid JSON" "saying so"
expect "no method: exit 2" 2 "$QML" enqueue
expect "bad --delay: exit 2" 2 "$QML" enqueue m --delay soon
expect "bad --at: exit 2" 2 "$QML" enqueue m --at yesterday-ish
# an epoch whose microseconds wrapped around to a time in 2020 before the fix
expect "--at past 64-bit microseconds: exit 2" 2 "$QML" enqueue m --at 18448344073710
expect "bad --priority: exit 2" 2 "$QML" enqueue m --priority high
expect "empty queue (the server's check): exit 2" 2 "$QML" enqueue m --queue ''
expect "qml jobs" 0 "$QML" jobs
has "send_email" "lists the job"
has "ATTEMPTS" "as a table"
expect "qml jobs --state scheduled --queue reports" 0 "$QML" jobs --state scheduled --queue reports
has "report" "filters"
expect "qml jobs --json --limit 2" 0 "$QML" jobs --json --limit 2
[ "$(q -c "SELECT jsonb_array_length(\$j\$$out\$j\$)")" = 2 ] && ok "a JSON array of 2" || bad "a JSON array of 2" "$out"
expect "jobs --state bogus: exit 2" 2 "$QML" jobs --state bogus
expect "qml job ID" 0 "$QML" job "$id"
has "history" "with its history"
has "enqueued" "showing the state"
expect "qml job ID --json" 0 "$QML" job "$id" --json
is_json "$out" && [[ "$out" == *'"history"'* ]] && ok "job JSON with history" || bad "job JSON with history" "$out"
expect "job of a missing id: exit 5" 5 "$QML" job 987654321
has "does not exist" "saying so"
expect "job of a non-number: exit 2" 2 "$QML" job abc
expect "job +1: exit 2 (an id is plain digits)" 2 "$QML" job +1
has "not a job id" "saying it is not a job id"
expect "worker --name '': exit 2" 2 timeout 10 "$QML" worker --exec m=true --name ''
has "--name must not be empty" "saying the name must not be empty"
expect "retry a live job: exit 1" 1 "$QML" retry "$id"
has "only finished jobs" "explaining why"
expect "delete" 0 "$QML" delete "$id"
[ "$(q -c "SELECT state FROM qml.jobs WHERE id = $id")" = deleted ] && ok "deleted" || bad "deleted"
expect "delete again: exit 1" 1 "$QML" delete "$id"
expect "retry the deleted job" 0 "$QML" retry "$id"
[ "$(q -c "SELECT state FROM qml.jobs WHERE id = $id")" = enqueued ] && ok "enqueued again" || bad "enqueued again"
expect "retry a missing job: exit 5" 5 "$QML" retry 987654321
expect "delete a missing job: exit 5" 5 "$QML" delete 987654321

echo "# stats, pause, resume"
expect "qml stats" 0 "$QML" stats
has "reports" "per queue"
has "total" "with a total"
expect "qml stats --json" 0 "$QML" --json stats
is_json "$out" && [[ "$out" == *'"scheduled"'* ]] && ok "stats JSON" || bad "stats JSON" "$out"
expect "qml pause" 0 "$QML" pause reports
has "paused" "says so"
[ "$(q -c "SELECT paused FROM qml.queues WHERE name = 'reports'")" = t ] && ok "the queue is paused" || bad "the queue is paused"
expect "qml resume" 0 "$QML" resume reports
[ "$(q -c "SELECT paused FROM qml.queues WHERE name = 'reports'")" = f ] && ok "resumed" || bad "resumed"
expect "pause without a queue: exit 2" 2 "$QML" pause
# an empty name (an unset shell variable, most often) is a usage error, not
# "no jobs" or a warning about a queue never seen
queues_before=$(q -c "SELECT count(*) FROM qml.queues")
for args in "jobs --queue=" "jobs --method=" "stats --queue=" "pause " "resume "; do
	read -r -a words <<<"$args"
	[ "${args: -1}" = " " ] && words+=("")
	expect "qml $args'': exit 2" 2 "$QML" "${words[@]}"
	has "must not be empty" "... saying the name must not be empty"
	case "$out" in *warning*) bad "... and no warning about an unknown queue first" "$out";; esac
done
[ "$(q -c "SELECT count(*) FROM qml.queues")" = "$queues_before" ] && ok "no queue was made by any of them" || bad "no queue was made"
# a time that names no real day, or an offset that is none, is refused,
# not moved (strptime takes February 30th, mktime makes it March 2nd)
jobs_before=$(q -c "SELECT count(*) FROM qml.jobs")
for at in "2025-02-30 12:00" 2025-02-29 2025-04-31T00:00:00Z 2025-01-31T23:59:60Z \
	2025-01-31T12:00:00+05:00x 2025-01-31T12:00:00+99:00 2025-01-31T12:00:00-5; do
	expect "enqueue --at '$at': exit 2" 2 "$QML" enqueue m '[1]' --at "$at"
	has "cannot read" "... saying it cannot read the time"
done
[ "$(q -c "SELECT count(*) FROM qml.jobs")" = "$jobs_before" ] && ok "no job was made by any of them" || bad "no job was made"
expect "enqueue --at 2040-02-29T12:00:00+05:30 (a leap day, an offset): exit 0" 0 "$QML" enqueue m '[1]' --at 2040-02-29T12:00:00+05:30
[ "$(q -c "SELECT run_at = '2040-02-29 06:30:00+00' FROM qml.jobs WHERE id = $out")" = t ] &&
	ok "... at that instant" || bad "... at that instant" "$(q -c "SELECT run_at FROM qml.jobs WHERE id = $out")"
expect "job ' 1' (a blank before the id): exit 2" 2 "$QML" job ' 1'
expect "enqueue --priority ' 5': exit 2" 2 "$QML" enqueue m --priority ' 5'
for o in -d --database-url; do
	expect "qml $o without its URL: exit 2" 2 "$QML" $o
	has "option '$o' needs a value" "... saying it needs a value"
	expect "qml stats $o without its URL: exit 2" 2 "$QML" stats $o
	has "needs a value" "... saying it needs a value"
done
# --listen takes one HOST:PORT with a port up to 65535 (civetweb reads a
# comma as a second address to listen on: another interface)
for l in 127.0.0.1:65536 127.0.0.1:99999 127.0.0.1:0000080 "127.0.0.1:8080,0.0.0.0:8081" "127.0.0.1:8080s"; do
	expect "qml dashboard --listen $l: exit 2" 2 timeout 10 "$QML" dashboard --listen "$l"
	has "HOST:PORT" "... saying what --listen wants"
	expect "qml demo --listen $l: exit 2" 2 timeout 10 "$QML" demo --listen "$l"
done

echo "# worker names and the dashboard's token: refused at the start, not in every fetch"
expect "worker --exec with a method not UTF-8: exit 2" 2 timeout 10 "$QML" worker --exec $'m\xff=true'
has "not valid UTF-8" "... saying so"
expect "worker --queues with a name not UTF-8: exit 2" 2 timeout 10 "$QML" worker --exec m=true --queues $'a,\xff'
has "valid UTF-8" "... saying so"
# limits count characters, as PostgreSQL's: 100 two-byte characters fit in 128
expect "worker --queues with 100 'é' (200 bytes): it runs" 124 timeout 3 "$QML" worker --exec m=true --queues "$(printf 'é%.0s' $(seq 100))"
for tok in $'a\nb' 'a b' $'caf\xc3\xa9'; do
	expect "dashboard --token $(printf %q "$tok"): exit 2" 2 timeout 10 "$QML" dashboard --listen 127.0.0.1:0 --token "$tok"
	has "printable ASCII" "... saying what a token may hold"
done
expect "QML_DASHBOARD_TOKEN with a blank: exit 2" 2 env QML_DASHBOARD_TOKEN='a b' timeout 10 "$QML" dashboard --listen 127.0.0.1:0
# --public-url (and its variable) are checked before anything listens
for u in example.com https://example.com/qml 'https://a,,https://b' https://example.com:0; do
	expect "dashboard --public-url $u: exit 2" 2 timeout 10 "$QML" dashboard --listen 127.0.0.1:0 --public-url "$u"
	has "--public-url wants" "... saying what --public-url wants"
	expect "demo --public-url $u: exit 2" 2 timeout 10 "$QML" demo --listen 127.0.0.1:0 --public-url "$u"
done
expect "QML_DASHBOARD_PUBLIC_URL=example.com: exit 2" 2 env QML_DASHBOARD_PUBLIC_URL=example.com timeout 10 "$QML" dashboard --listen 127.0.0.1:0
has "QML_DASHBOARD_PUBLIC_URL wants" "... naming the variable"

echo "# text from the database is shown, not obeyed by the terminal"
# a producer's method or queue, a worker's error: ESC and the C1 controls
# (U+009B is a one-character CSI) would move the cursor, retitle or clear
# the window; the commands write them out as \x1b, \u009b
ctl_id=$(q -c "SELECT qml.enqueue(E'ctl\x1b]0;pwned\x07', E'[\"\\u009b31m\"]', queue => E'ctlq\x1b[2J', unique_key => E'k\x1b[1m')")
q -c "SELECT id FROM qml.fetch(E'w\x1b[5m', ARRAY[E'ctlq\x1b[2J'], session_lease => false)" \
	-c "SELECT qml.fail($ctl_id, E'w\x1b[5m', E'boom\x1b[31m red\nline2 \u009b1m', false)" >/dev/null
q -c "SELECT qml.add_recurring(E'ctl\x1b[2J', '@daily', E'm\x1b[2J', queue => 'ctl_recurring')" >/dev/null
for c in "jobs --queue=ctlq"$'\x1b'"[2J" "job $ctl_id" "stats" "recurring list"; do
	read -r -a words <<<"$c"
	out=$("$QML" "${words[@]}" 2>&1)
	if printf %s "$out" | LC_ALL=C grep -q $'\x1b\|\xc2\x9b'; then
		bad "qml $c: no control character reaches the terminal" "$(printf %s "$out" | cat -v | head -3)"
	else
		ok "qml $c: no control character reaches the terminal"
	fi
	case "$out" in *'\x1b'*) ok "... it is written out as \\x1b";; *) bad "... it is written out as \\x1b" "$out";; esac
done
out=$("$QML" job "$ctl_id")
case "$out" in *'\u009b1m'*'line2'*) ok "qml job: a C1 control as \\u009b, the error's lines kept";;
	*) bad "qml job: a C1 control as \\u009b, the error's lines kept" "$out";; esac
out=$("$QML" --json job "$ctl_id")
[ "$(q -c "SELECT (\$j\$$out\$j\$::jsonb)->>'method' = E'ctl\x1b]0;pwned\x07'")" = t ] &&
	ok "--json keeps the text as it is (JSON escapes it)" || bad "--json keeps the text as it is" "$out"
q -c "SELECT qml.remove_recurring(E'ctl\x1b[2J')" >/dev/null
# a direction override (U+202E) shows the rest of the line reversed: written out too
bidi_id=$(q -c "SELECT qml.enqueue(E'pay\u202etxt.exe', queue => 'bidiq')")
out=$("$QML" job "$bidi_id")
case "$out" in *'pay\u202etxt.exe'*) ok "qml job: a direction override is written out as \u202e";;
	*) bad "qml job: a direction override is written out as \u202e" "$out";; esac
q -c "SELECT qml.delete($bidi_id)" >/dev/null
# the worker's log names methods and queues: a job with no handler is logged
q -c "SELECT qml.enqueue(E'ctlw\x1b[2J\u2066', queue => E'ctlwq\x1b]0;x\x07')" >/dev/null
timeout 4 "$QML" worker --queues $'ctlwq\x1b]0;x\x07' --exec m=true --poll-interval 100ms 2>"$tmp/ctlw.err"
if LC_ALL=C grep -q $'\x1b\|\xe2\x81\xa6' "$tmp/ctlw.err"; then
	bad "qml worker: no control character or override of a method or queue reaches the terminal" "$(cat -v "$tmp/ctlw.err" | head -5)"
else
	ok "qml worker: no control character or override of a method or queue reaches the terminal"
fi
grep -q 'no handler for method "ctlw\\x1b\[2J\\u2066"' "$tmp/ctlw.err" && grep -q 'queues .*ctlwq\\x1b\]0;x\\x07' "$tmp/ctlw.err" &&
	ok "... the method and the queue are written out (\\x1b, \\u2066)" ||
	bad "... the method and the queue are written out (\\x1b, \\u2066)" "$(cat "$tmp/ctlw.err")"
q -c "SELECT qml.delete(id) FROM qml.jobs WHERE queue = E'ctlwq\x1b]0;x\x07'" >/dev/null

echo "# recurring"
expect "recurring add" 0 "$QML" recurring add nightly-cleanup '0 3 * * *' cleanup '["all"]' --queue maintenance
expect "recurring list" 0 "$QML" recurring list
has "nightly-cleanup" "lists it"
expect "recurring list --json" 0 "$QML" recurring list --json
is_json "$out" && ok "recurring JSON" || bad "recurring JSON" "$out"
expect "recurring add with a bad schedule: exit 2" 2 "$QML" recurring add bad 'every tuesday-ish' x
expect "recurring remove" 0 "$QML" recurring remove nightly-cleanup
expect "recurring remove again: exit 5" 5 "$QML" recurring remove nightly-cleanup
expect "recurring with no subcommand: exit 2" 2 "$QML" recurring
expect "recurring frob: exit 2" 2 "$QML" recurring frob
"$QML" -d dbname=qml_cli_old migrate >/dev/null
q -d qml_cli_old -c "ALTER EXTENSION qml DROP TABLE qml.recurring" -c "DROP TABLE qml.recurring CASCADE" >/dev/null 2>&1
q -d qml_cli_old -c "DO \$\$ DECLARE f regprocedure; BEGIN FOR f IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'qml' AND p.proname IN ('add_recurring', 'remove_recurring') LOOP EXECUTE format('ALTER EXTENSION qml DROP FUNCTION %s', f); EXECUTE format('DROP FUNCTION %s', f); END LOOP; END \$\$" >/dev/null
expect "recurring add without qml.add_recurring: exit 4" 4 "$QML" -d dbname=qml_cli_old recurring add n '* * * * *' m
has "no recurring jobs" "saying the installed extension lacks them"
expect "recurring list without qml.recurring: exit 4" 4 "$QML" -d dbname=qml_cli_old recurring list

echo "# worker --exec"
cat >"$tmp/ok.sh" <<'SH'
#!/bin/sh
# echoes what it got: id, attempt, arguments
args=$(cat)
printf '{"id": %s, "attempt": %s, "args": %s}\n' "$QML_JOB_ID" "$QML_ATTEMPT" "$args"
SH
printf '#!/bin/sh\ncat >/dev/null\necho "bad input, giving up" >&2\nexit 65\n' >"$tmp/fail.sh"
printf '#!/bin/sh\necho "database busy, later" >&2\nexit 3\n' >"$tmp/retry.sh"
printf '#!/bin/sh\necho "about to crash" >&2\nkill -SEGV $$\n' >"$tmp/crash.sh"
printf '#!/bin/sh\necho this is not json\n' >"$tmp/text.sh"
printf '#!/bin/sh\n[ "$QML_ATTEMPT" -ge 2 ] && { echo "{\\"second\\": true}"; exit 0; }\necho "first try fails" >&2\nexit 1\n' >"$tmp/flaky.sh"
printf '#!/bin/sh\nexec sleep 31.5\n' >"$tmp/slow.sh"
printf '#!/bin/sh\nwc -c | tr -d " \\n"\n' >"$tmp/count.sh"
printf '#!/bin/sh\nhead -c 20000 /dev/zero | tr "\\\\0" x >&2\necho END-OF-STDERR >&2\nexit 4\n' >"$tmp/noisy.sh"
# invalid UTF-8 on stderr; a short message followed by much white space
printf '#!/bin/sh\nprintf "bad \\377 byte\\n" >&2\nexit 65\n' >"$tmp/binary.sh"
printf '#!/bin/sh\necho short message >&2\nhead -c 2500 /dev/zero | tr "\\0" "\\n" >&2\nexit 65\n' >"$tmp/trailing.sh"
chmod +x "$tmp"/*.sh

for i in $(seq 1 50); do echo "SELECT qml.enqueue('ok_job', '[$i]', queue => 'w');"; done | q >/dev/null
q -c "SELECT qml.enqueue('fail_job', '[\"x\"]', queue => 'w')" \
	-c "SELECT qml.enqueue('retry_job', '[\"y\"]', queue => 'w', max_attempts => 5)" \
	-c "SELECT qml.enqueue('crash_job', queue => 'w', max_attempts => 5)" \
	-c "SELECT qml.enqueue('text_job', queue => 'w')" \
	-c "SELECT qml.enqueue('flaky_job', queue => 'w', backoff_base => '200 ms')" \
	-c "SELECT qml.enqueue('unknown_job', queue => 'w')" \
	-c "SELECT qml.enqueue('noisy_job', queue => 'w', max_attempts => 5)" \
	-c "SELECT qml.enqueue('binary_job', queue => 'w')" \
	-c "SELECT qml.enqueue('trailing_job', queue => 'w')" \
	-c "SELECT qml.enqueue('count_job', jsonb_build_array(repeat('z', 300000)), queue => 'w')" >/dev/null
"$QML" worker --queues w --workers 4 --poll-interval 200ms -v \
	--exec ok_job="$tmp/ok.sh" --exec fail_job="$tmp/fail.sh" --exec retry_job="$tmp/retry.sh" \
	--exec crash_job="$tmp/crash.sh" --exec text_job="$tmp/text.sh" --exec flaky_job="$tmp/flaky.sh" \
	--exec noisy_job="$tmp/noisy.sh" --exec count_job="$tmp/count.sh" \
	--exec binary_job="$tmp/binary.sh" --exec trailing_job="$tmp/trailing.sh" >"$tmp/worker.out" 2>"$tmp/worker.err" &
wpid=$!
pids+=("$wpid")
wait_sql "SELECT count(*) FROM qml.jobs WHERE method = 'ok_job' AND state = 'succeeded'" 50 20 &&
	ok "worker --exec ran 50 jobs" || bad "worker --exec ran 50 jobs" "$(tail -5 "$tmp/worker.err")"
# the scheduler promotes the flaky job's retry; without it, do it by hand
for i in $(seq 1 50); do
	[ "$(q -c "SELECT state FROM qml.jobs WHERE method = 'flaky_job'")" = succeeded ] && break
	q -c "SELECT qml.maintain()" >/dev/null 2>&1; sleep 0.2
done
r=$(q -c "SELECT (result->>'id')::bigint = id AND (result->>'attempt') = '1' AND result->'args' = arguments FROM qml.jobs WHERE method = 'ok_job' LIMIT 1")
[ "$r" = t ] && ok "stdin, QML_JOB_ID and QML_ATTEMPT reach the command; JSON stdout is the result" || bad "stdin/env/result" "$r"
r=$(q -c "SELECT state || '|' || attempts || '|' || last_error FROM qml.jobs WHERE method = 'fail_job'")
[ "$r" = "failed|1|bad input, giving up (exit status 65)" ] && ok "exit 65: failed for good, stderr kept" || bad "exit 65: failed, no retry" "$r"
r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE method = 'retry_job'")
case "$r" in awaiting_retry*"database busy, later (exit status 3)"*|enqueued*later*|processing*) ok "exit 3: retried, stderr kept ($r)";; *) bad "exit 3: retried" "$r";; esac
r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE method = 'crash_job'")
case "$r" in awaiting_retry*"about to crash (killed by signal 11 (Segmentation fault))"|enqueued*crash*|processing*) ok "a crashing command: retried, with the signal";; *) bad "a crashing command: retried" "$r";; esac
r=$(q -c "SELECT state || '|' || coalesce(result::text, 'null') FROM qml.jobs WHERE method = 'text_job'")
[ "$r" = "succeeded|null" ] && ok "non-JSON stdout: success without a result" || bad "non-JSON stdout" "$r"
r=$(q -c "SELECT state || '|' || attempts || '|' || result::text FROM qml.jobs WHERE method = 'flaky_job'")
[ "$r" = 'succeeded|2|{"second": true}' ] && ok "failed once, retried, then succeeded" || bad "retry then success" "$r"
r=$(q -c "SELECT string_agg(coalesce(from_state::text, 'new') || '>' || to_state, ' ' ORDER BY e.at, e.id) FROM qml.job_events e JOIN qml.jobs j ON j.id = e.job_id WHERE j.method = 'flaky_job'")
[[ "$r" == *"processing>awaiting_retry"*"processing>succeeded"* ]] && ok "its history shows the retry" || bad "its history shows the retry" "$r"
r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE method = 'unknown_job'")
case "$r" in awaiting_retry*"no handler"*unknown_job*|enqueued*"no handler"*unknown_job*|processing*"no handler"*unknown_job*)
	ok "a method without --exec is retried, naming it";; *) bad "a method without --exec is retried" "$r";; esac
r=$(grep -c 'warning: no handler for method "unknown_job"' "$tmp/worker.err")
[ "$r" = 1 ] && ok "the worker warns once, naming the method" || bad "the worker warns once, naming the method" "$r warnings"
r=$(q -c "SELECT length(last_error) < 2200 AND last_error LIKE '%END-OF-STDERR (exit status 4)' FROM qml.jobs WHERE method = 'noisy_job'")
[ "$r" = t ] && ok "a long stderr: its tail is the error" || bad "a long stderr: its tail" "$r"
wait_sql "SELECT count(*) FROM qml.jobs WHERE method IN ('binary_job', 'trailing_job') AND state = 'failed'" 2 10
r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE method = 'binary_job'")
[ "$r" = "failed|bad ? byte (exit status 65)" ] && ok "invalid UTF-8 on stderr: failed, the bad byte as ?" || bad "invalid UTF-8 on stderr" "$r"
r=$(q -c "SELECT state || '|' || last_error FROM qml.jobs WHERE method = 'trailing_job'")
[ "$r" = "failed|short message (exit status 65)" ] && ok "stderr's end before 2500 newlines is the error" || bad "stderr's end before much white space" "$(echo "$r" | head -c 100)"
r=$(q -c "SELECT state || '|' || result::text || '|' || length(arguments::text) FROM qml.jobs WHERE method = 'count_job'")
[ "$r" = "succeeded|300004|300004" ] && ok "300 kB of arguments through stdin" || bad "300 kB of arguments through stdin" "$r"
grep -q "job .* fail_job: failed for good after [0-9]* ms (attempt 1/[0-9]*)" "$tmp/worker.err" && ok "-v logs every job" || bad "-v logs every job" "$(tail -3 "$tmp/worker.err")"
kill -TERM "$wpid"
for i in $(seq 1 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$wpid" 2>/dev/null; then bad "SIGTERM stops the worker within 10 s"; else
	wait "$wpid"; rc=$?
	[ $rc = 0 ] && ok "SIGTERM: the worker stops, exit 0" || bad "SIGTERM: exit 0" "exit $rc"
fi
[ "$(q -c "SELECT count(*) FROM qml.jobs WHERE state = 'processing'")" = 0 ] && ok "nothing left processing" || bad "nothing left processing"
grep -q "received SIGTERM" "$tmp/worker.err" && ok "it logged the signal" || bad "it logged the signal"

echo "# worker: timeout, graceful stop mid-job, stop past the grace period"
q -c "SELECT qml.enqueue('slow_job', queue => 'slow', max_attempts => 1)" >/dev/null
"$QML" worker --queues slow --exec slow_job="$tmp/slow.sh" --timeout 500ms >"$tmp/w2.out" 2>"$tmp/w2.err" &
wpid=$!
pids+=("$wpid")
wait_sql "SELECT state FROM qml.jobs WHERE method = 'slow_job'" failed 10 && ok "a job past --timeout is reported failed" || bad "timeout" "$(tail -3 "$tmp/w2.err")"
r=$(q -c "SELECT last_error FROM qml.jobs WHERE method = 'slow_job'")
case "$r" in *"timed out"*) ok "as timed out";; *) bad "as timed out" "$r";; esac
gone "sleep 31.5" && ok "the command's process group is killed" || bad "the command's process group is killed"
kill -TERM "$wpid"; wait "$wpid"; rc=$?
[ $rc = 0 ] && ok "idle worker stops on SIGTERM, exit 0" || bad "idle worker stops, exit 0" "exit $rc"

# jobs of 3 s: the SIGTERM must come while the first two run, and on a
# loaded machine noticing that they run (psql polls) may take a while
printf '#!/bin/sh\nsleep 3\necho "{}"\n' >"$tmp/second.sh"; chmod +x "$tmp/second.sh"
for i in 1 2 3 4 5 6; do q -c "SELECT qml.enqueue('second_job', queue => 'gs')" >/dev/null; done
"$QML" worker --queues gs --workers 2 --exec second_job="$tmp/second.sh" >"$tmp/w3.out" 2>"$tmp/w3.err" &
wpid=$!
pids+=("$wpid")
wait_sql "SELECT count(*) FROM qml.jobs WHERE queue = 'gs' AND state = 'processing'" 2 10
kill -TERM "$wpid"; wait "$wpid"; rc=$?
[ $rc = 0 ] && ok "SIGTERM mid-job: exit 0" || bad "SIGTERM mid-job: exit 0" "exit $rc"
r=$(q -c "SELECT count(*) FILTER (WHERE state = 'succeeded') || ' ' || count(*) FILTER (WHERE state = 'enqueued' AND attempts = 0) || ' ' || count(*) FILTER (WHERE state = 'processing') FROM qml.jobs WHERE queue = 'gs'")
[ "$r" = "2 4 0" ] && ok "running jobs finished, the rest stayed queued, nothing processing" || bad "graceful stop mid-job" "succeeded/enqueued/processing: $r"

for i in 1 2; do q -c "SELECT qml.enqueue('slow_job', queue => 'pg')" >/dev/null; done
"$QML" worker --queues pg --workers 2 --grace 300ms --exec slow_job="$tmp/slow.sh" >"$tmp/w4.out" 2>"$tmp/w4.err" &
wpid=$!
pids+=("$wpid")
wait_sql "SELECT count(*) FROM qml.jobs WHERE queue = 'pg' AND state = 'processing'" 2 10
t0=$SECONDS
kill -TERM "$wpid"; wait "$wpid"; rc=$?
[ $rc = 0 ] && [ $((SECONDS - t0)) -le 6 ] && ok "past the grace period: children killed, exit 0 in $((SECONDS - t0)) s" || bad "stop past the grace period" "exit $rc after $((SECONDS - t0)) s"
r=$(q -c "SELECT count(*) FROM qml.jobs WHERE queue = 'pg' AND state = 'enqueued' AND attempts = 0")
[ "$r" = 2 ] && ok "their jobs were released" || bad "their jobs were released" "$r $(q -c "SELECT string_agg(state || ':' || attempts, ' ') FROM qml.jobs WHERE queue = 'pg'")"
gone "sleep 31.5" && ok "no command left running" || bad "no command left running"

# SIGKILL (or a crash) gives the worker no time to stop its commands: they
# must die with it, else each would run on while its job, rescued with the
# worker's session, runs again elsewhere. A script whose shell waits for
# its own child, and a pipeline.
echo "# worker: killed with SIGKILL mid-job, its commands die with it"
printf '#!/bin/sh\nsleep 41.5\necho "{}"\n' >"$tmp/orphan.sh"; chmod +x "$tmp/orphan.sh"
q -c "SELECT qml.enqueue('orphan_job', queue => 'k9'), qml.enqueue('pipe_job', queue => 'k9')" >/dev/null
"$QML" worker --queues k9 --workers 2 --exec orphan_job="$tmp/orphan.sh" \
	--exec pipe_job='sleep 42.5 | cat' >"$tmp/w6.out" 2>"$tmp/w6.err" &
wpid=$!
pids+=("$wpid")
for i in $(seq 1 100); do pgrep -f "sleep 41.5" >/dev/null && pgrep -f "sleep 42.5" >/dev/null && break; sleep 0.1; done
groups=$(pgrep -P "$wpid")	# each command's process group, led by the worker's child
kill -KILL "$wpid"; wait "$wpid" 2>/dev/null
gone "sleep 41.5" && ok "a script's child dies with the killed worker" || bad "a script's child dies with the killed worker"
gone "sleep 42.5" && ok "a pipeline dies with the killed worker" || bad "a pipeline dies with the killed worker"
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done

echo "# worker: bad usage"
expect "worker without --exec: exit 2" 2 "$QML" worker
expect "worker --exec without =: exit 2" 2 "$QML" worker --exec nothing
expect "worker --workers 0: exit 2" 2 "$QML" worker --exec a=true --workers 0
expect "worker --timeout soon: exit 2" 2 "$QML" worker --exec a=true --timeout soon
expect "worker with a method twice: exit 2" 2 "$QML" worker --exec a=true --exec a=false
expect "QML_WORKERS=0: exit 2" 2 env QML_WORKERS=0 "$QML" worker --exec a=true

echo "# worker --json -v: one JSON line per job"
q -c "SELECT qml.enqueue('ok_job', '[1]', queue => 'js')" >/dev/null
"$QML" worker --json -v --queues js --exec ok_job="$tmp/ok.sh" >"$tmp/w5.out" 2>"$tmp/w5.err" &
wpid=$!
pids+=("$wpid")
wait_sql "SELECT state FROM qml.jobs WHERE queue = 'js'" succeeded 10
kill -TERM "$wpid"; wait "$wpid"
line=$(head -1 "$tmp/w5.out")
is_json "$line" && [[ "$line" == *'"outcome":"succeeded"'* ]] && ok "a JSON line per job" || bad "a JSON line per job" "$line"

echo "# demo"
expect "qml demo" 0 timeout 60 "$QML" demo --queue demo_cli --listen 127.0.0.1:0
has "succeeded 16  failed 1" "jobs flow to succeeded, one failed"
has "retrying" "shows a retry"
has "scheduled 3" "shows scheduled jobs"
has "dashboard: http://127.0.0.1:" "and prints the dashboard's address"
[ "$(q -c "SELECT count(*) FROM qml.jobs WHERE queue = 'demo_cli' AND method = 'demo.flaky_email' AND state = 'succeeded' AND attempts = 2")" = 1 ] &&
	ok "the flaky job succeeded on its second attempt" || bad "the flaky job succeeded on its second attempt"
# at a terminal (script(1) gives it a pty), the command's own --json is
# read before the demo decides to redraw a progress line and linger with
# its dashboard until ^C: it prints its JSON summary and exits
out=$(timeout 60 script -qefc "'$QML' demo --json --queue demo_cli_tty --listen 127.0.0.1:0 --workers 2" /dev/null </dev/null 2>&1)
rc=$?
[ $rc = 0 ] && ok "qml demo --json at a terminal: exit 0, no lingering" || bad "qml demo --json at a terminal: exit 0, no lingering" "exit $rc"
# (stdout and stderr are the one terminal: the JSON from its first line)
is_json "$(echo "$out" | tr -d '\r' | sed -n '/^{/,$p')" && ok "... its output is the JSON summary" ||
	bad "... its output is the JSON summary" "$(echo "$out" | tail -3 | tr '\n' ' ')"

. test/cli/search_path.sh
. test/cli/papercuts.sh

echo "$pass/$((pass + fail)) checks passed"
[ "$fail" -eq 0 ]
