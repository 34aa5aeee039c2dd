# bench/lib.sh: sourced by bench/run.sh. Measuring (pgbench runs, prefill,
# resets) and recording: every number goes to $RES/runs.tsv as it is
# measured, every table row is declared in $RES/cases.tsv, and
# bench/report.pl turns both into latest.md and latest.json.

# psql on the bench database: quiet, unaligned, stop on error
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

say() { printf '%s\n' "$*"; }
log() { printf '%s\n' "$*" >>"$RES/bench.log"; }

# --- recording -------------------------------------------------------------

# defcase KEY NAME UNIT QML_LABEL BASE_LABEL TARGET: one row of the table in
# the current pass. UNIT is jobs/s (higher is better) or ms (lower is better);
# BASE_LABEL may be empty (no baseline); TARGET is the ratio the issue asks
# for, shown beside the ratio (the report never says pass or fail).
defcase() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$PASS" "$1" "$2" "$3" "$4" "$5" "$6" "$T" >>"$RES/cases.tsv"
}

# record KEY SIDE VALUE [NOTE]: one measurement (SIDE qml or base) of a row of
# the current pass; printed at once. An empty VALUE means the run failed.
record() {
	local key=$1 side=$2 value=$3 note=${4:-}
	printf '%s\t%s\t%s\t%s\t%s\n' "$PASS" "$key" "$side" "$value" "$note" >>"$RES/runs.tsv"
}

# show LABEL RUN VALUE UNIT [NOTE]: the line printed for one measurement
show() {
	local v
	if [ -n "$3" ]; then v=$(fmt_num "$3"); else v="failed"; fi
	printf '    %-58s run %s/%s %12s %s%s\n' "$1" "$2" "$RUNS" "$v" "$4" "${5:+  ($5)}"
}

fmt_num() { awk -v v="$1" 'BEGIN { if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.2f", v }'; }

# mul A B: A*B rounded (empty when A is empty)
mul() { [ -n "$1" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a * b }'; }

# --- pgbench ---------------------------------------------------------------

# script TEMPLATE BATCH: the pgbench script with @BATCH@ replaced; prints its path
script() {
	local out="$WORK/$(basename "$1" .sql)_$2.sql"
	sed "s/@BATCH@/$2/g" "$SQL/$1" >"$out"
	printf '%s' "$out"
}

# pgb CLIENTS SCRIPT [pgbench options]: runs pgbench for $T seconds; sets TPS
# (transactions, i.e. script runs, per second; empty when pgbench failed) and
# PGB_NOTE (the first error, if any).
pgb() {
	local c=$1 f=$2 j rc
	shift 2
	j=$((c < 2 ? c : 2))
	pgbench -n -M prepared -T "$T" -c "$c" -j "$j" -f "$f" "$@" "$DB" >"$WORK/pgbench.out" 2>&1
	rc=$?
	cat "$WORK/pgbench.out" >>"$RES/bench.log"
	TPS=$(awk '/^tps = /{ print $3; exit }' "$WORK/pgbench.out")
	PGB_NOTE=
	if [ $rc -ne 0 ] || grep -q 'aborted' "$WORK/pgbench.out"; then
		PGB_NOTE="pgbench: $(grep -m1 -i 'error' "$WORK/pgbench.out" | cut -c1-120)"
		[ $rc -ne 0 ] && TPS=
	fi
}

# bound CLIENTS json|arrays SCRIPT: bench/batch_param runs SCRIPT (bench/sql,
# one statement, prepared) for $T seconds with its batch of 1,000 jobs bound
# as parameters; sets VAL (jobs/s; empty when it failed), CPU (the server
# backends' CPU µs per job; empty when the server is not on this machine)
# and NOTE (why it failed)
bound() {
	local out
	out=$("$BATCH_PARAM" "$DB" "$T" "$1" "$2" "$(grep -v '^--' "$SQL/$3")" 2>"$WORK/bound.err")
	log "batch_param $*: $out"
	cat "$WORK/bound.err" >>"$RES/bench.log"
	VAL=$(awk '$2 == "jobs/s" { print $1 }' <<<"$out")
	CPU=$(awk '$2 == "jobs/s" && $6 == "us" { print $5 }' <<<"$out")
	NOTE=
	[ -n "$VAL" ] || NOTE="batch_param: $(head -1 "$WORK/bound.err" | cut -c1-120)"
}

# --- resets and prefill ----------------------------------------------------

reset_raw() { q -c "TRUNCATE jobs RESTART IDENTITY" -c "CHECKPOINT"; }

reset_qml() {
	q -c "TRUNCATE qml.jobs, qml.job_events_1_1 RESTART IDENTITY" -c "CHECKPOINT"
}

prefill_raw() { q -v n="$1" -f "$SQL/raw_prefill.sql" >/dev/null; }

# prefill_qml N: an empty qml.jobs filled with N enqueued jobs through
# qml.enqueue_batch in chunks of 10,000 (two sessions at once), then vacuum,
# analyze and checkpoint
prefill_qml() {
	local n=$1 chunk=10000 nch pids=() s
	nch=$(((n + chunk - 1) / chunk))
	q -c "TRUNCATE qml.jobs, qml.job_events_1_1 RESTART IDENTITY"
	for s in 0 1; do
		(
			i=$s
			while [ "$i" -lt "$nch" ]; do
				sz=$((n - i * chunk < chunk ? n - i * chunk : chunk))
				q -v n="$sz" -f "$SQL/qml_prefill_chunk.sql" >/dev/null || exit 1
				i=$((i + 2))
			done
		) &
		pids+=($!)
	done
	for s in "${pids[@]}"; do wait "$s" || return 1; done
	q -c "VACUUM ANALYZE qml.jobs" -c "VACUUM ANALYZE qml.job_events_1_1" -c "CHECKPOINT"
}

# size_for KEY: jobs to prefill for one run of a fetch case, from the rate
# measured so far for KEY (or a first guess): 1.3 x rate x T, at least 20,000
declare -A RATE_SEEN
size_for() {
	local r=${RATE_SEEN[$1]:-${2:-20000}}
	awk -v r="$r" -v t="$T" 'BEGIN { n = r * t * 1.3; if (n < 20000) n = 20000; printf "%d", int((n + 9999) / 10000) * 10000 }'
}
seen_rate() {
	local k=$1 v=$2
	[ -n "$v" ] || return 0
	RATE_SEEN[$k]=$(awk -v a="${RATE_SEEN[$k]:-0}" -v b="$v" 'BEGIN { printf "%.0f", (b > a) ? b : a }')
}

# database settings for the next connections (pgbench connects afresh)
db_set() { q -c "ALTER DATABASE $DB SET $1 = '$2'"; }
db_reset() { q -c "ALTER DATABASE $DB RESET $1"; }
