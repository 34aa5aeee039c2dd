#!/usr/bin/env bash
# bench/scheduler.sh: the scheduler's numbers (no pass/fail):
#   - promotion lag with 100,000 jobs due in the same second: how long
#     after its due time a worker polling its queue claims each of 100
#     probe jobs due among them (fetch promotes what it claims), and when
#     50%, 99% and all of the 100,000 had been made enqueued by the scheduler
#   - enqueue jobs/s at 16 clients (pgbench) with qml.wakeups on, off and
#     always (NOTIFY on every enqueue, the behaviour "on" replaces), while
#     two workers wait in fetch(..., wait) and consume
#   - wake latency: enqueue commit to an idle worker having its job (fetch
#     wait) or its notification (LISTEN), p50/p99
# Starts its own throwaway cluster (scripts/cluster.sh) with qml preloaded
# on QML_PGPORT (default 5535) and stops it afterwards. BENCH_T sets the
# seconds per pgbench run (default 10), BENCH_RUNS the runs per mode (3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
T=${BENCH_T:-10}
RUNS=${BENCH_RUNS:-3}
db=qml_bench
. bench/own_cluster.sh

echo "== promotion lag: 100,000 jobs due in the same second"
due=$(q -c "SELECT date_trunc('second', clock_timestamp()) + interval '12 s'")
for _ in $(seq 10); do
	q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'p', 'queue', 'promo', 'run_at', '$due'::timestamptz + g * interval '9 us')) FROM generate_series(1, 10000) g))" >/dev/null
done
# 100 probe jobs due among them, one per queue: a worker of that queue
# claims it as soon as a fetch can
q -c "CREATE TABLE probes AS SELECT 'probe-' || i AS queue, qml.enqueue('p', queue => 'probe-' || i, run_at => '$due'::timestamptz + i * interval '900 us') AS id, '$due'::timestamptz + i * interval '900 us' AS run_at, NULL::timestamptz AS claimed_at FROM generate_series(0, 99) i" >/dev/null
[ "$(q -c "SELECT clock_timestamp() < '$due'")" = t ] || { echo "enqueueing took too long"; exit 1; }
# one session polls what the scheduler has promoted, every few milliseconds
q >"$tmp/promoted" <<SQL &
CREATE TEMP TABLE seen (at timestamptz, left_ bigint);
DO \$\$
DECLARE n bigint;
BEGIN
	LOOP
		SELECT count(*) INTO n FROM qml.jobs WHERE queue = 'promo' AND state = 'scheduled';
		INSERT INTO seen VALUES (clock_timestamp(), n);
		EXIT WHEN n = 0 OR clock_timestamp() > '$due'::timestamptz + interval '60 s';
		PERFORM pg_sleep(0.002);
	END LOOP;
END
\$\$;
SELECT format('promotion by the scheduler, state enqueued after the due second: p50 %s ms, p99 %s ms, all %s ms',
	(SELECT round(extract(epoch FROM min(at) - '$due'::timestamptz) * 1000) FROM seen WHERE left_ <= 50000),
	(SELECT round(extract(epoch FROM min(at) - '$due'::timestamptz) * 1000) FROM seen WHERE left_ <= 1000),
	(SELECT round(extract(epoch FROM min(at) - '$due'::timestamptz) * 1000) FROM seen WHERE left_ = 0));
SQL
# and one is the probes' worker: it fetches from every probe queue with a
# job due and not claimed yet, every few milliseconds
q <<SQL
DO \$\$
DECLARE queues text[];
BEGIN
	LOOP
		queues := ARRAY(SELECT queue FROM probes
						 WHERE claimed_at IS NULL AND run_at <= clock_timestamp());
		IF cardinality(queues) > 0 THEN
			UPDATE probes p SET claimed_at = clock_timestamp()
			  FROM qml.fetch('probe-worker', queues, 100, session_lease => false) f
			 WHERE f.id = p.id;
		END IF;
		COMMIT;
		EXIT WHEN NOT EXISTS (SELECT FROM probes WHERE claimed_at IS NULL)
			OR clock_timestamp() > '$due'::timestamptz + interval '60 s';
		PERFORM pg_sleep(0.002);
	END LOOP;
END
\$\$;
SQL
wait
# a probe job never claimed counts as claimed now, not as missing
q -c "SELECT format('promotion lag, due to claimed by a fetch (100 jobs due among the 100,000): p50 %s ms, p99 %s ms, max %s ms',
	round(extract(epoch FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY lag)) * 1000, 1),
	round(extract(epoch FROM percentile_disc(0.99) WITHIN GROUP (ORDER BY lag)) * 1000, 1),
	round(extract(epoch FROM max(lag)) * 1000, 1))
	FROM (SELECT coalesce(claimed_at, clock_timestamp()) - run_at AS lag FROM probes) p" \
	-c "SELECT format('  (%s of the 100 probe jobs claimed)', count(claimed_at)) FROM probes"
cat "$tmp/promoted"
q -c "SELECT format('  (per-job view: enqueued_at - run_at p50 %s ms, p99 %s ms)', round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY enqueued_at - run_at)) * 1000), round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY enqueued_at - run_at)) * 1000)) FROM qml.jobs WHERE queue = 'promo'"

echo "== enqueue jobs/s, 16 clients, $T s per run, median of $RUNS runs per mode"
echo "SELECT qml.enqueue('noop', '{\"n\": 1}', 'bench');" >"$tmp/enqueue.sql"
consumer() { # name seconds: a worker that waits in fetch and completes in batches
	q -c "DO \$\$
DECLARE ids bigint[]; stop timestamptz := clock_timestamp() + interval '$2 s';
BEGIN
	WHILE clock_timestamp() < stop LOOP
		ids := array(SELECT id FROM qml.fetch('$1', '{bench}', 100, wait => '1 s', session_lease => false));
		PERFORM qml.complete_batch(ids, '$1');
		COMMIT;
	END LOOP;
END \$\$" >/dev/null 2>&1
}
med() { printf '%s\n' $1 | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for workers in 0 2; do
	declare -A tps=()
	for run in $(seq "$RUNS"); do
		for mode in on off always; do
			q -c "TRUNCATE qml.jobs, qml.job_events_1_1" -c "CHECKPOINT" >/dev/null
			for w in $(seq "$workers"); do consumer "c$w" $((T + 1)) & done
			sleep 0.5
			t=$(PGOPTIONS="-c qml.wakeups=$mode" pgbench -n -M prepared -c 16 -j 2 -T "$T" -f "$tmp/enqueue.sql" $db 2>&1 |
				awk '/^tps = /{printf "%.0f", $3; exit}')
			wait
			tps[$mode]="${tps[$mode]:-} $t"
		done
	done
	on=$(med "${tps[on]}"); off=$(med "${tps[off]}"); always=$(med "${tps[always]}")
	echo "-- $workers workers waiting in fetch(wait) on the queue"
	echo "wakeups on:    ${tps[on]} jobs/s (median $on)"
	echo "wakeups off:   ${tps[off]} jobs/s (median $off)"
	echo "wakeups always:${tps[always]} jobs/s (median $always)"
	awk -v a="$on" -v b="$off" -v c="$always" 'BEGIN { printf "on/off %.2f (goal >= 0.90), always/off %.2f\n", a / b, c / b }'
	unset tps
done

echo "== wake latency"
q -c "TRUNCATE qml.jobs, qml.job_events_1_1" >/dev/null
cc -O2 -o "$tmp/wake_latency" bench/wake_latency.c -I"$(pg_config --includedir)" \
	-L"$(pg_config --libdir)" -lpq
"$tmp/wake_latency" $db "${BENCH_SAMPLES:-500}"
