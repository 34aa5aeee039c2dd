# test/suites.sh: suites beyond pg_regress, sourced by scripts/test.sh, one
# `suite NAME COMMAND...` line each. The cluster is up and PGHOST/PGPORT/
# PGUSER point at it.
suite cron make -s cron-test
# libFuzzer targets (test/fuzz/): every parser of outside input, 10 s each
suite fuzz make -s fuzz FUZZ_SECONDS=10
suite isolation make -s installcheck REGRESS=
suite fetch_plan test/stress/fetch_plan.sh
suite queue_head test/stress/queue_head.sh
suite counts test/stress/counts.sh
suite invalidation test/stress/invalidation.sh
# the scheduler (test/scheduler/): promotion timing and wakeups, recurring
# jobs, pruning and statistics, several databases, a crash restart
suite sched_promote test/scheduler/promote.sh
suite sched_recurring test/scheduler/recurring.sh
suite sched_prune_stats test/scheduler/prune_stats.sh
suite sched_abuse test/scheduler/abuse.sh
suite sched_counts test/scheduler/counts.sh
suite sched_databases test/scheduler/databases.sh
suite sched_restart test/scheduler/restart.sh
suite sched_rights test/scheduler/rights.sh
suite sched_prepared test/scheduler/prepared.sh
suite sched_notify_spoof test/scheduler/notify_spoof.sh
suite sched_session_loss test/scheduler/session_loss.sh
# libqml and the qml command (client/): C unit, API and runtime tests plus
# a valgrind pass; the qml command end to end, worker --exec included
suite client client/tests/run.sh
# the storage backends (client/tests/conformance_test.c): one suite of
# state-machine, ordering, lease, unique-key, recurring and concurrency
# cases run against PostgreSQL, the memory store, Redis and a Redis
# Cluster (throwaway servers) and QML_CONFORMANCE_URLS
suite conformance client/tests/conformance.sh
# the Redis store through the qml command on a server and a cluster, and its
# faults: unreachable, passwords, a killed server, NOSCRIPT, a slot moving
suite redis test/redis/run.sh
suite cli test/cli/run.sh
# the same two under AddressSanitizer and UndefinedBehaviorSanitizer
suite check_asan make -s check-asan
# the dashboard (test/dashboard/): its REST API, WebSocket, metrics, limits,
# tokens, one live connection for any number of pages, a database outage
suite dashboard_api test/dashboard/api.sh
# pg_dump and restore (custom format with pg_restore, plain with psql)
suite dump_restore test/dump/restore.sh
# README.md's error table against the code, both ways, each row raised
suite error_table test/docs/error_table.sh
# the bad-input catalogue (test/bad_input/cases.tsv): SQL, the qml command
# and the REST API, each refusal's SQLSTATE, exit code or status, message,
# and nothing changed; README.md's error table is generated from it
suite bad_input test/bad_input/run.sh
# the dashboard's page in Debian's chromium (playwright-core): live counts
# over the WebSocket, retry, pause, markup as text, banner and recovery
suite browser test/browser/run.sh
# the worker examples of docs/workers.md (Python with psycopg, Node with pg)
suite examples test/examples/run.sh
# many faults at once (test/chaos/): killed and stopped workers, terminated
# sessions, cut connections, immediate restarts; about 3 minutes here,
# 20 under `make chaos`
suite chaos test/chaos/run.sh --short
# the 20-minute run, only when named: `make chaos` (scripts/test.sh chaos_long)
[ ${#only[@]} -gt 0 ] && suite chaos_long test/chaos/run.sh
