# bench/cases.sh: sourced by bench/run.sh. One function per case of issue 5;
# each declares its table rows (defcase) and records $RUNS measurements per
# side (record). qml and the raw baseline alternate within a run, so drift
# on a shared machine touches both alike.

# the ratio a row is held to (issue 5), shown only for the reference pass
target() { [ "$PASS" = "$REF_PASS" ] && printf '%s' "$1"; }

# --- case 1: enqueue, one job per transaction ------------------------------

# case_enqueue CLIENTS [variants]: qml.enqueue vs raw INSERT; with
# "variants", also wakeups off / always and history off at these clients
case_enqueue() {
	local c=$1 variants=${2:-} k=enq_c$1 run raw v label key
	say "  1 enqueue, one job per transaction, $c clients"
	defcase "$k" "1 enqueue c$c ($ENQ_DEFAULT)" jobs/s "qml.enqueue" "raw INSERT" "$(case $c in 1 | 16) target '>= 0.97' ;; esac)"
	for label in ${variants:+"${ENQ_VARIANTS[@]}"}; do
		case $label in
		"wakeups off")
			defcase "${k}_off" "1 enqueue c$c, wakeups off" jobs/s "qml.enqueue" "raw INSERT" ""
			defcase "${k}_onoff" "1 enqueue c$c: wakeups on vs off" jobs/s "wakeups on" "wakeups off" "$(target '>= 0.9')" ;;
		"wakeups always")
			defcase "${k}_always" "1 enqueue c$c, wakeups always (NOTIFY each commit)" jobs/s "qml.enqueue" "raw INSERT" "" ;;
		"history off")
			defcase "${k}_hoff" "1 enqueue c$c, history off" jobs/s "qml.enqueue" "raw INSERT" "$(target '>= 0.9')" ;;
		esac
	done
	for run in $(seq 1 "$RUNS"); do
		reset_raw
		pgb "$c" "$SQL/raw_enqueue.sql"
		raw=$TPS
		record "$k" base "$raw" "$PGB_NOTE"
		show "raw INSERT" "$run" "$raw" jobs/s "$PGB_NOTE"

		reset_qml
		pgb "$c" "$SQL/qml_enqueue.sql"
		v=$TPS
		record "$k" qml "$v" "$PGB_NOTE"
		show "qml.enqueue ($ENQ_DEFAULT)" "$run" "$v" jobs/s "$PGB_NOTE"
		[ -n "$variants" ] || continue
		[[ " ${ENQ_VARIANTS[*]} " == *" wakeups off "* ]] && record "${k}_onoff" qml "$v" "$PGB_NOTE"

		for label in "${ENQ_VARIANTS[@]}"; do
			case $label in
			"wakeups off") db_set qml.wakeups off; key=${k}_off ;;
			"wakeups always") db_set qml.wakeups always; key=${k}_always ;;
			"history off") db_set qml.history off; key=${k}_hoff ;;
			esac
			reset_qml
			pgb "$c" "$SQL/qml_enqueue.sql"
			db_reset qml.wakeups
			db_reset qml.history
			record "$key" qml "$TPS" "$PGB_NOTE"
			record "$key" base "$raw"
			[ "$label" = "wakeups off" ] && record "${k}_onoff" base "$TPS" "$PGB_NOTE"
			show "qml.enqueue ($label)" "$run" "$TPS" jobs/s "$PGB_NOTE"
		done
	done
}

# --- case 2: batch enqueue, 1,000 jobs per statement -----------------------

case_batch() {
	local c=$1 k=batch_c$1 run v
	say "  2 batch enqueue, 1,000 jobs per statement, $c clients"
	defcase "$k" "2 batch enqueue 1,000/statement c$c" jobs/s "qml.enqueue_batch" "raw INSERT ... SELECT" \
		"$(case $c in 1) target '>= 0.8' ;; 4) target '>= 0.9' ;; esac)"
	for run in $(seq 1 "$RUNS"); do
		reset_raw
		pgb "$c" "$SQL/raw_enqueue_batch.sql"
		v=$(mul "$TPS" 1000)
		record "$k" base "$v" "$PGB_NOTE"
		show "raw INSERT ... SELECT" "$run" "$v" jobs/s "$PGB_NOTE"
		reset_qml
		pgb "$c" "$SQL/qml_enqueue_batch.sql"
		v=$(mul "$TPS" 1000)
		record "$k" qml "$v" "$PGB_NOTE"
		show "qml.enqueue_batch" "$run" "$v" jobs/s "$PGB_NOTE"
	done
	reset_raw
	reset_qml
}

# case_batch_param CLIENTS: case 2 with the batch sent by the client as one
# bound parameter (bench/batch_param.c), as a real producer sends it (libqml
# binds one JSON array): qml.enqueue_batch($1) against the raw side's
# fastest form for the same rows, two arrays unnested side by side, and
# against jsonb_to_recordset of the very same JSON bytes; qml once more with
# history off. Issue 19's targets hold the first row.
case_batch_param() {
	local c=$1 k=batchp_c$1 run raw
	say "  2 batch enqueue, 1,000 jobs per statement bound by the client, $c clients"
	defcase "$k" "2 batch enqueue 1,000/statement from the client c$c" jobs/s 'qml.enqueue_batch($1)' \
		'raw INSERT ... SELECT FROM unnest($1, $2)' "$(case $c in 1) target '>= 0.8' ;; 4) target '>= 0.9' ;; esac)"
	defcase "${k}_json" "2 batch enqueue 1,000/statement from the client c$c, the same JSON" jobs/s \
		'qml.enqueue_batch($1)' 'raw INSERT ... SELECT FROM jsonb_to_recordset($1)' ""
	defcase "${k}_hoff" "2 batch enqueue 1,000/statement from the client c$c, history off" jobs/s \
		'qml.enqueue_batch($1)' 'raw INSERT ... SELECT FROM unnest($1, $2)' ""
	# the server's CPU per job: what a shared, loaded machine blurs less
	defcase "${k}_cpu" "2 batch enqueue 1,000/statement from the client c$c, server CPU per job" µs \
		'qml.enqueue_batch($1)' 'raw INSERT ... SELECT FROM unnest($1, $2)' ""
	defcase "${k}_hoff_cpu" "2 batch enqueue 1,000/statement from the client c$c, history off, server CPU per job" µs \
		'qml.enqueue_batch($1)' 'raw INSERT ... SELECT FROM unnest($1, $2)' ""
	if [ -z "$BATCH_PARAM" ]; then
		record "$k" qml "" "bench/batch_param did not build (bench/results/build.log)"
		say "    bench/batch_param did not build"
		return 0
	fi
	for run in $(seq 1 "$RUNS"); do
		reset_raw
		bound "$c" arrays raw_enqueue_batch_unnest.sql
		raw=$VAL
		record "$k" base "$raw" "$NOTE"
		record "${k}_hoff" base "$raw"
		record "${k}_cpu" base "$CPU"
		record "${k}_hoff_cpu" base "$CPU"
		show "raw INSERT ... SELECT FROM unnest(\$1, \$2)" "$run" "$raw" jobs/s "$NOTE"
		reset_raw
		bound "$c" json raw_enqueue_batch_recordset.sql
		record "${k}_json" base "$VAL" "$NOTE"
		show "raw INSERT ... SELECT FROM jsonb_to_recordset(\$1)" "$run" "$VAL" jobs/s "$NOTE"
		reset_qml
		bound "$c" json qml_enqueue_batch_param.sql
		record "$k" qml "$VAL" "$NOTE"
		record "${k}_json" qml "$VAL" "$NOTE"
		record "${k}_cpu" qml "$CPU"
		show "qml.enqueue_batch(\$1)" "$run" "$VAL" jobs/s "$NOTE"
		db_set qml.history off
		reset_qml
		bound "$c" json qml_enqueue_batch_param.sql
		db_reset qml.history
		record "${k}_hoff" qml "$VAL" "$NOTE"
		record "${k}_hoff_cpu" qml "$CPU"
		show "qml.enqueue_batch(\$1), history off" "$run" "$VAL" jobs/s "$NOTE"
	done
	reset_raw
	reset_qml
}

# --- case 3: fetch + complete ----------------------------------------------

# fetch_side raw|qml CLIENTS BATCH N: prefill N jobs, run the claim script;
# sets VAL (jobs/s) and NOTE. A run whose queue ran dry (its empty fetches
# would count as full batches) is run again with twice the jobs, twice.
fetch_side() {
	local side=$1 c=$2 b=$3 n=$4 try left
	for try in 1 2 3; do
		if [ "$side" = raw ]; then
			prefill_raw "$n"
			pgb "$c" "$(script raw_claim_delete.sql "$b")"
			left=$(q -c "SELECT count(*) FROM jobs WHERE state = 0")
		else
			prefill_qml "$n"
			pgb "$c" "$(script qml_fetch_complete.sql "$b")"
			left=$(q -c "SELECT count(*) FROM qml.jobs WHERE state = 'enqueued'")
		fi
		VAL=$(mul "$TPS" "$b")
		NOTE=$PGB_NOTE
		[ "${left:-0}" -ge $((c * b)) ] && return 0
		NOTE="queue ran dry with $n jobs"
		n=$((n * 2))
	done
}

# case_fetch CLIENTS BATCH [history-off]: qml.fetch + qml.complete_batch vs
# the raw SKIP LOCKED claim + DELETE, each run from a fresh prefill; for the
# cases in DUR_FETCH also with qml.durable_claims on
case_fetch() {
	local c=$1 b=$2 hoff=${3:-} k=fetch_c$1_b$2 run n raw guess tgt= tgth= dur=
	[[ " $DUR_FETCH " == *" $c/$b "* ]] && dur=1
	say "  3 fetch + complete, batch $b, $c clients"
	case "$c/$b" in
	16/10) tgt='>= 2.0' tgth='>= 1.3' ;;
	1/100) tgt='>= 1.1' ;;
	4/100) tgt='>= 0.9' ;;
	esac
	defcase "$k" "3 fetch+complete b$b c$c" jobs/s "qml.fetch + complete_batch" "raw claim + DELETE" "$(target "$tgt")"
	[ -n "$hoff" ] && defcase "${k}_hoff" "3 fetch+complete b$b c$c, history off" jobs/s "qml.fetch + complete_batch" "raw claim + DELETE" "$(target "$tgth")"
	# qml.durable_claims on: each fetch's commit waits for the WAL flush, as
	# every fetch did before 2026-12-07 (src/claim_commit.c)
	[ -n "$dur" ] && defcase "${k}_dur" "3 fetch+complete b$b c$c, durable claims" jobs/s "qml.fetch + complete_batch" "raw claim + DELETE" ""
	case $b in 1) guess=5000 ;; 10) guess=15000 ;; *) guess=40000 ;; esac
	for run in $(seq 1 "$RUNS"); do
		n=$(size_for "$k" "$guess")
		fetch_side raw "$c" "$b" "$n"
		raw=$VAL
		seen_rate "$k" "$raw"
		record "$k" base "$raw" "$NOTE"
		show "raw claim $b + DELETE ($n waiting)" "$run" "$raw" jobs/s "$NOTE"
		fetch_side qml "$c" "$b" "$n"
		seen_rate "$k" "$VAL"
		record "$k" qml "$VAL" "$NOTE"
		show "qml.fetch $b + complete_batch" "$run" "$VAL" jobs/s "$NOTE"
		if [ -n "$hoff" ]; then
			db_set qml.history off
			fetch_side qml "$c" "$b" "$n"
			db_reset qml.history
			record "${k}_hoff" qml "$VAL" "$NOTE"
			record "${k}_hoff" base "$raw"
			show "qml.fetch $b + complete_batch, history off" "$run" "$VAL" jobs/s "$NOTE"
		fi
		if [ -n "$dur" ]; then
			db_set qml.durable_claims on
			fetch_side qml "$c" "$b" "$n"
			db_reset qml.durable_claims
			record "${k}_dur" qml "$VAL" "$NOTE"
			record "${k}_dur" base "$raw"
			show "qml.fetch $b + complete_batch, durable claims" "$run" "$VAL" jobs/s "$NOTE"
		fi
	done
	reset_raw
	reset_qml
}

# --- case 7: depth -----------------------------------------------------------

# case_depth DEPTH...: fetch 10 + complete + enqueue 10 (the queue keeps its
# depth) at 4 clients; every depth beside the first (the shallowest)
case_depth() {
	local first=$1 d run k v i
	local -a base=()
	say "  7 depth: fetch 10 + complete + enqueue 10, 4 clients, depth kept"
	for d in "$@"; do
		k=depth_$d
		if [ "$d" = "$first" ]; then
			defcase "$k" "7 depth $(printf "%'d" "$d") waiting" jobs/s "qml" "" ""
		else
			defcase "$k" "7 depth $(printf "%'d" "$d") waiting" jobs/s "qml" "qml at $(printf "%'d" "$first") waiting" \
				"$([ "$d" -ge 1000000 ] && target '>= 0.8')"
		fi
		say "    prefill $(printf "%'d" "$d") jobs"
		prefill_qml "$d"
		for run in $(seq 1 "$RUNS"); do
			if [ "$run" -gt 1 ]; then
				# back to the prefilled state: only the waiting jobs, vacuumed
				q -c "DELETE FROM qml.jobs WHERE state <> 'enqueued'" -c "TRUNCATE qml.job_events_1_1" \
					-c "VACUUM ANALYZE qml.jobs" -c "CHECKPOINT"
			fi
			pgb 4 "$(script qml_depth.sql 10)"
			v=$(mul "$TPS" 10)
			record "$k" qml "$v" "$PGB_NOTE"
			show "depth $(printf "%'d" "$d")" "$run" "$v" jobs/s "$PGB_NOTE"
			if [ "$d" = "$first" ]; then
				base+=("$v")
			else
				record "$k" base "${base[$((run - 1))]:-}"
			fi
		done
	done
	reset_qml
}

# --- case 8: churn (long mode) ---------------------------------------------

# case_churn MINUTES RATE: producers at RATE jobs/s (10 per transaction),
# 4 consumers fetching 10 at a time, finished jobs pruned after 2 minutes;
# one sample a minute
case_churn() {
	local minutes=$1 rate=$2 secs since now m ppid cpid line first= last=
	secs=$((minutes * 60))
	say "  8 churn: $minutes minutes at $rate jobs/s, 4 consumers, retention 2 minutes"
	defcase churn "8 churn: last vs first minute" jobs/s "last minute" "first minute" "$(target '>= 0.9')"
	reset_qml
	q -c "ALTER SYSTEM SET qml.retention = '2min'" -c "SELECT pg_reload_conf()" >/dev/null
	printf 'minute\tcompleted\twaiting\ttable_bytes\tindex_bytes\tdead_tuples\tautovacuum_runs\n' >"$RES/churn.tsv"
	since=$(q -c "SELECT now()")
	pgbench -n -M prepared -T "$secs" -c 2 -j 1 -R "$((rate / 10))" -f "$SQL/churn_produce.sql" "$DB" \
		>"$WORK/churn_produce.out" 2>&1 &
	ppid=$!
	pgbench -n -M prepared -T "$secs" -c 4 -j 2 -f "$SQL/churn_consume.sql" "$DB" \
		>"$WORK/churn_consume.out" 2>&1 &
	cpid=$!
	BG_PIDS="$ppid $cpid"
	for m in $(seq 1 "$minutes"); do
		sleep 60
		now=$(q -c "SELECT now()")
		line=$(q -F "$(printf '\t')" -v since="$since" -f "$SQL/churn_sample.sql")
		since=$now
		printf '%s\t%s\n' "$m" "$line" >>"$RES/churn.tsv"
		set -- $line
		printf '    minute %2d: %8s jobs/min (%s jobs/s), %s waiting, table %s MB, indexes %s MB, dead %s, autovacuum %s\n' \
			"$m" "$1" "$(($1 / 60))" "$2" "$(($3 / 1048576))" "$(($4 / 1048576))" "$5" "$6"
		[ -z "$first" ] && first=$(($1 / 60))
		last=$(($1 / 60))
	done
	wait "$ppid" "$cpid"
	BG_PIDS=
	cat "$WORK/churn_produce.out" "$WORK/churn_consume.out" >>"$RES/bench.log"
	record churn qml "$last"
	record churn base "$first"
	q -c "ALTER SYSTEM RESET qml.retention" -c "SELECT pg_reload_conf()" >/dev/null
	reset_qml
}

# --- case 11: a held xmin horizon (--horizon) -----------------------------

# case_horizon: bench/horizon.sh in a database of its own: the raw baseline,
# then qml through libqml's runtime, the same phases each (BENCH_HORIZON_*).
# Each target's row compares qml during (or after) the hold with qml before
# it, so its ratio is the one the issue sets; the raw rows do the same for
# the baseline, with no target. The windows and summaries go to
# $RES/horizon.tsv, which bench/report.pl turns into a section of their own.
case_horizon() {
	local db=${DB}_horizon after=${BENCH_HORIZON_AFTER:-300} rc side
	say "  11 held xmin horizon: ${BENCH_HORIZON_RATE:-10000} jobs/s, a snapshot held ${BENCH_HORIZON_HOLD:-600} s"
	for side in qml raw; do
		defcase "horizon_${side}_rate" "11 held xmin horizon, $side: jobs/s" jobs/s \
			"during the hold" "before it" "$([ $side = qml ] && target '>= 0.9')"
		defcase "horizon_${side}_p99" "11 held xmin horizon, $side: claim latency p99" ms \
			"during the hold" "before it" "$([ $side = qml ] && target '<= 2')"
		defcase "horizon_${side}_size" "11 held xmin horizon, $side: tables and indexes" MB \
			"$after s after the hold" "before it" "$([ $side = qml ] && target '<= 1.2')"
	done
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>>"$RES/bench.log"
	psql -X -q -d "$db" -c "CREATE EXTENSION qml" || return 0
	: >"$RES/horizon.tsv"
	# shown as it runs: a window every 30 s of a run of over half an hour
	DATABASE_URL="$PG_URL/$db" BENCH_HORIZON_BIN=$HORIZON BENCH_HORIZON_TSV=$RES/horizon.tsv \
		bash bench/horizon.sh 2>"$WORK/horizon.err" | tee "$WORK/horizon.out" | sed -u 's/^/      /'
	rc=${PIPESTATUS[0]}
	cat "$WORK/horizon.out" "$WORK/horizon.err" >>"$RES/bench.log"
	[ $rc -eq 0 ] || note "11 held xmin horizon: bench/horizon.sh exited with status $rc ($(tail -1 "$WORK/horizon.err" | cut -c1-160))"
	for side in qml raw; do
		record "horizon_${side}_rate" qml "$(hz_get "$side" rate_hold)"
		record "horizon_${side}_rate" base "$(hz_get "$side" rate_before)"
		record "horizon_${side}_p99" qml "$(hz_get "$side" p99_hold)"
		record "horizon_${side}_p99" base "$(hz_get "$side" p99_before)"
		record "horizon_${side}_size" qml "$(hz_get "$side" size_after)"
		record "horizon_${side}_size" base "$(hz_get "$side" size_before)"
	done
	note "11 held xmin horizon: the raw baseline ran first, then qml, each with the same phases on the same cluster (side by side, each would take the other's cores); qml's queue keeps finished jobs 60 s (BENCH_HORIZON_RETENTION), pruned by the scheduler, since under the default 24 h qml.jobs grows by every job of the day and the size target would mean nothing. Size: every table of schema qml with its indexes and TOAST (the raw side: its table jobs). Claim latency: commit of the job's batch to its handler starting (raw: to its claim returning)."
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" 2>>"$RES/bench.log"
}

# hz_get SIDE KEY: one figure of bench/horizon.sh's summary (empty if none)
hz_get() { awk -F'\t' -v s="$1" -v k="$2" '$1 == "summary" && $2 == s && $3 == k { print $4 }' "$RES/horizon.tsv"; }

# --- case 9: the peer (graphile-worker), from Node -------------------------

# peer_install: graphile-worker into bench/.peer (nothing of it is committed)
peer_install() {
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		say "  installing nodejs and npm (Debian packages)"
		local sudo=
		[ "$(id -u)" = 0 ] || sudo=sudo
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >>"$RES/bench.log" 2>&1
		command -v node >/dev/null && command -v npm >/dev/null || { PEER_WHY="node/npm missing"; return 1; }
	fi
	mkdir -p "$PEER_DIR"
	if [ ! -f "$PEER_DIR/node_modules/graphile-worker/package.json" ] ||
		! grep -q "\"version\": \"$PEER_VERSION\"" "$PEER_DIR/node_modules/graphile-worker/package.json"; then
		say "  installing graphile-worker@$PEER_VERSION into bench/.peer"
		printf '{ "name": "qml-bench-peer", "private": true }\n' >"$PEER_DIR/package.json"
		(cd "$PEER_DIR" && npm install --no-audit --no-fund --loglevel=error "graphile-worker@$PEER_VERSION") \
			>>"$RES/bench.log" 2>&1 || { PEER_WHY="npm install failed (see bench/results/bench.log)"; return 1; }
	fi
	cp "$BENCH/peer.mjs" "$PEER_DIR/peer.mjs"
}

case_peer() {
	local concs=$1 run c line key value unit k
	say "  9 peer: graphile-worker $PEER_VERSION beside qml, $PEER_JOBS jobs, concurrency $concs"
	defcase peer_add_bulk "9 bulk add $PEER_JOBS jobs, one call" jobs/s "qml.enqueue_batch" "graphile addJobs" ""
	defcase peer_add_single "9 add one job per call, sequential" jobs/s "qml.enqueue" "graphile addJob" ""
	for c in $concs; do
		defcase "peer_c${c}_b1" "9 run $PEER_JOBS no-op jobs c$c" jobs/s "qml fetch 1 + complete_batch" "graphile default mode" ""
		defcase "peer_c${c}_b10" "9 run $PEER_JOBS no-op jobs c$c" jobs/s "qml fetch 10 + complete_batch" "graphile batched mode" ""
		defcase "peer_c${c}_b100" "9 run $PEER_JOBS no-op jobs c$c" jobs/s "qml fetch 100 + complete_batch" "graphile batched mode" ""
		defcase "peer_c${c}_rt" "9 run $PEER_JOBS no-op jobs c$c" jobs/s "qml runtime ($c threads)" "graphile batched mode" "$(target '>= 3.0')"
		# the same graphile run, its clock stopped at its last handler as
		# before 2026-12-07 (its batched completions not yet committed)
		defcase "peer_c${c}_rt_h" "9 run $PEER_JOBS no-op jobs c$c" jobs/s "qml runtime ($c threads)" "graphile batched, to its last handler" ""
	done
	for p in p50 p99 max; do
		defcase "wake_listen_$p" "9 wake latency $p" ms "qml LISTEN + fetch" "graphile default c10" \
			"$(case $p in p50) target '<= 1 ms' ;; p99) target '<= 4 ms' ;; esac)"
	done
	for p in p50 p99 max; do
		defcase "wake_wait_$p" "9 wake latency $p" ms "qml fetch(wait => ...)" "graphile default c10" ""
	done
	for p in p50 p99 max; do
		defcase "wake_raw_$p" "9 wake latency $p" ms "qml LISTEN + fetch" "raw INSERT + NOTIFY, LISTEN + claim" ""
	done
	if ! peer_install; then
		say "    peer: not run: $PEER_WHY"
		record peer_add_bulk qml "" "not run: $PEER_WHY"
		return 0
	fi
	reset_qml
	q -c "TRUNCATE jobs"
	for run in $(seq 1 "$RUNS"); do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_peer" -c "CREATE DATABASE ${DB}_peer" 2>>"$RES/bench.log"
		(cd "$PEER_DIR" && PEER_URL="$PG_URL/${DB}_peer" QML_URL="$PG_URL/$DB" PEER_JOBS=$PEER_JOBS \
			PEER_CONCURRENCY="$concs" PEER_WAKE_SAMPLES=$PEER_WAKE node peer.mjs) \
			>"$WORK/peer.out" 2>"$WORK/peer.err"
		cat "$WORK/peer.err" >>"$RES/bench.log"
		sed 's/^/  /' "$WORK/peer.err"
		declare -A got=()
		while read -r line key value unit; do
			[ "$line" = RESULT ] && got[$key]=$value
		done <"$WORK/peer.out"
		record peer_add_bulk qml "${got[qml_add_bulk]:-}"
		record peer_add_bulk base "${got[gw_add_bulk]:-}"
		record peer_add_single qml "${got[qml_add_single]:-}"
		record peer_add_single base "${got[gw_add_single]:-}"
		for c in $concs; do
			record "peer_c${c}_b1" qml "${got[qml_c${c}_b1]:-}"
			record "peer_c${c}_b1" base "${got[gw_c${c}_default]:-}"
			for k in b10 b100; do
				record "peer_c${c}_$k" qml "${got[qml_c${c}_$k]:-}"
				record "peer_c${c}_$k" base "${got[gw_c${c}_batched]:-}"
			done
		done
		# libqml's runtime at the same concurrencies, same job count, right
		# after graphile (bench/runtime: the clock starts after the enqueue)
		peer_runtime "$concs"
		for c in $concs; do
			record "peer_c${c}_rt" qml "${RT_GOT[$c]:-}" "${RT_NOTE:-}"
			record "peer_c${c}_rt" base "${got[gw_c${c}_batched]:-}"
			record "peer_c${c}_rt_h" qml "${RT_GOT[$c]:-}" "${RT_NOTE:-}"
			record "peer_c${c}_rt_h" base "${got[gw_c${c}_batched_handlers]:-}"
		done
		for p in p50 p99 max; do
			record "wake_listen_$p" qml "${got[qml_wake_listen_$p]:-}"
			record "wake_listen_$p" base "${got[gw_wake_$p]:-}"
			record "wake_wait_$p" qml "${got[qml_wake_wait_$p]:-}"
			record "wake_wait_$p" base "${got[gw_wake_$p]:-}"
			record "wake_raw_$p" qml "${got[qml_wake_listen_$p]:-}"
			record "wake_raw_$p" base "${got[raw_wake_$p]:-}"
		done
		[ -s "$WORK/peer.out" ] || say "    peer run $run failed: $(tail -1 "$WORK/peer.err")"
		unset got
	done
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_peer" -c "DROP DATABASE IF EXISTS ${DB}_peer_rt" 2>>"$RES/bench.log"
	reset_qml
	reset_raw
}

# peer_runtime CONCURRENCIES: one run of bench/runtime with that many worker
# threads each (its own database, PEER_JOBS no-op jobs, enqueued before its
# clock starts as graphile's are); sets RT_GOT[c] to jobs/s, RT_NOTE on failure
declare -A RT_GOT
peer_runtime() {
	local c v
	RT_GOT=()
	RT_NOTE=
	if [ -z "$RUNTIME" ]; then
		RT_NOTE="bench/runtime not built"
		return 0
	fi
	"$RUNTIME" --db "${DB}_peer_rt" --threads "$(echo $1 | tr ' ' ',')" --jobs "$PEER_JOBS" \
		--reps 1 --no-raw --latency 0 -v >"$WORK/peer_rt.out" 2>"$WORK/peer_rt.err"
	cat "$WORK/peer_rt.out" "$WORK/peer_rt.err" >>"$RES/bench.log"
	for c in $1; do
		v=$(awk -v c="$c" '$1 == c && NF == 2 { print $2 }' "$WORK/peer_rt.out")
		RT_GOT[$c]=$v
		say "    qml runtime, $c threads: ${v:-failed} jobs/s"
	done
	[ -n "$v" ] || RT_NOTE="bench/runtime: $(tail -1 "$WORK/peer_rt.err" | cut -c1-120)"
}

# --- cases 4, 5, 6: programs other parts of the project build --------------

# the target (issue 5, raised by issue 19) for a row an external program printed, if any
external_target() {
	case $1 in
	"threads 1") target '>= 5' ;;
	*"promotion lag"*p99) target '<= 100 ms' ;;
	*"handler start"*p50) target '<= 1 ms' ;;
	*"handler start"*p99) target '<= 4 ms' ;;
	*"claim latency"*p50) target '<= 1 ms' ;;
	*"claim latency"*p99) target '<= 5 ms' ;;
	*"complete_batch while others wait"*p99) target '<= 5 ms' ;;
	esac
}

# external NAME KIND COMMAND...: runs COMMAND once against a fresh database
# with qml on our cluster (DATABASE_URL, PG*); a program that starts a
# cluster of its own gets QML_PGPORT + 1. It repeats its measurements
# itself (BENCH_RUNS, BENCH_T, BENCH_SAMPLES from the mode). Every "<label> ... <numbers>
# jobs/s|ms" line it prints becomes a row "KIND: <label>", one value per
# number (bench/parse-output.pl).
external() {
	local name=$1 kind=$2 rc
	shift 2
	say "  $kind: $name"
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_ext" -c "CREATE DATABASE ${DB}_ext" 2>>"$RES/bench.log"
	psql -X -q -d "${DB}_ext" -c "CREATE EXTENSION qml"
	(
		unset QML_PGDIR
		export DATABASE_URL="$PG_URL/${DB}_ext" PGDATABASE="${DB}_ext" BENCH_MODE=$MODE BENCH_T=$EXT_T \
			BENCH_RUNS=$RUNS BENCH_SAMPLES=$EXT_SAMPLES QML_PGPORT=$((QML_PGPORT + 1))
		"$@"
	) >"$WORK/ext.out" 2>"$WORK/ext.err"
	rc=$?
	cat "$WORK/ext.out" "$WORK/ext.err" >>"$RES/bench.log"
	sed 's/^/      /' "$WORK/ext.out"
	[ $rc -eq 0 ] || {
		say "    $name exited with $rc: $(tail -1 "$WORK/ext.err")"
		note "$kind: $name exited with status $rc ($(tail -1 "$WORK/ext.err" | cut -c1-160))"
	}
	perl "$BENCH/parse-output.pl" "$name" <"$WORK/ext.out" >"$WORK/ext.tsv"
	[ -s "$WORK/ext.tsv" ] || note "$kind: $name printed no jobs/s or ms figure"
	while IFS=$'\x1f' read -r key label value unit conc side base_label; do
		grep -q "^$PASS	$key	" "$RES/cases.tsv" ||
			defcase "$key" "$kind: $label" "$unit" "$name" "$base_label" "$(external_target "$label")"
		record "$key" "$side" "$value"
	done <"$WORK/ext.tsv"
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_ext" 2>>"$RES/bench.log"
}
