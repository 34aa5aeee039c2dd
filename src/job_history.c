/*-------------------------------------------------------------------------
 *
 * job_history.c
 *	  The history of state changes (qml.job_events). Waking idle workers
 *	  when a queue gets work is wakeup.c's.
 *
 * The row trigger hands each change to qml_history_add(); the statement
 * trigger qml_jobs_flush() then writes all of a statement's changes with one
 * INSERT, so claiming or completing a batch costs one insert statement, not
 * one per job. Changes wait in memory that belongs to the transaction; a
 * (sub)transaction that aborts drops the changes it made.
 *
 * History can be turned off with qml.history or per queue with
 * qml.queues.history; the flush applies that choice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_jobs_flush);

typedef struct PendingChange
{
	QmlJobChange change;
	SubTransactionId subid;		/* who made it, to drop it on rollback */
} PendingChange;

static MemoryContext pending_cxt = NULL;
static PendingChange *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static bool callbacks_registered = false;

/* the flush statement, prepared once per session */
static SPIPlanPtr flush_plan = NULL;

static const char *const flush_sql =
"INSERT INTO qml.job_events (job_id, from_state, to_state, worker, error)"
" SELECT e.job_id, e.from_state::qml.job_state, e.to_state::qml.job_state,"
"        e.worker, e.error"
"   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
"                   pg_catalog.unnest($3), pg_catalog.unnest($4),"
"                   pg_catalog.unnest($5), pg_catalog.unnest($6))"
"        AS e(job_id, from_state, to_state, worker, error, queue)"
"  WHERE COALESCE((SELECT q.history FROM qml.queues q"
"                   WHERE q.name OPERATOR(pg_catalog.=) e.queue), $7)";

static void
forget_pending(void)
{
	pending_cxt = NULL;			/* it was a child of the transaction's context */
	pending = NULL;
	npending = maxpending = 0;
}

static void
history_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
		forget_pending();
}

/*
 * A subtransaction that rolls back takes its changes with it: every change
 * made since it started carries its id or a later one.
 */
static void
history_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			keep = 0;
	int			i;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (i = 0; i < npending; i++)
		if (pending[i].subid < mySubid)
			pending[keep++] = pending[i];
	npending = keep;
}

static char *
copy_or_null(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

void
qml_history_add(const QmlJobChange *change)
{
	MemoryContext old;
	PendingChange *p;

	if (!callbacks_registered)
	{
		RegisterXactCallback(history_xact_callback, NULL);
		RegisterSubXactCallback(history_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (pending_cxt == NULL)
		pending_cxt = AllocSetContextCreate(TopTransactionContext,
											"qml pending history",
											ALLOCSET_SMALL_SIZES);

	old = MemoryContextSwitchTo(pending_cxt);
	if (npending == maxpending)
	{
		maxpending = maxpending ? maxpending * 2 : 64;
		pending = pending ? repalloc(pending, maxpending * sizeof(PendingChange)) :
			palloc(maxpending * sizeof(PendingChange));
	}
	p = &pending[npending++];
	p->subid = GetCurrentSubTransactionId();
	p->change.job_id = change->job_id;
	p->change.from_state = change->from_state;
	p->change.to_state = change->to_state;
	p->change.queue = copy_or_null(change->queue);
	p->change.worker = copy_or_null(change->worker);
	p->change.error = copy_or_null(change->error);
	MemoryContextSwitchTo(old);
}

static Datum
text_array(int n, const char *const *values)
{
	Datum	   *elems = palloc(n * sizeof(Datum));
	bool	   *nulls = palloc(n * sizeof(bool));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = values[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(values[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

static void
write_pending(void)
{
	int			n = npending;
	Datum	   *ids = palloc(n * sizeof(Datum));
	const char **from = palloc(n * sizeof(char *));
	const char **to = palloc(n * sizeof(char *));
	const char **worker = palloc(n * sizeof(char *));
	const char **error = palloc(n * sizeof(char *));
	const char **queue = palloc(n * sizeof(char *));
	Datum		values[7];
	int			i;
	int			rc;

	for (i = 0; i < n; i++)
	{
		QmlJobChange *c = &pending[i].change;

		ids[i] = Int64GetDatum(c->job_id);
		from[i] = c->from_state == JS_COUNT ? NULL : qml_state_labels[c->from_state];
		to[i] = qml_state_labels[c->to_state];
		worker[i] = c->worker;
		error[i] = c->error;
		queue[i] = c->queue;
	}
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[1] = text_array(n, from);
	values[2] = text_array(n, to);
	values[3] = text_array(n, worker);
	values[4] = text_array(n, error);
	values[5] = text_array(n, queue);
	values[6] = BoolGetDatum(qml_history);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (flush_plan == NULL)
	{
		Oid			types[7] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BOOLOID};
		SPIPlanPtr	plan = SPI_prepare(flush_sql, 7, types);

		if (plan == NULL)
			elog(ERROR, "could not prepare the history insert: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		flush_plan = plan;
	}
	rc = SPI_execute_plan(flush_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not write job history: %s", SPI_result_code_string(rc));
	SPI_finish();
}

/*
 * qml_jobs_flush: AFTER INSERT OR UPDATE ... FOR EACH STATEMENT.
 * Writes the history of the statement's changes.
 */
Datum
qml_jobs_flush(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "qml_jobs_flush must run AFTER ... FOR EACH STATEMENT");

	if (npending > 0)
	{
		/* the list is emptied even on error: the statement fails as a whole */
		PG_TRY();
		{
			write_pending();
		}
		PG_FINALLY();
		{
			if (pending_cxt != NULL)
				MemoryContextReset(pending_cxt);
			pending = NULL;
			npending = maxpending = 0;
		}
		PG_END_TRY();
	}
	return PointerGetDatum(NULL);
}
