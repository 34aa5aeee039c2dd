# test/suites.sh: suites beyond pg_regress, sourced by scripts/test.sh, one
# `suite NAME COMMAND...` line each. The cluster is up and PGHOST/PGPORT/
# PGUSER point at it.
suite cron make -s cron-test
# a hand `make` after a change to a header of src/ rebuilds the objects
# (and JIT bitcode) that include it
suite build_deps test/build/header_deps.sh
# libFuzzer targets (test/fuzz/): every parser of outside input, 10 s each,
# then qml.so itself under ASan and UBSan in a server of its own
suite fuzz make -s fuzz FUZZ_SECONDS=10
suite isolation make -s installcheck REGRESS=
# the pure-SQL edition (docs/sql-edition.md), installed by a plain role:
# the pg_regress, isolation and pgTAP suites against it, two qml worker
# runtimes electing one maintainer, its errors and schedules against the C
# edition's
suite sql_edition test/sql_edition/run.sh
suite sql_edition_runtime test/sql_edition/runtime.sh
# build.py refuses a later script whose fixed function's signature differs
suite sql_edition_build test/sql_edition/build.sh
suite sql_edition_parity test/sql_edition/parity.sh
# its qml.* settings without the library (placeholders), on a cluster of
# its own: a session's value counts only where the extension allows it
suite sql_edition_settings test/sql_edition/settings.sh
suite fetch_plan test/stress/fetch_plan.sh
suite queue_head test/stress/queue_head.sh
suite queue_head_short test/stress/queue_head_short.sh
suite counts test/stress/counts.sh
suite invalidation test/stress/invalidation.sh
# the writes of held jobs (complete, fail, heartbeat, release) raced by
# rescues, admins, rollbacks and a gate flipped by DDL: every call's
# effect in the history once, by the lease holder, counts exact
suite held_mix test/stress/held_mix.sh
# a heartbeat and a complete_batch of 200,000 ids grow the backend by its
# ids, not by a share of each job written (read from /proc: the server
# runs on this machine)
suite held_memory test/stress/held_memory.sh
# a burst of 50 jobs in one commit wakes the 7 waiting fetches of 8 it needs
suite burst_wake test/stress/burst_wake.sh
# the scheduler (test/scheduler/): promotion timing and wakeups, recurring
# jobs, pruning and statistics, several databases, a crash restart
suite sched_promote test/scheduler/promote.sh
suite sched_recurring test/scheduler/recurring.sh
suite sched_prune_stats test/scheduler/prune_stats.sh
suite sched_abuse test/scheduler/abuse.sh
suite sched_counts test/scheduler/counts.sh
suite sched_databases test/scheduler/databases.sh
# background worker slots, on a cluster of its own: 50 databases of which
# 2 use qml hold 3 workers; a database that gets no slot is logged once
# and shown by qml status
suite sched_slots test/scheduler/slots.sh
suite sched_restart test/scheduler/restart.sh
suite sched_rights test/scheduler/rights.sh
suite sched_prepared test/scheduler/prepared.sh
suite sched_notify_spoof test/scheduler/notify_spoof.sh
suite sched_session_loss test/scheduler/session_loss.sh
# upgrades (test/upgrade/): 1.0, 1.1 or 1.2 + ALTER EXTENSION UPDATE has the
# catalog of a fresh 1.3; the update under a live worker and producer (from
# 1.0, 1.1 and 1.2); the library serving a database still on 1.0's, 1.1's
# or 1.2's SQL
suite upgrade_catalog test/upgrade/catalog.sh
# schema 1.4 (qml.jobs partitioned into a ring of rotating slots, not the
# default): the pg_regress, isolation and pgTAP suites on a 1.4 database,
# the rotation's own tests, the counts through rotations
suite partitions test/partitions/run.sh
suite upgrade_load test/upgrade/under_load.sh
suite upgrade_load_1_1 test/upgrade/under_load.sh 1.1
suite upgrade_load_1_2 test/upgrade/under_load.sh 1.2
suite upgrade_load_1_3 test/upgrade/under_load.sh 1.3
suite upgrade_old_schema test/upgrade/old_schema.sh
# libqml and the qml command (client/): C unit, API and runtime tests plus
# a valgrind pass; the qml command end to end, worker --exec included
suite client client/tests/run.sh
# the storage backends (client/tests/conformance_test.c): one suite of
# state-machine, ordering, lease, unique-key, recurring and concurrency
# cases run against PostgreSQL, the memory store, Redis and a Redis
# Cluster (throwaway servers) and QML_CONFORMANCE_URLS
suite conformance client/tests/conformance.sh
# the Redis store through the qml command on a server and a cluster, and its
# faults: unreachable, passwords, a killed server, NOSCRIPT, the answer to a
# claim or a completion lost on the way (taken back reading only that
# claim's jobs; a resent outcome told from a lost lease), a slot moving
suite redis test/redis/run.sh
# an idle worker on Redis (polling every 30 s) is woken at once by a job
# another process enqueues, on a server and on a cluster
suite redis_wakeup test/redis/wakeup.sh
# a Redis Cluster with replicas under a worker and a producer: a manual
# failover loses nothing; kill -9 of a master: the worker carries on, what
# was lost is counted
suite redis_failover test/redis/failover.sh
suite cli test/cli/run.sh
suite cli_migrate test/cli/migrate.sh
# the same two under AddressSanitizer and UndefinedBehaviorSanitizer
suite check_asan make -s check-asan
# the dashboard (test/dashboard/): its REST API, WebSocket, metrics, limits,
# tokens, one live connection for any number of pages, a database outage
suite dashboard_api test/dashboard/api.sh
# pg_dump and restore (custom format with pg_restore, plain with psql)
suite dump_restore test/dump/restore.sh
# the Debian packages (make deb, debian/): contents, lintian, and the
# pg_regress suite and the qml command run from the packages' files
suite package test/package/run.sh
# docs/errors.md's error table against the code, both ways, each row raised
suite error_table test/docs/error_table.sh
# the bad-input catalogue (test/bad_input/cases.tsv): SQL, the qml command
# and the REST API, each refusal's SQLSTATE, exit code or status, message,
# and nothing changed; docs/errors.md's error table is generated from it
suite bad_input test/bad_input/run.sh
# the dashboard's page in Debian's chromium (playwright-core): live counts
# over the WebSocket, retry, pause, markup as text, banner and recovery
suite browser test/browser/run.sh
# the worker examples of docs/workers.md (Python with psycopg, Node with pg)
suite examples test/examples/run.sh
# the sql blocks and the `sh test` blocks of README.md and docs/*.md, run
# against the cluster (a broken block of each kind is checked to fail first)
suite docs_examples test/docs/examples.sh
# many faults at once (test/chaos/): killed and stopped workers, terminated
# sessions, cut connections, immediate restarts; about 3 minutes here,
# 20 under `make chaos`
suite chaos test/chaos/run.sh --short
# the 20-minute run, only when named: `make chaos` (scripts/test.sh chaos_long)
[ ${#only[@]} -gt 0 ] && suite chaos_long test/chaos/run.sh
