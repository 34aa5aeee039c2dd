# qml: background job processing inside PostgreSQL (PGXS build)

MODULE_big = qml
OBJS = \
	src/qml.o \
	src/backoff.o \
	src/catalog.o \
	src/direct_gate.o \
	src/direct_insert.o \
	src/worker_write.o \
	src/claim_lock.o \
	src/claim_commit.o \
	src/lease_role.o \
	src/job_trigger.o \
	src/job_history.o \
	src/history_inline.o \
	src/maintain.o \
	src/worker_api.o \
	src/worker_held.o \
	src/producer_api.o \
	src/producer_batch.o \
	src/queue_head.o \
	src/claim_holders.o \
	src/prepared_xact.o \
	src/checks.o \
	src/session_plan.o \
	src/xact_list.o \
	src/cron.o \
	src/shmem.o \
	src/launcher.o \
	src/extension_watch.o \
	src/scheduler.o \
	src/wakeup.o \
	src/session_lease.o \
	src/stats_shared.o \
	src/stats.o \
	src/job_counts.o \
	src/recurring.o \
	src/generations.o

EXTENSION = qml
DATA = qml--1.0.sql qml--1.1.sql qml--1.2.sql qml--1.3.sql qml--1.4.sql qml--1.0--1.1.sql qml--1.1--1.2.sql qml--1.2--1.3.sql qml--1.3--1.4.sql
PGFILEDESC = "qml - background job processing inside PostgreSQL"

# pg_regress and isolation tests run against an already running server
# (scripts/test.sh starts one); see README.md.
REGRESS = setup enqueue fetch_complete claim_wal claim_commit fail_retry held_direct held_edges replica_role admin maintain privileges lease_role bounds direct_gate direct_gate_1_1 alter_columns history_inline history_bounds
REGRESS_OPTS = --inputdir=. --load-extension=qml
ISOLATION = fetch_concurrent lease_steal complete_wait delete_vs_fetch unique_enqueue notify queue_head queue_head_short queue_head_pass queue_settings fetch_due prepared direct_gate_ddl update_1_0 fetch_wait_holds claim_race claim_held queue_head_rollback direct_index_ddl unchanged_key held_race held_isolation update_1_3
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso --load-extension=qml

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies (autodepend is off in PostgreSQL's
# packaged build): without this, a hand `make` after a change to a struct
# in src/qml.h would link objects built against the old layout. The JIT
# bitcode (.bc, installed beside qml.so) is inlined the same way.
QML_HEADERS := $(wildcard src/*.h)
$(OBJS) $(OBJS:.o=.bc): $(QML_HEADERS)

# Pieces with their own make fragments: the C client library and the qml
# command (client/), the cron parser's standalone tests (test/cron/), the
# libFuzzer targets (test/fuzz/).
-include client/client.mk
-include client/asan.mk
-include test/cron/cron.mk
-include test/fuzz/fuzz.mk

# The pure-SQL edition for servers that refuse C extensions (managed
# PostgreSQL): one script generated from the extension's, see
# docs/sql-edition.md.
SQL_EDITION = qml-sql--1.1.sql
EXTRA_CLEAN += $(SQL_EDITION)
.PHONY: sql-edition
sql-edition: $(SQL_EDITION)
$(SQL_EDITION): qml--1.1.sql qml--1.3.sql sql_edition/build.py $(wildcard sql_edition/*.sql)
	python3 sql_edition/build.py $< $@ qml--1.3.sql

.PHONY: bench
bench: ; bench/run.sh $(BENCH_FLAGS)

# The 20-minute chaos run (test/chaos/run.sh) on a throwaway cluster, found
# and started the way the README's test command does (PGBIN, QML_PGPORT).
.PHONY: chaos
chaos: ; scripts/test.sh chaos_long

# Debian packages (debian/): postgresql-15-qml, qml, libqml1, libqml-dev in
# dist/, built in a copy of the source (scripts/deb.sh)
.PHONY: deb
deb: ; scripts/deb.sh
