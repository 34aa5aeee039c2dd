# test/suites.sh: suites beyond pg_regress, sourced by scripts/test.sh, one
# `suite NAME COMMAND...` line each. The cluster is up and PGHOST/PGPORT/
# PGUSER point at it.
suite cron make -s cron-test
suite cron_fuzz make -s cron-fuzz CRON_FUZZ_SECONDS=15
