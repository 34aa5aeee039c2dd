/*-------------------------------------------------------------------------
 *
 * job_history.c
 *	  The history of state changes (qml.job_events). Waking idle workers
 *	  when a queue gets work is wakeup.c's.
 *
 * The row trigger (or enqueue, which writes qml.jobs itself) hands each
 * change to qml_history_add(); the statement trigger qml_jobs_flush(), or
 * the enqueue, then writes all of a statement's changes at once through
 * direct_insert.c: starting an executor for every statement cost more than
 * the rows it wrote (a fifth of the flush in executor start-up alone). So
 * qml.job_events has no triggers or rules of its own to run, and the rights
 * checked are those on qml.jobs. Changes wait in memory that belongs to the
 * transaction; a (sub)transaction that aborts drops the changes it made.
 *
 * History can be turned off with qml.history or per queue with
 * qml.queues.history; the flush applies that choice, with the queues'
 * settings kept for the session until qml.queues changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_jobs_flush);
PG_FUNCTION_INFO_V1(qml_queues_changed);

typedef struct PendingChange
{
	SubTransactionId subid;		/* first, for xact_list.c */
	QmlJobChange change;
} PendingChange;

static QmlXactList pending = QML_XACT_LIST(PendingChange);
static bool callbacks_registered = false;

static void
history_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
		qml_xact_list_forget(&pending);
}

static void
history_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		qml_xact_list_drop_aborted(&pending, mySubid);
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
	p = qml_xact_list_push(&pending);
	old = MemoryContextSwitchTo(qml_xact_list_memory(&pending));
	p->change.job_id = change->job_id;
	p->change.from_state = change->from_state;
	p->change.to_state = change->to_state;
	p->change.queue = copy_or_null(change->queue);
	p->change.worker = copy_or_null(change->worker);
	p->change.error = copy_or_null(change->error);
	MemoryContextSwitchTo(old);
}

/*
 * The queues with a history setting of their own (qml.queues.history not
 * NULL), kept for the session: reading qml.queues on every flush was 1% of
 * an enqueue. The trigger queues_changed invalidates the table's relcache
 * entry on any change, which drops them here in every session.
 */
typedef struct QueueHistory
{
	char	   *queue;
	bool		history;
} QueueHistory;

static List *queue_settings = NIL;	/* of QueueHistory, in settings_cxt */
static MemoryContext settings_cxt = NULL;
static Oid	settings_relid = InvalidOid;	/* InvalidOid: not read */

static void
settings_invalidate(Datum arg, Oid relid)
{
	if (settings_relid != InvalidOid &&
		(relid == InvalidOid || relid == settings_relid))
		settings_relid = InvalidOid;
}

static void
read_queue_settings(void)
{
	Oid			relid = qml_catalog()->queues;
	Relation	rel = table_open(relid, AccessShareLock);
	TableScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	MemoryContext old;
	int			att_name = attnameAttNum(rel, "name", false);
	int			att_history = attnameAttNum(rel, "history", false);

	if (settings_cxt == NULL)
	{
		settings_cxt = AllocSetContextCreate(TopMemoryContext, "qml queue settings",
											 ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(settings_invalidate, (Datum) 0);
	}
	MemoryContextReset(settings_cxt);
	queue_settings = NIL;
	/*
	 * The latest snapshot, not the statement's: a change whose invalidation
	 * the table_open above took in may have committed after the statement
	 * began, and what is read here is kept until the next change.
	 */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	old = MemoryContextSwitchTo(settings_cxt);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		history = slot_getattr(slot, att_history, &isnull);
		QueueHistory *q;

		if (isnull)
			continue;
		q = palloc(sizeof(QueueHistory));
		q->queue = TextDatumGetCString(slot_getattr(slot, att_name, &isnull));
		q->history = DatumGetBool(history);
		queue_settings = lappend(queue_settings, q);
	}
	MemoryContextSwitchTo(old);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	settings_relid = relid;
}

/* the names of the queues whose own setting differs from qml.history */
static List *
queues_against_default(bool history_default)
{
	List	   *result = NIL;
	ListCell   *lc;

	if (settings_relid == InvalidOid)
		read_queue_settings();
	foreach(lc, queue_settings)
	{
		QueueHistory *q = lfirst(lc);

		if (q->history != history_default)
			result = lappend(result, q->queue);
	}
	return result;
}

/*
 * qml_queues_changed: AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON
 * qml.queues FOR EACH STATEMENT. The invalidation is sent at commit (and
 * seen at once by this session's next command).
 */
Datum
qml_queues_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "qml_queues_changed must run AFTER ... FOR EACH STATEMENT");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

static bool
history_on(const char *queue, bool history_default, List *exceptions)
{
	ListCell   *lc;

	foreach(lc, exceptions)
		if (strcmp((char *) lfirst(lc), queue) == 0)
			return !history_default;
	return history_default;
}

/* writes the pending changes to qml.job_events, one row each */
static void
write_pending(void)
{
	List	   *exceptions = queues_against_default(qml_history);
	const QmlCatalog *cat;
	const AttrNumber *att;
	QmlDirectInsert out;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	bool	   *keep = palloc(pending.n * sizeof(bool));
	int			nkeep = 0;
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		QmlJobChange *c = &((PendingChange *) qml_xact_list_at(&pending, i))->change;

		keep[i] = history_on(c->queue, qml_history, exceptions);
		nkeep += keep[i];
	}
	/* with history off, nothing is opened */
	if (nkeep == 0)
		return;

	qml_direct_open(&out, qml_catalog()->job_events);
	/* looked up after the lock, which may have brought an ALTER TABLE */
	cat = qml_catalog();
	att = cat->event_att;
	desc = RelationGetDescr(out.rel);
	values = palloc0(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));

	for (i = 0; i < pending.n; i++)
	{
		QmlJobChange *c = &((PendingChange *) qml_xact_list_at(&pending, i))->change;

		CHECK_FOR_INTERRUPTS();
		if (!keep[i])
			continue;
		memset(nulls, true, desc->natts * sizeof(bool));
#define SET(col, value) (values[att[col] - 1] = (value), nulls[att[col] - 1] = false)
		SET(EC_ID, Int64GetDatum(nextval_internal(cat->job_events_seq, false)));
		SET(EC_JOB_ID, Int64GetDatum(c->job_id));
		if (c->from_state != JS_COUNT)
			SET(EC_FROM_STATE, ObjectIdGetDatum(cat->state_oids[c->from_state]));
		SET(EC_TO_STATE, ObjectIdGetDatum(cat->state_oids[c->to_state]));
		SET(EC_AT, TimestampTzGetDatum(GetCurrentTimestamp()));
		if (c->worker)
			SET(EC_WORKER, CStringGetTextDatum(c->worker));
		if (c->error)
			SET(EC_ERROR, CStringGetTextDatum(c->error));
#undef SET
		qml_direct_insert(&out, values, nulls);
	}
	qml_direct_close(&out);
}

/*
 * Writes the history of the changes made since the last flush and forgets
 * them. The list is emptied even on error: the statement fails as a whole.
 */
void
qml_history_flush(void)
{
	if (pending.n == 0)
		return;
	PG_TRY();
	{
		write_pending();
	}
	PG_FINALLY();
	{
		qml_xact_list_clear(&pending);
	}
	PG_END_TRY();
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

	qml_history_flush();
	return PointerGetDatum(NULL);
}
