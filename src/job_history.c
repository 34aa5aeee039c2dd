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
 * the rows it wrote (a fifth of the flush in executor start-up alone). That
 * only while qml.job_events is exactly as created (direct_gate.c); once an
 * admin added something to it, an INSERT statement run as the extension's
 * owner writes them (qml.record_events). The rights checked are those on
 * qml.jobs. Changes wait in memory that belongs to the
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
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
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

static QmlXactList pending = QML_XACT_CLEARED_LIST(PendingChange);
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

/*
 * Whether some queue has a history setting of its own; if none has,
 * qml.history alone decides, and the caller need not read the queue.
 */
bool
qml_history_per_queue(void)
{
	if (settings_relid == InvalidOid)
		read_queue_settings();
	return queue_settings != NIL;
}

/*
 * Whether a change of a job in `queue` is recorded: the queue's own
 * setting, else qml.history. Both the history flush (up to version 1.1)
 * and the inline history (1.2, job_trigger.c) ask here.
 */
bool
qml_history_wanted(const char *queue)
{
	ListCell   *lc;

	if (settings_relid == InvalidOid)
		read_queue_settings();
	foreach(lc, queue_settings)
	{
		QueueHistory *q = lfirst(lc);

		if (strcmp(q->queue, queue) == 0)
			return q->history;
	}
	return qml_history;
}

/* the pending change at `i` */
static QmlJobChange *
change_at(int i)
{
	return &((PendingChange *) qml_xact_list_at(&pending, i))->change;
}

/* writes the kept changes to qml.job_events directly, one row each */
static void
write_directly(const bool *keep)
{
	const QmlCatalog *cat = qml_catalog();
	const AttrNumber *att = cat->event_att;
	QmlDirectInsert out;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	int			i;

	qml_direct_open(&out, cat->job_events);
	desc = RelationGetDescr(out.rel);
	values = palloc0(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));

	for (i = 0; i < pending.n; i++)
	{
		QmlJobChange *c = change_at(i);

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

/* a one-dimensional array of `elemtype` */
static Datum
array_of(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int			lbound = 1;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, &n, &lbound,
											  elemtype, typlen, typbyval,
											  typalign));
}

/*
 * Writes the kept changes by INSERT statement, qml.record_events(), as the
 * extension's owner: qml.job_events is not as created, and what an admin
 * added to it must run as for any INSERT. Called by OID, without a
 * privilege check, as enqueue calls qml.enqueue_as_owner: the rights are
 * those on qml.jobs, or on the API function writing it.
 */
static void
write_by_statement(const bool *keep, int nkeep)
{
	const QmlCatalog *cat = qml_catalog();
	Oid			states = get_array_type(cat->job_state);
	Oid			argtypes[] = {INT8ARRAYOID, states, states, TEXTARRAYOID, TEXTARRAYOID};
	Oid			elemtypes[] = {INT8OID, cat->job_state, cat->job_state, TEXTOID, TEXTOID};
	Oid			fn = qml_function_oid("record_events", lengthof(argtypes), argtypes);
	Datum	   *cols[lengthof(argtypes)];
	bool	   *nulls[lengthof(argtypes)];
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, lengthof(argtypes));
	int			k = 0;
	int			i;

	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("function qml.record_events is missing"),
				 errhint("Run ALTER EXTENSION qml UPDATE, or install the library that matches the extension.")));
	for (i = 0; i < lengthof(argtypes); i++)
	{
		cols[i] = palloc0(nkeep * sizeof(Datum));
		nulls[i] = palloc0(nkeep * sizeof(bool));
	}
	for (i = 0; i < pending.n; i++)
	{
		QmlJobChange *c = change_at(i);

		if (!keep[i])
			continue;
		cols[0][k] = Int64GetDatum(c->job_id);
		nulls[1][k] = c->from_state == JS_COUNT;
		if (!nulls[1][k])
			cols[1][k] = ObjectIdGetDatum(cat->state_oids[c->from_state]);
		cols[2][k] = ObjectIdGetDatum(cat->state_oids[c->to_state]);
		nulls[3][k] = c->worker == NULL;
		if (c->worker)
			cols[3][k] = CStringGetTextDatum(c->worker);
		nulls[4][k] = c->error == NULL;
		if (c->error)
			cols[4][k] = CStringGetTextDatum(c->error);
		k++;
	}
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, lengthof(argtypes), InvalidOid,
							 NULL, NULL);
	for (i = 0; i < lengthof(argtypes); i++)
	{
		fcinfo->args[i].value = array_of(cols[i], nulls[i], nkeep, elemtypes[i]);
		fcinfo->args[i].isnull = false;
	}

	/*
	 * An admin's trigger on qml.job_events may change jobs, whose flush then
	 * runs inside this INSERT: it must find only its own changes, not these
	 * again (written twice, or without end).
	 */
	qml_xact_list_clear(&pending);
	(void) FunctionCallInvoke(fcinfo);
}

/*
 * Writes the pending changes of queues with history on to qml.job_events:
 * directly while the table is as created (direct_gate.c), else by INSERT.
 */
static void
write_pending(void)
{
	bool	   *keep = palloc(pending.n * sizeof(bool));
	int			nkeep = 0;
	Oid			relid;
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		keep[i] = qml_history_wanted(change_at(i)->queue);
		nkeep += keep[i];
	}
	/* with history off, nothing is opened */
	if (nkeep == 0)
		return;
	/* the gate reads the table as the lock leaves it */
	relid = qml_catalog()->job_events;
	LockRelationOid(relid, RowExclusiveLock);
	if (qml_table_is_original(relid))
		write_directly(keep);
	else
		write_by_statement(keep, nkeep);
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
