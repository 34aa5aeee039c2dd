# test/cli/papercuts.sh: sourced by test/cli/run.sh (its helpers, $QML and
# $tmp). Corners a newcomer hit first (issue 18): a second signal during
# the graceful stop, the worker's retry line, the demo's closing hints.

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
