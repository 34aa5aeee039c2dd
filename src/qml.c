/*-------------------------------------------------------------------------
 *
 * qml.c
 *	  Module entry point of the qml extension: defines the qml.* settings
 *	  and, when preloaded, sets up shared memory, the launcher and hooks.
 *
 * Settings live here so that every other file reads them from one place.
 * The SQL functions never read these through current_setting(): they call
 * into this library, which guarantees the settings are defined even when
 * the library is not preloaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "qml.h"

PG_MODULE_MAGIC;

int			qml_retry_base_ms = 5000;
int			qml_retry_cap_ms = 3600 * 1000;
int			qml_default_max_attempts = 20;
int			qml_retention_s = 24 * 3600;
bool		qml_prune_failed = false;
int			qml_generation_length_s = 10;
int			qml_maintain_batch = 10000;
bool		qml_history = true;
bool		qml_durable_claims = false;
char	   *qml_databases = NULL;
int			qml_scheduler_interval_ms = 1000;
int			qml_wakeups = QML_WAKEUPS_ON;
int			qml_stats_retention_s = 7 * 24 * 3600;

static const struct config_enum_entry wakeup_options[] = {
	{"on", QML_WAKEUPS_ON, false},
	{"off", QML_WAKEUPS_OFF, false},
	{"always", QML_WAKEUPS_ALWAYS, false},
	{"true", QML_WAKEUPS_ON, true},
	{"false", QML_WAKEUPS_OFF, true},
	{"yes", QML_WAKEUPS_ON, true},
	{"no", QML_WAKEUPS_OFF, true},
	{"1", QML_WAKEUPS_ON, true},
	{"0", QML_WAKEUPS_OFF, true},
	{NULL, 0, false}
};

void		_PG_init(void);

static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *problem;
	bool		all;

	if (qml_parse_databases(*newval, NULL, NULL, &all, &problem))
		return true;
	GUC_check_errdetail("%s", problem);
	GUC_check_errhint("List database names separated by commas; * means all, !name leaves one out.");
	return false;
}

/* the scheduler's settings (see launcher.c, scheduler.c, wakeup.c, stats.c) */
static void
define_scheduler_settings(void)
{
	DefineCustomStringVariable("qml.databases",
							   "Databases the qml scheduler serves.",
							   "Comma-separated names; empty or * means every database that "
							   "accepts connections, !name leaves one out.",
							   &qml_databases, "",
							   PGC_SIGHUP, 0, check_databases, NULL, NULL);
	DefineCustomIntVariable("qml.scheduler_interval",
							"Longest the scheduler sleeps between two passes.",
							"It wakes earlier when something falls due.",
							&qml_scheduler_interval_ms, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("qml.wakeups",
							 "How idle workers learn that a queue has work.",
							 "on: NOTIFY when a fetch on the queue came back empty, and wake "
							 "waiting fetches; always: NOTIFY on every enqueue; off: neither.",
							 &qml_wakeups, QML_WAKEUPS_ON, wakeup_options,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.stats_retention",
							"How long per-minute statistics are kept.",
							NULL,
							&qml_stats_retention_s, 7 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

void
_PG_init(void)
{
	DefineCustomIntVariable("qml.retry_base",
							"First retry delay; each later attempt doubles it.",
							"Jobs may override it with backoff_base.",
							&qml_retry_base_ms, 5000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.retry_cap",
							"Longest delay between two attempts of a job.",
							"Jobs may override it with backoff_cap.",
							&qml_retry_cap_ms, 3600 * 1000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.default_max_attempts",
							"Attempts a job gets when enqueue() does not say.",
							NULL,
							&qml_default_max_attempts, 20, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.retention",
							"How long finished jobs and their history are kept.",
							"A queue may override it in qml.queues.retention.",
							&qml_retention_s, 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.generation_length",
							"How long each generation of the ring of schema 1.4 takes new jobs.",
							"Then the scheduler empties the next slot of qml.jobs and opens it (docs/partitions.md). 0 opens a new generation at every rotation.",
							&qml_generation_length_s, 10, 0, 24 * 3600,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("qml.prune_failed",
							 "Whether failed jobs are pruned after the retention too.",
							 "Off keeps failed jobs until someone looks at them.",
							 &qml_prune_failed, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.maintain_batch",
							"Most jobs one maintenance step touches in one statement.",
							"Bounds how long a pass holds row locks.",
							&qml_maintain_batch, 10000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("qml.history",
							 "Whether state changes are recorded in qml.job_events.",
							 "A queue may turn it off in qml.queues.history.",
							 &qml_history, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("qml.durable_claims",
							 "Whether a transaction that only claimed jobs waits for the WAL flush.",
							 "Off: a claim lost in a crash leaves its jobs enqueued, to run again, "
							 "without using up an attempt (claim_commit.c).",
							 &qml_durable_claims, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	define_scheduler_settings();

	MarkGUCPrefixReserved("qml");

	qml_wakeup_init();
	qml_head_init();
	qml_prepared_init();
	qml_stats_init();
	qml_job_counts_init();
	if (process_shared_preload_libraries_in_progress)
	{
		qml_shmem_install();
		qml_launcher_register();
		qml_utility_hook_install();
	}
}
