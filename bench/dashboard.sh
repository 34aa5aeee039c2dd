#!/usr/bin/env bash
# bench/dashboard.sh: the dashboard under load (issue 14), not part of the
# test command. While about BENCH_DASH_RATE jobs/s (default 5000) flow
# through qml (pgbench: producers enqueue batches of 50 at a fixed rate,
# consumers fetch and complete batches of up to 100), measures `qml dashboard`
# with 1 WebSocket client and with 50, twice (bench/dashboard/clients.mjs):
# the queries per second it sends to PostgreSQL (its
# qml_dashboard_queries_total metric), its CPU (/proc/PID/stat), and the
# time from a probe job's commit to the stats message that shows it at
# every client (p50, p99). Prints a Markdown table for bench/RESULTS.md.
#
# Starts its own throwaway cluster (scripts/cluster.sh, port $QML_PGPORT,
# default 5551) with qml installed into the PostgreSQL tree of PGBIN, as
# scripts/test.sh does, and removes it whatever happens.
#
# Environment: QML_PGPORT (5551), BENCH_DASH_RATE (5000),
# BENCH_DASH_SECONDS (20 per phase), BENCH_DASH_CLIENTS ("1 50 1 50": each
# phase alternates, so that a neighbour's load hits both alike), QML_BIN
# (the qml command, default client/qml).
set -uo pipefail

# read to the end before running: editing the file during a run does not
# change the run
{
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
cd "$ROOT" || exit 1
RATE=${BENCH_DASH_RATE:-5000}
SECS=${BENCH_DASH_SECONDS:-20}
PHASES=${BENCH_DASH_CLIENTS:-1 50 1 50}
export QML_PGPORT=${QML_PGPORT:-5551}
WORK=$(mktemp -d /tmp/qml-dash-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	scripts/cluster.sh down >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/install-deps.sh || exit 1
. scripts/env.sh
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
echo "== building and installing qml"
make -s all >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; exit 1; }
$sudo make -s install >/dev/null || exit 1
if [ ! -d "$BENCH/dashboard/node_modules/ws" ] || [ ! -d "$BENCH/dashboard/node_modules/pg" ]; then
	(cd "$BENCH/dashboard" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
fi

echo "== cluster on port $QML_PGPORT"
scripts/cluster.sh up "shared_preload_libraries = 'qml'
shared_buffers = 512MB
max_wal_size = 4GB
max_connections = 200" || exit 1
DB=qml_dash_bench
psql -X -q -d postgres -c "CREATE DATABASE $DB" || exit 1
psql -X -q -d $DB -c "CREATE EXTENSION qml" || exit 1
URL="postgresql://postgres@127.0.0.1:$QML_PGPORT/$DB"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${QML_BIN:-client/qml}" dashboard --listen 127.0.0.1:$port --database "$URL" >"$WORK/dashboard.log" 2>&1 &
dash=$!
pids+=($dash)
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" || { echo "dashboard did not start:"; cat "$WORK/dashboard.log"; exit 1; }

# the flow: producers at RATE jobs/s, consumers as fast as they can, for
# every phase plus a warm-up. The churn case's scripts (bench/sql/churn_*),
# with 50 jobs per enqueue and fetches of up to 100, so that 5,000 jobs/s
# flow on 2 shared cores
sed 's/generate_series(1, 10)/generate_series(1, 50)/' "$BENCH/sql/churn_produce.sql" >"$WORK/produce.sql"
sed "s/'{default}', 10)/'{default}', 100)/" "$BENCH/sql/churn_consume.sql" >"$WORK/consume.sql"
grep -q 'generate_series(1, 50)' "$WORK/produce.sql" && grep -q "'{default}', 100)" "$WORK/consume.sql" ||
	{ echo "bench/sql/churn_*.sql changed: adapt bench/dashboard.sh"; exit 1; }
total=$(( (SECS + 8) * $(echo $PHASES | wc -w) + 10 ))
echo "== $RATE jobs/s for ${total} s: pgbench producers and consumers"
pgbench -n -M prepared -T "$total" -c 2 -j 1 -R "$((RATE / 50))" -f "$WORK/produce.sql" $DB \
	>"$WORK/produce.out" 2>&1 &
pids+=($!)
pgbench -n -M prepared -T "$total" -c 4 -j 2 -f "$WORK/consume.sql" $DB \
	>"$WORK/consume.out" 2>&1 &
pids+=($!)
sleep 5

results=()
for n in $PHASES; do
	echo "== $n WebSocket client(s), ${SECS} s"
	r=$(node "$BENCH/dashboard/clients.mjs" --url "http://127.0.0.1:$port" --pid $dash \
		--clients "$n" --seconds "$SECS" --database "$URL") || { echo "phase failed"; exit 1; }
	echo "$r"
	results+=("$r")
done

echo
echo "| WebSocket clients | jobs/s flowing | dashboard queries/s | its sessions | dashboard CPU | WS messages/s (all clients) | commit to page p50 | p99 | max | samples |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do
	node -e '
		const r = JSON.parse(process.argv[1]);
		const l = r.latency_ms;
		console.log(`| ${r.clients} | ${r.jobs_per_second} | ${r.queries_per_second} | ${r.dashboard_sessions} | ${r.cpu_percent} % | ${r.messages_per_second} | ${l.p50} ms | ${l.p99} ms | ${l.max} ms | ${l.samples}${l.unseen ? ` (${l.unseen} unseen)` : ""} |`);
	' "$r"
done
exit
}
