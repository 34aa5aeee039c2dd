# test/suites.sh: suites beyond pg_regress, sourced by scripts/test.sh, one
# `suite NAME COMMAND...` line each. The cluster is up and PGHOST/PGPORT/
# PGUSER point at it.
suite cron make -s cron-test
suite cron_fuzz make -s cron-fuzz CRON_FUZZ_SECONDS=15
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
# libqml and the qml command (client/): C unit, API and runtime tests plus
# a valgrind pass; the qml command end to end, worker --exec included
suite client client/tests/run.sh
suite cli test/cli/run.sh
