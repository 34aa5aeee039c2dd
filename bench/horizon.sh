#!/usr/bin/env bash
# bench/horizon.sh: a held xmin horizon (issue 19), against $DATABASE_URL
# (a database of its own with qml: bench/run.sh --horizon gives it one).
# bench/horizon.c runs the flow: a producer commits BATCH jobs at a time at
# RATE jobs/s (10,000) for BEFORE s (180); then a session opens a REPEATABLE
# READ transaction, takes its snapshot and idles HOLD s (600), then commits;
# the flow goes on AFTER s (300). Every WINDOW s (30): jobs claimed per
# second, claim latency p50/p99 (the commit of the job's batch to its
# handler starting), the side's tables and indexes in MB, their dead
# tuples, the oldest snapshot's age and the backlog. Two sides, one after
# the other with the same phases (running them side by side would have each
# take the other's cores):
#   raw  the raw baseline (bench/sql/schema.sql): WORKERS threads claiming
#        up to RAW_BATCH jobs with SKIP LOCKED, then one DELETE; first, so
#        that qml's retained jobs are not pruned during its run
#   qml  libqml's runtime (WORKERS workers, no-op handlers) on queue
#        "horizon" with a RETENTION of 60 s, pruned by the scheduler: with
#        the default 24 h, qml.jobs keeps every job of the day and grows
#        whatever the horizon, so the size target would mean nothing
# Targets (qml): jobs/s during the hold >= 0.9 x before, claim p99 during
# the hold <= 2 x before, tables and indexes AFTER s after the hold <= 1.2 x
# their size before it. The raw baseline is reported beside them, with no
# target (it degrades: that is the point).
#
# Environment: BENCH_HORIZON_RATE, _BATCH (100), _BEFORE, _HOLD, _AFTER,
# _WINDOW (BEFORE, HOLD and AFTER multiples of it), _WORKERS (8),
# _RAW_BATCH (50), _RETENTION (60), _SIDES ("raw qml"), _BIN (a built
# bench-horizon; default: make client/build/bench-horizon), _TSV (a file to
# append the windows and summaries to, tab-separated; bench/run.sh reads it).
# A machine that cannot take the rate saturates: the enq/s and backlog
# columns show it; lower the rate to below what it sustains.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rate=${BENCH_HORIZON_RATE:-10000}
before=${BENCH_HORIZON_BEFORE:-180}
hold=${BENCH_HORIZON_HOLD:-600}
after=${BENCH_HORIZON_AFTER:-300}
window=${BENCH_HORIZON_WINDOW:-30}
sides=${BENCH_HORIZON_SIDES:-raw qml}
retention=${BENCH_HORIZON_RETENTION:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tsv=${BENCH_HORIZON_TSV:-$tmp/horizon.tsv}
: "${DATABASE_URL:?}"
# qml's tables fill up for RETENTION s and then stay at that size: the size
# before the hold is the steady one only when BEFORE is well past it
[ $((retention * 2)) -le "$before" ] ||
	echo "bench/horizon.sh: a retention of $retention s is over half of the $before s before the hold: qml's size before it is not yet steady" >&2

bin=${BENCH_HORIZON_BIN:-}
if [ -z "$bin" ]; then
	make -s client/build/bench-horizon >&2
	cp client/build/bench-horizon "$tmp/bench-horizon"
	bin=$tmp/bench-horizon
fi
[[ " $sides " == *" raw "* ]] &&
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 \
		-d "$DATABASE_URL" -f bench/sql/schema.sql >/dev/null

for side in $sides; do
	"$bin" "$DATABASE_URL" --side "$side" --rate "$rate" --before "$before" --hold "$hold" \
		--after "$after" --window "$window" --batch "${BENCH_HORIZON_BATCH:-100}" \
		--workers "${BENCH_HORIZON_WORKERS:-8}" --raw-batch "${BENCH_HORIZON_RAW_BATCH:-50}" \
		--retention "$retention" --tsv "$tsv"
	echo
done

# the targets, qml beside the raw baseline
awk -F'\t' -v after="$after" '
	$1 == "summary" { v[$2, $3] = $4; seen[$2] = 1 }
	function cell(s, a, b, fa, op, lim,    r) {
		if (!seen[s]) return "-"
		r = v[s, b] > 0 ? v[s, a] / v[s, b] : 0
		return sprintf(fa " / " fa " = %.2f%s", v[s, a], v[s, b], r,
			s == "raw" ? "" : ((op == ">=" ? r >= lim : r <= lim) && v[s, b] > 0 ? " met" : " missed"))
	}
	END {
		print "== the targets: qml (libqml runtime) beside the raw baseline (same phases, run one after the other)"
		printf "%-44s  %-32s  %s\n", "target", "qml", "raw (baseline, no target)"
		printf "%-44s  %-32s  %s\n", "jobs/s during the hold / before, >= 0.9",
			cell("qml", "rate_hold", "rate_before", "%.0f", ">=", 0.9),
			cell("raw", "rate_hold", "rate_before", "%.0f", ">=", 0.9)
		printf "%-44s  %-32s  %s\n", "claim p99 ms during the hold / before, <= 2",
			cell("qml", "p99_hold", "p99_before", "%.2f", "<=", 2),
			cell("raw", "p99_hold", "p99_before", "%.2f", "<=", 2)
		printf "%-44s  %-32s  %s\n", "MB " after " s after the hold / before, <= 1.2",
			cell("qml", "size_after", "size_before", "%.1f", "<=", 1.2),
			cell("raw", "size_after", "size_before", "%.1f", "<=", 1.2)
	}' "$tsv"
