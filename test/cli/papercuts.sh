# test/cli/papercuts.sh: sourced by test/cli/run.sh (its helpers, $QML and
# $tmp). Corners a newcomer hit first (issue 18): a second signal during
# the graceful stop, the worker's retry lines, the demo's closing hints.

echo "# worker -v: a retry's line gives the run time as such, and the attempt"
# $tmp/worker.err and $tmp/w5.out are the logs of run.sh's worker --exec runs
grep -Eq "job [0-9]+ retry_job: failed after [0-9]+ ms \(attempt 1/5\); retried with backoff: database busy, later \(exit status 3\)" "$tmp/worker.err" &&
	ok "failed after N ms (attempt 1/5); retried with backoff" || bad "the retry line" "$(grep retry_job "$tmp/worker.err" | head -2 | tr '\n' ' ')"
grep -Eq "job [0-9]+ ok_job: succeeded in [0-9]+ ms \(attempt 1/[0-9]+\)" "$tmp/worker.err" &&
	ok "succeeded in N ms (attempt 1/N)" || bad "the success line" "$(grep ok_job "$tmp/worker.err" | head -1)"
grep -Eq '"max_attempts":[0-9]+' "$tmp/w5.out" && ok "the JSON line has max_attempts" || bad "the JSON line has max_attempts" "$(head -1 "$tmp/w5.out")"

echo "# worker -v: when a retried job runs next, as qml.fail_batch set it"
id=$(q -c "SELECT id FROM qml.jobs WHERE method = 'retry_job'")
grep -Eq "debug: job $id: next try in about [0-9]+ s$" "$tmp/worker.err" &&
	ok "job N: next try in about N s" || bad "the next try line" "$(grep "job $id" "$tmp/worker.err" | head -3 | tr '\n' ' ')"
# the first retry of a 5 s base: 2.5 to 5 s, printed rounded
grep -Eq "debug: job $id: next try in about [2-5] s$" "$tmp/worker.err" &&
	ok "the first retry's time is the backoff's (2.5-5 s)" || bad "the first retry's time" "$(grep "job $id: next" "$tmp/worker.err" | head -1)"
# a database whose qml has no fail_batch (as 1.0): failures are still
# recorded, one qml.fail each, with a warning
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS qml_cli_nofb WITH (FORCE)" -c "CREATE DATABASE qml_cli_nofb" &&
	q -d qml_cli_nofb -c "CREATE EXTENSION qml" -c "ALTER FUNCTION qml.fail_batch RENAME TO fail_batch_gone" \
		-c "SELECT qml.enqueue('retry_job', queue => 'nofb', max_attempts => 3)" >/dev/null
PGDATABASE=qml_cli_nofb "$QML" worker -v --queues nofb --exec retry_job="$tmp/retry.sh" >/dev/null 2>"$tmp/nofb.err" &
wpid=$!
pids+=("$wpid")
PGDATABASE=qml_cli_nofb wait_sql "SELECT state || ' ' || last_error FROM qml.jobs" "awaiting_retry database busy, later (exit status 3)" 10 &&
	ok "no fail_batch: the failure is recorded by qml.fail" ||
	bad "no fail_batch: the failure recorded" "$(q -d qml_cli_nofb -c "SELECT state, last_error FROM qml.jobs") $(tail -2 "$tmp/nofb.err")"
kill -TERM "$wpid"; wait "$wpid"
grep -q "qml.fail_batch.*does not exist (run qml migrate, or qml.grant_worker again); failing jobs one by one" "$tmp/nofb.err" &&
	ok "no fail_batch: a warning says so" || bad "no fail_batch: a warning" "$(tail -3 "$tmp/nofb.err")"
# ... and a role given worker rights before fail_batch existed (not granted it)
q -d qml_cli_nofb -c "ALTER FUNCTION qml.fail_batch_gone RENAME TO fail_batch" -c "SET client_min_messages = warning" \
	-c "DROP ROLE IF EXISTS qml_cli_nofb_worker" -c "CREATE ROLE qml_cli_nofb_worker LOGIN" \
	-c "SELECT qml.grant_worker('qml_cli_nofb_worker')" \
	-c "REVOKE EXECUTE ON FUNCTION qml.fail_batch FROM qml_cli_nofb_worker" \
	-c "SELECT qml.enqueue('retry_job', queue => 'nofb2', max_attempts => 3)" >/dev/null
PGDATABASE=qml_cli_nofb PGUSER=qml_cli_nofb_worker "$QML" worker -v --queues nofb2 --exec retry_job="$tmp/retry.sh" >/dev/null 2>"$tmp/nofb.err" &
wpid=$!
pids+=("$wpid")
PGDATABASE=qml_cli_nofb wait_sql "SELECT state || ' ' || last_error FROM qml.jobs WHERE queue = 'nofb2'" "awaiting_retry database busy, later (exit status 3)" 10 &&
	ok "fail_batch not granted: the failure is recorded by qml.fail" ||
	bad "fail_batch not granted: the failure recorded" "$(tail -2 "$tmp/nofb.err")"
kill -TERM "$wpid"; wait "$wpid"
grep -q "permission denied for function fail_batch (run qml migrate, or qml.grant_worker again)" "$tmp/nofb.err" &&
	ok "fail_batch not granted: a warning says so" || bad "fail_batch not granted: a warning" "$(tail -3 "$tmp/nofb.err")"
psql -X -q -d postgres -c "DROP DATABASE qml_cli_nofb WITH (FORCE)" -c "DROP ROLE qml_cli_nofb_worker"

echo "# worker: a second SIGTERM / SIGINT ends the grace period, still exit 0"
printf '#!/bin/sh\nexec sleep 32.5\n' >"$tmp/long.sh"; chmod +x "$tmp/long.sh"
for sig in TERM INT; do
	q -c "SELECT qml.enqueue('long_job', queue => 'twice_$sig')" >/dev/null
	# (a background job of a script starts with SIGINT ignored: undo that)
	env --default-signal=INT "$QML" worker --queues "twice_$sig" --grace 60s --exec long_job="$tmp/long.sh" >"$tmp/tw.out" 2>"$tmp/tw.err" &
	wpid=$!
	pids+=("$wpid")
	wait_sql "SELECT state FROM qml.jobs WHERE queue = 'twice_$sig'" processing 10
	t0=$SECONDS
	kill -"$sig" "$wpid"
	# the second signal comes while the first one's stop waits for the job
	for i in $(seq 1 100); do grep -q "stopping" "$tmp/tw.err" && break; sleep 0.1; done
	kill -"$sig" "$wpid"
	wait "$wpid"; rc=$?
	[ $rc = 0 ] && [ $((SECONDS - t0)) -le 10 ] && ok "SIG$sig twice: exit 0 in $((SECONDS - t0)) s, not after the 60 s grace" ||
		bad "SIG$sig twice: exit 0 soon" "exit $rc after $((SECONDS - t0)) s; $(tail -2 "$tmp/tw.err" | tr '\n' ' ')"
	r=$(q -c "SELECT state || ' ' || attempts FROM qml.jobs WHERE queue = 'twice_$sig'")
	[ "$r" = "enqueued 0" ] && ok "SIG$sig twice: the running job was released, no attempt counted" ||
		bad "SIG$sig twice: the job released" "$r"
	grep -q "received SIG$sig again: ending the grace period now" "$tmp/tw.err" &&
		ok "SIG$sig twice: the worker says it cut the grace period short" || bad "SIG$sig twice: logged" "$(tail -3 "$tmp/tw.err")"
done
gone "sleep 32.5" && ok "no command left running after a second signal" || bad "no command left running after a second signal"

echo "# demo: the closing hints run as printed; --throwaway prints none"
url="postgresql:///qml_cli_test?host=$(printf %s "${PGHOST:-/var/run/postgresql}" | sed 's|/|%2F|g')&port=${PGPORT:-5432}&user=${PGUSER:-postgres}"
out=$(timeout 60 "$QML" -d "$url" demo --workers 1 --queue demo_hints 2>&1)
cmd=$(echo "$out" | sed -n 's/^next: *//p')
case "$cmd" in /*"/qml -d '$url' job "[0-9]*) ok "the hint names qml by its full path and the database URL";;
	*) bad "the hint: full path and URL" "$cmd";; esac
r=$(cd / && unset PGDATABASE && eval "$cmd" 2>&1)
case "$r" in *demo.broken_invoice*"cannot parse invoice 17"*) ok "the hint runs as printed, from anywhere, on the demo's database";;
	*) bad "the hint runs as printed" "$(echo "$r" | head -3 | tr '\n' ' ')";; esac
# claimed-ahead jobs are labelled: with one thread, never more than one runs
echo "$out" | grep -Eq "processing [2-9]|processing [0-9]{2}" && bad "one thread: at most one job shown processing" "$(echo "$out" | grep -E 'processing [2-9]' | head -1)" ||
	ok "one thread: at most one job shown processing, the rest labelled as claimed"
out=$(timeout 60 "$QML" demo --throwaway --queue demo_throwaway 2>&1)
has "scripts/demo.sh --keep" "--throwaway points at scripts/demo.sh --keep"
echo "$out" | grep -q "qml.* job [0-9]" && bad "--throwaway prints no command to run on a removed cluster" || ok "--throwaway prints no command to run on a removed cluster"
out=$("$QML" demo --help 2>&1)
has "scripts/demo.sh --keep" "qml demo --help documents --keep"

echo "# small corners: help --help, --state retrying, durations in QML_*"
expect "qml help --help: exit 0" 0 "$QML" help --help
has "Exit codes" "qml help --help shows the overview"
q -c "SELECT qml.enqueue('papercut_retry', queue => 'pc_retry')" >/dev/null
q -c "UPDATE qml.jobs SET state = 'awaiting_retry', run_at = now() + interval '1 hour' WHERE queue = 'pc_retry'" >/dev/null
expect "jobs --state retrying: exit 0" 0 "$QML" jobs --state retrying --queue pc_retry
has "papercut_retry" "jobs --state retrying lists the jobs stats counts as retrying"
expect "QML_LEASE=5m QML_GRACE_PERIOD=2s: the worker starts (stopped by timeout, exit 0)" 0 \
	env QML_LEASE=5m QML_GRACE_PERIOD=2s timeout --preserve-status -s TERM 2 "$QML" worker --queues pc_none --exec a=true
expect "QML_LEASE=soon: exit 2" 2 env QML_LEASE=soon "$QML" worker --queues pc_none --exec a=true
has "QML_LEASE must be a duration" "naming the variable and what it wants"
[ ! -e /etc/postgresql-common/createcluster.d/qml-no-main.conf ] &&
	ok "scripts/install-deps.sh leaves nothing under /etc/postgresql-common" ||
	bad "scripts/install-deps.sh leaves nothing under /etc/postgresql-common"

echo "# pause / resume a queue that never had a job: a warning, still exit 0"
expect "pause of an unknown queue: exit 0" 0 "$QML" pause pc_nosuchqueue
has 'warning: queue "pc_nosuchqueue" has never had a job' "pause warns about a queue never seen"
expect "resume of an unknown queue: exit 0" 0 "$QML" resume pc_neverexisted
has 'warning: queue "pc_neverexisted" has never had a job' "resume warns about a queue never seen"
expect "pause of a known queue" 0 "$QML" pause pc_retry
case "$out" in *warning*) bad "no warning for a queue that has jobs" "$out";; *) ok "no warning for a queue that has jobs";; esac
"$QML" resume pc_retry >/dev/null

echo "# recurring add: --priority, --max-attempts, --timezone; a warning without a scheduler"
expect "recurring add with options" 0 "$QML" recurring add pc_nightly '0 3 * * *' cleanup --queue pc_maint \
	--priority 7 --max-attempts 2 --timezone Europe/Paris
case "$out" in *warning*) bad "no warning where the scheduler runs" "$out";; *) ok "no warning where the scheduler runs";; esac
r=$(q -c "SELECT queue || ' ' || priority || ' ' || max_attempts || ' ' || timezone FROM qml.recurring WHERE name = 'pc_nightly'")
[ "$r" = "pc_maint 7 2 Europe/Paris" ] && ok "the options reach qml.recurring" || bad "the options reach qml.recurring" "$r"
expect "recurring add --max-attempts 0: exit 2" 2 "$QML" recurring add pc_bad '0 3 * * *' x --max-attempts 0
expect "recurring add --timezone Mars/Olympus: exit 2" 2 "$QML" recurring add pc_bad '0 3 * * *' x --timezone Mars/Olympus
expect "recurring remove --priority: exit 2" 2 "$QML" recurring remove pc_nightly --priority 1
"$QML" recurring remove pc_nightly >/dev/null
# test/qml.conf keeps the scheduler out of isolation_regression
made=false
if [ -z "$(q -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'isolation_regression'")" ]; then
	q -d postgres -c "CREATE DATABASE isolation_regression" >/dev/null && made=true
fi
"$QML" -d dbname=isolation_regression migrate >/dev/null
expect "recurring add where no scheduler runs: exit 0" 0 "$QML" -d dbname=isolation_regression recurring add pc_never '* * * * *' m
has "warning: no qml scheduler serves this database" "it warns that the job will not fire"
"$QML" -d dbname=isolation_regression recurring remove pc_never >/dev/null
$made && q -d postgres -c "DROP DATABASE isolation_regression WITH (FORCE)" >/dev/null
