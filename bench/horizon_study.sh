#!/usr/bin/env bash
# bench/horizon_study.sh: what a held xmin horizon does to queue designs
# side by side (issue 19; docs/performance.md, "The held xmin horizon").
# In one throwaway cluster, at the same time and under the same held
# snapshot, each design named in HS_DESIGNS gets its own steady flow through
# bench/horizon_study.c (a producer committing 40 jobs at a time, 4 workers
# claiming up to 25 at a time, a maintenance call every second):
#
#   qml   today's extension: qml.enqueue_batch, qml.fetch, qml.complete_batch
#         (queue 'hs', finished jobs kept RETENTION s, pruned by the scheduler)
#   raw   the raw baseline (bench/sql/schema.sql): SKIP LOCKED UPDATE, DELETE
#   part  a prototype of rotating partitions (bench/sql/horizon_study/part.sql):
#         generations of GEN_S s in SLOTS list partitions, rows updated in place
#         and left finished, a partition TRUNCATEd when its slot is reused
#   ins   an insert-only prototype (bench/sql/horizon_study/ins.sql): the same
#         generations, but a claim and a completion are rows of their own,
#         never an UPDATE; a claim starts at a floor, not at the queue's start
#
# BEFORE s of flow, then a session opens a REPEATABLE READ transaction,
# takes its snapshot and idles HOLD s, then commits; AFTER s more. Every
# WINDOW s, per design: jobs claimed per second, claim latency p50/p99
# (commit of the job's enqueue to the job in a worker's hand), its tables'
# size with their indexes, their dead tuples, and buffers touched per
# claimed job; at the end, per design, the jobs claimed twice or never (a
# check of the prototypes). A window before the hold and one before its end
# it also writes EXPLAIN (ANALYZE, BUFFERS) of each design's claim,
# pgstattuple of each relation, and the blocks each index of qml and raw
# has read so far, to $OUT (default /tmp/horizon_study.out).
#
# Environment: QML_PGPORT (5535), PGBIN (the PostgreSQL with qml installed),
# HS_RATE (jobs/s offered to each design, 800), HS_BEFORE (120), HS_HOLD
# (300), HS_AFTER (180), HS_WINDOW (30), HS_DESIGNS ("qml raw part"),
# HS_GEN_S (5), HS_SLOTS (14), HS_RETENTION (60), HS_HOLD_SQL (the holder's
# first statement, "SELECT count(*) FROM qml.queues").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rate=${HS_RATE:-800}
before=${HS_BEFORE:-120}
hold=${HS_HOLD:-300}
after=${HS_AFTER:-180}
window=${HS_WINDOW:-30}
designs=${HS_DESIGNS:-qml raw part}
gen_s=${HS_GEN_S:-5}
slots=${HS_SLOTS:-14}
retention=${HS_RETENTION:-60}
out=${OUT:-/tmp/horizon_study.out}
# what the holder runs to take its snapshot: by default it reads no table of
# the designs, so it holds no lock on them (a report that read them would)
hold_sql=${HS_HOLD_SQL:-SELECT count(*) FROM qml.queues}
total=$((before + hold + after))
burst=40
every=$((burst * 1000 / rate))
db=qml_horizon_study
say() { printf '%s\n' "$*"; }
export QML_PGPORT=${QML_PGPORT:-5535}
. scripts/env.sh
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; scripts/cluster.sh down; rm -rf "$tmp"' EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

scripts/cluster.sh up "$(cat test/qml.conf)
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
max_connections = 100"
psql -X -q -d postgres -c "CREATE DATABASE $db"
q -c "CREATE EXTENSION qml" -c "CREATE EXTENSION pgstattuple"
for d in $designs; do
	q -v retention="$retention" -v gen_s="$gen_s" -v slots="$slots" \
		-f "bench/sql/horizon_study/$d.sql" >/dev/null
done
cc -O2 -Wall -o "$tmp/driver" bench/horizon_study.c -I"$(pg_config --includedir)" \
	-L"$(pg_config --libdir)" -lpq

for d in $designs; do
	"$tmp/driver" "dbname=$db" "hs_$d" "$total" 4 25 "$burst" "$every" "$window" 1000 \
		>"$tmp/flow_$d.txt" 2>"$tmp/check_$d.txt" &
	pids+=($!)
done
t0=$SECONDS
(
	sleep $((before + 1))
	{
		echo "BEGIN ISOLATION LEVEL REPEATABLE READ;"
		echo "$hold_sql;"
		sleep "$hold"
		echo "COMMIT;"
	} | q >/dev/null
) &
pids+=($!)

# the claim of each design, explained (in a transaction rolled back)
explain() {
	local label=$1
	{
		echo "==== $label"
		for d in $designs; do
			case $d in
			qml)
				echo "-- qml: the claim query from the start of the queue (what a short claim runs)"
				q -c "SELECT 1 FROM qml.jobs LIMIT 0" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT c.ctid FROM ONLY qml.jobs c
					   WHERE c.state = 'enqueued' AND c.queue = 'hs'
					   ORDER BY c.priority DESC, c.run_at, c.id LIMIT 25"
				echo "-- qml: a whole qml.fetch of 25 (rolled back; the second in its session)"
				q -c "BEGIN" -c "SELECT count(*) FROM qml.fetch('probe', '{hs}', 25)" -c "ROLLBACK" -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM qml.fetch('probe', '{hs}', 25)" -c "ROLLBACK" ;;
			*)
				echo "-- $d: a claim of 25 (rolled back; the second in its session)"
				q -c "BEGIN" -c "SELECT count(*) FROM hs_$d.claim('probe', 25)" -c "ROLLBACK" -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM hs_$d.claim('probe', 25)" -c "ROLLBACK" ;;
			esac
		done
		echo "-- relations: MB with indexes, live and dead tuples (pgstattuple), index sizes"
		for d in $designs; do
			q -F ' ' -c "SELECT r.rel, round(pg_total_relation_size(r.rel) / 1048576.0, 1), s.tuple_count, s.dead_tuple_count
						   FROM hs_$d.relations r, pgstattuple(r.rel) s ORDER BY 1"
		done
		q -F ' ' -c "SELECT indexrelid::regclass, round(pg_relation_size(indexrelid) / 1048576.0, 1), idx_blks_hit + idx_blks_read
					   FROM pg_statio_user_indexes WHERE schemaname IN ('qml', 'hs_raw') ORDER BY 1"
	} >>"$out" 2>&1
}
: >"$out"
# per window: size, dead tuples, buffers touched so far (all the design's relations)
sample() {
	for d in $designs; do
		q -F ' ' -c "SELECT '$1', '$d', round(sum(pg_total_relation_size(r.rel)) / 1048576.0, 1),
							sum(coalesce(t.n_dead_tup, 0)),
							sum(coalesce(io.heap_blks_hit, 0) + coalesce(io.heap_blks_read, 0)
								+ coalesce(io.idx_blks_hit, 0) + coalesce(io.idx_blks_read, 0))
					   FROM hs_$d.relations r
					   LEFT JOIN pg_stat_user_tables t ON t.relid = r.rel
					   LEFT JOIN pg_statio_user_tables io ON io.relid = r.rel" >>"$tmp/size.txt"
	done
}
sleep 0.5
for w in $(seq "$window" "$window" "$total"); do
	left=$((w - (SECONDS - t0)))
	[ "$left" -le 0 ] || sleep "$left"
	sample "$w"
	if [ "$w" -eq $((before - window / 2 - window / 2)) ] || [ "$w" -eq $((before + hold - window)) ]; then
		explain "at second $w ($([ "$w" -lt "$before" ] && echo before || echo during) the hold)" || true
	fi
done
wait "${pids[@]:0:$(echo $designs | wc -w)}"

say "== $rate jobs/s offered to each of: $designs (at once); a snapshot held from second $before to second $((before + hold)); $(nproc) cores"
for d in $designs; do
	say "-- $d"
	printf '%8s %8s %9s %9s %8s %9s %8s\n' second jobs/s p50_ms p99_ms size_mb dead_tup buf/job
	prev=0
	tail -n +2 "$tmp/flow_$d.txt" | while read -r t n p50 p99; do
		read -r size dead blks < <(awk -v t="$t" -v d="$d" '$1 == t && $2 == d { print $3, $4, $5 }' "$tmp/size.txt")
		bpj=$(awk -v b="${blks:-0}" -v p="$prev" -v n="$n" -v w="$window" 'BEGIN { printf "%.0f", (n > 0 ? (b - p) / (n * w) : 0) }')
		prev=${blks:-0}
		printf '%8s %8s %9s %9s %8s %9s %8s\n' "$t" "$n" "$p50" "$p99" "${size:-?}" "${dead:-?}" "$bpj"
	done
	awk -v b="$before" -v h="$hold" -v w="$window" -v tot="$total" -v d="$d" '
		FILENAME ~ /flow/ && FNR == 1 { next }
		FILENAME ~ /flow/ {
			if ($1 > w && $1 <= b) { rb += $2; nb++; if ($4 > pb) pb = $4; qb[nb] = $4 }
			if ($1 > b + w && $1 <= b + h) { rd += $2; nd++; if ($4 > pd) pd = $4; qd[nd] = $4 }
			next
		}
		$2 == d { if ($1 == b) s0 = $3; if ($1 == b + h) s1 = $3; if ($1 == tot) s2 = $3 }
		END {
			printf "%s: jobs/s %.0f before, %.0f during (%.2f, target >= 0.9); claim p99 %.1f ms before, %.1f ms during (%.2f, target <= 2); size %.1f MB before, %.1f MB at the end of the hold, %.1f MB %d s after (%.2f, target <= 1.2)\n",
				d, rb / nb, rd / nd, (rd / nd) / (rb / nb), pb, pd, pd / pb, s0, s1, s2, tot - b - h, s0 ? s2 / s0 : 0
			printf "%s: the median window'"'"'s claim p99 %.1f ms before, %.1f ms during (%.2f)\n", d, median(qb, nb), median(qd, nd), median(qd, nd) / median(qb, nb)
		}
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}' "$tmp/flow_$d.txt" "$tmp/size.txt"
done
cat "$tmp"/check_*.txt
say "(EXPLAIN of the claims and per-relation figures: $out)"
