# test/cli/papercuts.sh: sourced by test/cli/run.sh (its helpers, $QML and
# $tmp). Corners a newcomer hit first (issue 18): a second signal during
# the graceful stop, the worker's retry line, the demo's closing hints.

echo "# worker -v: a retry's line gives the run time as such, and the attempt"
# $tmp/worker.err and $tmp/w5.out are the logs of run.sh's worker --exec runs
grep -Eq "job [0-9]+ retry_job: failed after [0-9]+ ms \(attempt 1/5\); retried with backoff: database busy, later \(exit status 3\)" "$tmp/worker.err" &&
	ok "failed after N ms (attempt 1/5); retried with backoff" || bad "the retry line" "$(grep retry_job "$tmp/worker.err" | head -2 | tr '\n' ' ')"
grep -Eq "job [0-9]+ ok_job: succeeded in [0-9]+ ms \(attempt 1/[0-9]+\)" "$tmp/worker.err" &&
	ok "succeeded in N ms (attempt 1/N)" || bad "the success line" "$(grep ok_job "$tmp/worker.err" | head -1)"
grep -Eq '"max_attempts":[0-9]+' "$tmp/w5.out" && ok "the JSON line has max_attempts" || bad "the JSON line has max_attempts" "$(head -1 "$tmp/w5.out")"

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
pgrep -f "sleep 32.5" >/dev/null && bad "no command left running after a second signal" || ok "no command left running after a second signal"

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
