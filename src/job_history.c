/*-------------------------------------------------------------------------
 *
 * job_history.c
 *	  The history of state changes (qml.job_events). Waking idle workers
 *	  when a queue gets work is wakeup.c's.
 *
 * The row trigger hands each change to qml_history_add(); the statement
 * trigger qml_jobs_flush() then writes all of a statement's changes, opening
 * the table and its indexes once per statement. It writes the heap and the
 * indexes directly rather than through an INSERT: starting an executor for
 * every statement cost more than the rows it wrote (a profile of claims and
 * completions showed a fifth of the flush in executor start-up alone). So
 * qml.job_events has no triggers or rules of its own to run, and the rights
 * checked are those on qml.jobs. Changes wait in memory that belongs to the
 * transaction; a (sub)transaction that aborts drops the changes it made.
 *
 * History can be turned off with qml.history or per queue with
 * qml.queues.history; the flush applies that choice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_jobs_flush);

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
 * The queues whose own setting differs from qml.history, read once per
 * flush (qml.queues is tiny). Returns a list of queue names.
 */
static List *
queues_against_default(bool history_default)
{
	Oid			relid = get_relname_relid("queues", get_namespace_oid("qml", false));
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	List	   *result = NIL;
	int			att_name;
	int			att_history;

	if (!OidIsValid(relid))
		elog(ERROR, "qml.queues is missing");
	rel = table_open(relid, AccessShareLock);
	att_name = attnameAttNum(rel, "name", false);
	att_history = attnameAttNum(rel, "history", false);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		history = slot_getattr(slot, att_history, &isnull);

		if (!isnull && DatumGetBool(history) != history_default)
			result = lappend(result,
							 TextDatumGetCString(slot_getattr(slot, att_name, &isnull)));
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return result;
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

static Oid
state_oid(Oid enum_type, JobState state)
{
	HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(enum_type),
									  CStringGetDatum(qml_state_labels[state]));
	Oid			oid;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "job state \"%s\" is missing", qml_state_labels[state]);
	oid = ((Form_pg_enum) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return oid;
}

/*
 * Indexes of qml.job_events, opened for the flush. The history table is
 * written directly, not through an INSERT statement: starting an executor
 * per statement cost more than the rows themselves.
 */
typedef struct EventIndexes
{
	int			n;
	Relation   *rels;
	IndexInfo **infos;
	EState	   *estate;			/* for expression or partial indexes only */
} EventIndexes;

static void
open_event_indexes(Relation rel, EventIndexes *ix)
{
	List	   *oids = RelationGetIndexList(rel);
	ListCell   *lc;

	ix->n = 0;
	ix->rels = palloc(sizeof(Relation) * Max(list_length(oids), 1));
	ix->infos = palloc(sizeof(IndexInfo *) * Max(list_length(oids), 1));
	ix->estate = NULL;
	foreach(lc, oids)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(idx);

		if ((info->ii_Expressions != NIL || info->ii_Predicate != NIL) &&
			ix->estate == NULL)
			ix->estate = CreateExecutorState();
		ix->rels[ix->n] = idx;
		ix->infos[ix->n] = info;
		ix->n++;
	}
}

static void
insert_event_indexes(EventIndexes *ix, Relation rel, TupleTableSlot *slot)
{
	int			i;

	for (i = 0; i < ix->n; i++)
	{
		IndexInfo  *info = ix->infos[i];
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		if (ix->estate)
			GetPerTupleExprContext(ix->estate)->ecxt_scantuple = slot;
		if (info->ii_Predicate != NIL)
		{
			ExprState  *pred = ExecPrepareQual(info->ii_Predicate, ix->estate);

			if (!ExecQual(pred, GetPerTupleExprContext(ix->estate)))
				continue;
		}
		FormIndexDatum(info, slot, ix->estate, values, isnull);
		index_insert(ix->rels[i], values, isnull, &slot->tts_tid, rel,
					 ix->rels[i]->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, info);
	}
}

static void
close_event_indexes(EventIndexes *ix)
{
	int			i;

	for (i = 0; i < ix->n; i++)
		index_close(ix->rels[i], NoLock);
	if (ix->estate)
		FreeExecutorState(ix->estate);
}

static void
write_pending(void)
{
	Oid			relid = get_relname_relid("job_events", get_namespace_oid("qml", false));
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot *slot;
	EventIndexes ix;
	List	   *exceptions = queues_against_default(qml_history);
	Oid			seqid;
	Oid			enum_type;
	Oid			states[JS_COUNT];
	int			att_id,
				att_job,
				att_from,
				att_to,
				att_at,
				att_worker,
				att_error;
	int			i;

	if (!OidIsValid(relid))
		elog(ERROR, "qml.job_events is missing");
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	att_id = attnameAttNum(rel, "id", false);
	att_job = attnameAttNum(rel, "job_id", false);
	att_from = attnameAttNum(rel, "from_state", false);
	att_to = attnameAttNum(rel, "to_state", false);
	att_at = attnameAttNum(rel, "at", false);
	att_worker = attnameAttNum(rel, "worker", false);
	att_error = attnameAttNum(rel, "error", false);
	seqid = getIdentitySequence(relid, att_id, false);
	enum_type = TupleDescAttr(desc, att_to - 1)->atttypid;
	for (i = 0; i < JS_COUNT; i++)
		states[i] = state_oid(enum_type, (JobState) i);

	open_event_indexes(rel, &ix);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	for (i = 0; i < pending.n; i++)
	{
		QmlJobChange *c = &((PendingChange *) qml_xact_list_at(&pending, i))->change;
		Datum	   *values = palloc0(desc->natts * sizeof(Datum));
		bool	   *nulls = palloc(desc->natts * sizeof(bool));
		HeapTuple	tuple;

		if (!history_on(c->queue, qml_history, exceptions))
			continue;
		memset(nulls, true, desc->natts * sizeof(bool));
		values[att_id - 1] = Int64GetDatum(nextval_internal(seqid, false));
		values[att_job - 1] = Int64GetDatum(c->job_id);
		if (c->from_state != JS_COUNT)
			values[att_from - 1] = ObjectIdGetDatum(states[c->from_state]);
		values[att_to - 1] = ObjectIdGetDatum(states[c->to_state]);
		values[att_at - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
		if (c->worker)
			values[att_worker - 1] = CStringGetTextDatum(c->worker);
		if (c->error)
			values[att_error - 1] = CStringGetTextDatum(c->error);
		nulls[att_id - 1] = nulls[att_job - 1] = nulls[att_to - 1] = nulls[att_at - 1] = false;
		nulls[att_from - 1] = c->from_state == JS_COUNT;
		nulls[att_worker - 1] = c->worker == NULL;
		nulls[att_error - 1] = c->error == NULL;

		tuple = heap_form_tuple(desc, values, nulls);
		heap_insert(rel, tuple, GetCurrentCommandId(true), 0, NULL);
		ExecStoreHeapTuple(tuple, slot, false);
		slot->tts_tid = tuple->t_self;
		insert_event_indexes(&ix, rel, slot);
		ExecClearTuple(slot);
	}
	ExecDropSingleTupleTableSlot(slot);
	close_event_indexes(&ix);
	table_close(rel, NoLock);
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

	if (pending.n > 0)
	{
		/* the list is emptied even on error: the statement fails as a whole */
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
	return PointerGetDatum(NULL);
}
