/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *	  The scheduler: a background worker per database that runs the
 *	  maintenance pass (maintain.c) whenever something falls due.
 *
 * It sleeps on its latch until the earliest due time the last pass found
 * (a scheduled or retrying job, an expiring lease, a recurring run) or
 * qml.scheduler_interval, whichever comes first. Commits that make
 * something due earlier wake it (wakeup.c), and so do ended sessions that
 * held leases, CREATE EXTENSION and its own leave mark. While a step of
 * the pass hits its batch limit it passes again at once, each pass in its
 * own transaction, so promoted jobs become visible batch by batch.
 *
 * Where the extension does not exist (never did, or was dropped) it says
 * so in shared memory and exits, freeing its slot; the launcher starts
 * none there until CREATE EXTENSION qml commits (launcher.c). A pass that
 * fails is logged (the same failure at most once a
 * minute), rolled back and retried after a pause that grows to a minute:
 * never a crash loop. SIGHUP reloads the settings, SIGTERM stops it at the
 * next interrupt check.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

/* the longest pause after failed passes, and how often one is logged */
#define MAX_FAILURE_PAUSE_MS 60000
#define FAILURE_LOG_EVERY_MS 60000
/* a pass that found due work it could not take (rows locked) waits a bit */
#define NO_PROGRESS_PAUSE_MS 100

typedef enum PassOutcome
{
	PASS_DONE,
	PASS_ABSENT,				/* no extension here */
	PASS_FAILED
} PassOutcome;

static int	failures = 0;
static TimestampTz failure_logged = 0;
static char *database_name = NULL;

/* errors of a pass say where they come from (bgworkers log no %a) */
static void
pass_error_context(void *arg)
{
	errcontext("qml scheduler pass in database \"%s\"",
			   database_name ? database_name : "?");
}

/* logs a failed pass, the same way at most once a minute */
static void
report_failure(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (failures == 0 ||
		TimestampDifferenceExceeds(failure_logged, now, FAILURE_LOG_EVERY_MS))
	{
		EmitErrorReport();
		if (failures > 0)
			ereport(LOG,
					(errmsg("qml scheduler: %d passes failed in a row; retrying",
							failures + 1)));
		failure_logged = now;
	}
	failures++;
}

static PassOutcome
run_pass(QmlPassResult *result, MemoryContext pass_cxt)
{
	volatile PassOutcome outcome = PASS_DONE;
	ErrorContextCallback errcb;

	/* read before the snapshot: a CREATE EXTENSION counted here is seen */
	uint64		ext_gen = qml_registry_ext_gen();

	memset(result, 0, sizeof(QmlPassResult));
	result->next_due = DT_NOEND;

	errcb.callback = pass_error_context;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "qml scheduler pass");
		if (!OidIsValid(get_extension_oid("qml", true)))
			outcome = PASS_ABSENT;
		else
		{
			qml_registry_note_extension(true, ext_gen);
			qml_maintain_pass(result);
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		failures = 0;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(pass_cxt);
		report_failure();
		FlushErrorState();
		AbortCurrentTransaction();
		outcome = PASS_FAILED;
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;

	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (outcome == PASS_ABSENT)
		qml_registry_note_extension(false, ext_gen);
	return outcome;
}

/* when to pass again, after a pass with this outcome */
static TimestampTz
next_wake(PassOutcome outcome, const QmlPassResult *r, TimestampTz now)
{
	TimestampTz next = TimestampTzPlusMilliseconds(now, qml_scheduler_interval_ms);

	switch (outcome)
	{
		case PASS_ABSENT:		/* the caller exits */
		case PASS_FAILED:
			return TimestampTzPlusMilliseconds(now,
											   Min(MAX_FAILURE_PAUSE_MS,
												   Max(qml_scheduler_interval_ms, 1000) *
												   Min(failures, 60)));
		case PASS_DONE:
			break;
	}
	if (r->next_due < next)
		next = r->next_due;
	/* due work the pass could not take: rows locked by someone else */
	if (next <= now && r->promoted + r->rescued + r->fired == 0)
		next = TimestampTzPlusMilliseconds(now, NO_PROGRESS_PAUSE_MS);
	return next;
}

static void
sleep_until(TimestampTz wake)
{
	TimestampTz now = GetCurrentTimestamp();
	long		ms;

	if (wake <= now)
		return;
	ms = (long) Min((wake - now + 999) / 1000, (int64) INT_MAX);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
}

void
qml_scheduler_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext pass_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	SetConfigOption("application_name", "qml scheduler", PGC_USERSET, PGC_S_OVERRIDE);

	/* whatever the database's settings, passes run the way they were written */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A pass must give way, not deadlock: DROP EXTENSION (or an ALTER of a
	 * qml table) locks the tables one by one, and a pass holding one of
	 * them while waiting for another made the deadlock detector cancel the
	 * user's command. Waiting less than deadlock_timeout (1 s by default)
	 * makes the pass fail first; it is rolled back and retried.
	 */
	SetConfigOption("lock_timeout", "200", PGC_SUSET, PGC_S_OVERRIDE);

	if (!qml_registry_claim(dboid))
		proc_exit(0);			/* another one serves it, or it is being left */
	StartTransactionCommand();
	database_name = MemoryContextStrdup(TopMemoryContext,
										get_database_name(dboid));
	CommitTransactionCommand();

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "qml scheduler pass",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		QmlPassResult result;
		PassOutcome outcome;
		TimestampTz wake;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (qml_registry_must_leave())
			proc_exit(0);

		/* awake: a commit from now on wakes us again (we may not see it) */
		qml_registry_set_awake();
		MemoryContextSwitchTo(pass_cxt);
		outcome = run_pass(&result, pass_cxt);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(pass_cxt);
		if (outcome == PASS_ABSENT)
		{
			/* the launcher knows why (shared memory): its slot is free */
			ereport(DEBUG1,
					(errmsg_internal("qml scheduler: extension qml is not installed in database \"%s\"; leaving",
									 database_name)));
			proc_exit(0);
		}
		if (outcome == PASS_DONE && result.more)
			continue;

		wake = next_wake(outcome, &result, GetCurrentTimestamp());
		/* fetch promotes due jobs itself from due_at on (worker_api.c) */
		qml_registry_set_wake(wake, outcome == PASS_DONE ? result.next_due :
							  DT_NOBEGIN);
		sleep_until(wake);
	}
}
