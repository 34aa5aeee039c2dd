/*-------------------------------------------------------------------------
 *
 * job_trigger.c
 *	  The row triggers on qml.jobs that keep each row's bookkeeping true
 *	  whoever changes the state: the API, the scheduler or an admin's UPDATE.
 *
 * qml_jobs_stamp (BEFORE, on insert and on a state change) stamps
 * enqueued_at, started_at or finished_at, clears the lease when a job leaves
 * `processing`, clears finished_at when a job comes back to life, and fills
 * max_attempts from qml.default_max_attempts on insert.
 *
 * Every state change is then handed to job_history.c, which writes the
 * history once per statement, and a job that became enqueued wakes its
 * queue's workers. Updates are recorded by the BEFORE trigger itself: it
 * fires only for rows that will be updated (after any EvalPlanQual recheck),
 * and it saves queueing an AFTER trigger event per claimed or completed row.
 * Inserts are recorded by qml_jobs_record, an AFTER trigger, because a
 * BEFORE INSERT trigger also fires for rows ON CONFLICT DO NOTHING skips.
 * An update or DELETE (job_counts.c's trigger) of a waiting job notes its
 * place, which the head moves back to should it roll back
 * (qml_job_note_waiting_changed).
 *
 * A COPY ... FROM into qml.jobs is a load of rows as they were, which is
 * how pg_dump's output restores them (with psql or pg_restore): both
 * triggers leave such rows alone, so a restore records no history, counts
 * no statistics, wakes nobody and moves no queue head. The statement the
 * session runs is the signal, not a setting a restore may or may not
 * make (psql runs a plain dump's COPY with every trigger enabled); with
 * session_replication_role = replica the triggers do not fire at all.
 *
 * Both are C because they run for every row of every claim and completion
 * an admin's own trigger sends through an UPDATE statement. Otherwise the
 * worker's claims and completions write their rows without one
 * (worker_write.c), and build and record them with the same code here
 * (qml_job_update_row, qml_job_record_update).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_jobs_stamp);
PG_FUNCTION_INFO_V1(qml_jobs_record);

const char *const qml_state_labels[JS_COUNT] = {
	"scheduled", "enqueued", "processing", "succeeded", "failed",
	"awaiting_retry", "deleted"
};

/* the state in a row of qml.jobs; JS_COUNT if NULL or unknown */
static JobState
job_state_of(HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Datum		label = heap_getattr(tuple, qml_catalog()->job_att[JC_STATE],
									 desc, &isnull);

	return isnull ? JS_COUNT : qml_state_of_oid(DatumGetObjectId(label));
}

static bool
is_final(JobState s)
{
	return s == JS_SUCCEEDED || s == JS_FAILED || s == JS_DELETED;
}

/* a text column of the row, or NULL; palloc'd in the current context */
static char *
text_col(HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, attnum, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Whether the rows of `rel` come from the statement the session runs
 * being a COPY ... FROM into `rel` (a restore, see the header). A COPY
 * run inside a function is not the portal's statement: its rows are
 * inserted as by INSERT.
 */
static bool
loading_by_copy(Relation rel)
{
	PlannedStmt *pstmt;
	CopyStmt   *copy;

	if (ActivePortal == NULL || list_length(ActivePortal->stmts) != 1)
		return false;
	pstmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (pstmt->commandType != CMD_UTILITY || !IsA(pstmt->utilityStmt, CopyStmt))
		return false;
	copy = (CopyStmt *) pstmt->utilityStmt;
	return copy->is_from && copy->relation != NULL &&
		RangeVarGetRelid(copy->relation, NoLock, true) == RelationGetRelid(rel);
}

/*
 * Hands a state change to the history, to wakeup.c (which wakes the
 * queue's workers when a job became enqueued, and counts it), to
 * queue_head.c and to the jobs per queue and state (job_counts.c).
 */
void
qml_record_change(const QmlJobChange *change)
{
	/* version 1.2 keeps it in the row (append_history) */
	if (!qml_catalog()->inline_history)
		qml_history_add(change);
	/* wakeups, statistics and the scheduler's next due time (wakeup.c) */
	qml_job_changed(change);
	qml_head_note_change(change);
	if (change->queue != NULL)
		qml_job_counts_move(change->queue, change->from_state,
							change->queue, change->to_state);
}

/*
 * An admin's UPDATE moved a job to another queue: it moves there in the
 * state it had, and a change of state is counted in its new queue.
 */
static void
count_queue_move(TupleDesc desc, HeapTuple oldtuple, JobState from,
				 HeapTuple newtuple)
{
	int			attnum = qml_catalog()->job_att[JC_QUEUE];
	bool		old_null;
	bool		new_null;
	Datum		old_queue = heap_getattr(oldtuple, attnum, desc, &old_null);
	Datum		new_queue = heap_getattr(newtuple, attnum, desc, &new_null);

	/* a heartbeat's row keeps the very same bytes: no copy for it */
	if (old_null || new_null || datumIsEqual(old_queue, new_queue, false, -1))
		return;
	qml_job_counts_move(TextDatumGetCString(old_queue), from,
						TextDatumGetCString(new_queue), from);
}

/*
 * The worker and error of the change from `oldtuple` (NULL for an insert)
 * in state `from` to `newtuple` in state `to`: all a history records
 * besides the states. The worker is the lease holder: the claimer on a
 * claim, the previous holder otherwise.
 */
static void
worker_and_error(TupleDesc desc, HeapTuple oldtuple, JobState from,
				 HeapTuple newtuple, JobState to, QmlJobChange *change)
{
	const AttrNumber *att = qml_catalog()->job_att;

	change->from_state = from;
	change->to_state = to;
	change->worker = text_col(newtuple, desc, att[JC_LOCKED_BY]);
	if (change->worker == NULL && oldtuple != NULL)
		change->worker = text_col(oldtuple, desc, att[JC_LOCKED_BY]);
	change->error = NULL;
	if (to == JS_FAILED || to == JS_AWAITING_RETRY)
		change->error = text_col(newtuple, desc, att[JC_LAST_ERROR]);
	else if (from == JS_PROCESSING && to == JS_ENQUEUED)
	{
		/*
		 * A rescue that runs the job again at once says why (maintain.c);
		 * a release keeps the last error of an earlier attempt, which is
		 * not this change's.
		 */
		char	   *now_error = text_col(newtuple, desc, att[JC_LAST_ERROR]);
		char	   *was_error = text_col(oldtuple, desc, att[JC_LAST_ERROR]);

		if (now_error && (was_error == NULL || strcmp(now_error, was_error) != 0))
			change->error = now_error;
	}
}

/* The whole change, as wakeup.c, queue_head.c and 1.1's history take it */
static void
change_of(TupleDesc desc, HeapTuple oldtuple, JobState from,
		  HeapTuple newtuple, JobState to, QmlJobChange *change)
{
	const AttrNumber *att = qml_catalog()->job_att;
	bool		isnull;

	worker_and_error(desc, oldtuple, from, newtuple, to, change);
	change->job_id = DatumGetInt64(heap_getattr(newtuple, att[JC_ID], desc, &isnull));
	change->queue = text_col(newtuple, desc, att[JC_QUEUE]);
	change->run_at = DatumGetTimestampTz(heap_getattr(newtuple, att[JC_RUN_AT],
													  desc, &isnull));
	if (isnull)
		change->run_at = DT_NOEND;
	change->priority = DatumGetInt32(heap_getattr(newtuple, att[JC_PRIORITY], desc, &isnull));
}

/* The change a row trigger saw, handed on */
static void
record_row_change(TupleDesc desc, HeapTuple oldtuple, JobState from,
				  HeapTuple newtuple, JobState to)
{
	QmlJobChange change;

	change_of(desc, oldtuple, from, newtuple, to, &change);
	qml_record_change(&change);
}

/* the key of a row in jobs_fetch_idx's order */
static QmlHeadKey
head_key_of(TupleDesc desc, HeapTuple tuple)
{
	const AttrNumber *att = qml_catalog()->job_att;
	QmlHeadKey	key;
	bool		isnull;

	key.priority = DatumGetInt32(heap_getattr(tuple, att[JC_PRIORITY], desc, &isnull));
	key.run_at = DatumGetTimestampTz(heap_getattr(tuple, att[JC_RUN_AT], desc, &isnull));
	key.id = DatumGetInt64(heap_getattr(tuple, att[JC_ID], desc, &isnull));
	return key;
}

/*
 * A waiting job (`oldtuple`) was updated to `newtuple`, which is
 * `still_waiting` or not, or deleted (newtuple NULL). Its transaction's
 * claims no longer see it where it waited and walk past its place:
 * should the transaction, or the subtransaction that wrote it, roll back,
 * the head moves back there, as for a claim that rolls back
 * (queue_head.c). qml_head_note_change notes a change of state at the
 * row written, whose key or queue an UPDATE may have changed too, so the
 * old place is noted here. Once an update that keeps the job enqueued
 * commits, the job waits at its new place.
 */
void
qml_job_note_waiting_changed(TupleDesc desc, HeapTuple oldtuple,
							 HeapTuple newtuple, bool still_waiting)
{
	const AttrNumber *att = qml_catalog()->job_att;
	char	   *old_queue = text_col(oldtuple, desc, att[JC_QUEUE]);
	QmlHeadKey	old_key = head_key_of(desc, oldtuple);

	if (still_waiting)
	{
		char	   *new_queue = text_col(newtuple, desc, att[JC_QUEUE]);
		QmlHeadKey	new_key = head_key_of(desc, newtuple);

		if (new_queue != NULL)
			qml_head_remember(new_queue, true, &new_key);
	}
	if (old_queue != NULL)
		qml_head_remember(old_queue, false, &old_key);
}

static void
set_col(QmlRowChanges *c, int attnum, Datum value, bool isnull)
{
	Assert(c->n < lengthof(c->cols));
	c->cols[c->n] = attnum;
	c->values[c->n] = value;
	c->nulls[c->n] = isnull;
	c->n++;
}

/*
 * Stamps column `attnum` with `now`, unless the statement set it itself
 * (the new row's value is not NULL and not the old row's): qml's own
 * statements stamp in their SET list, which spares rebuilding each row
 * here (3% of a claim or completion), and an admin's explicit value wins.
 */
static void
stamp(QmlRowChanges *c, TupleDesc desc, HeapTuple oldtuple, HeapTuple newtuple,
	  int attnum, Datum now)
{
	bool		new_null;
	bool		old_null = true;
	Datum		new_value = heap_getattr(newtuple, attnum, desc, &new_null);
	Datum		old_value = (Datum) 0;

	if (oldtuple != NULL)
		old_value = heap_getattr(oldtuple, attnum, desc, &old_null);
	if (!new_null && (old_null || DatumGetTimestampTz(new_value) !=
					  DatumGetTimestampTz(old_value)))
		return;
	set_col(c, attnum, now, false);
}

/* sets column `attnum` to NULL, unless it already is */
static void
clear(QmlRowChanges *c, TupleDesc desc, HeapTuple newtuple, int attnum)
{
	if (!heap_attisnull(newtuple, attnum, desc))
		set_col(c, attnum, (Datum) 0, true);
}

/*
 * Appends the change to the history the row carries (version 1.2's
 * qml.jobs.history, history_inline.c), when its queue records history.
 */
static void
append_history(QmlRowChanges *c, TupleDesc desc, HeapTuple oldtuple,
			   JobState from, HeapTuple newtuple, JobState to, TimestampTz at)
{
	const AttrNumber *att = qml_catalog()->job_att;
	int			attnum = att[JC_HISTORY];
	QmlJobChange change = {0};
	bool		isnull;
	Datum		old;

	/* the queue is read only when some queue has a setting of its own */
	if (qml_history_per_queue())
	{
		char	   *queue = text_col(newtuple, desc, att[JC_QUEUE]);

		if (queue == NULL || !qml_history_wanted(queue))
			return;
	}
	else if (!qml_history)
		return;
	worker_and_error(desc, oldtuple, from, newtuple, to, &change);
	old = heap_getattr(newtuple, attnum, desc, &isnull);
	set_col(c, attnum,
			PointerGetDatum(qml_history_append(isnull ? NULL : DatumGetByteaPP(old),
											   &change, at)),
			false);
}

/*
 * Whether the history of `newtuple` is the one the row had (`oldtuple`),
 * or NULL: what qml writes there is its own append (append_history).
 */
static void
check_history_kept(TupleDesc desc, HeapTuple oldtuple, HeapTuple newtuple)
{
	int			attnum = qml_catalog()->job_att[JC_HISTORY];
	Form_pg_attribute attr = TupleDescAttr(desc, attnum - 1);
	bool		oldnull;
	bool		newnull;
	Datum		old = heap_getattr(oldtuple, attnum, desc, &oldnull);
	Datum		new = heap_getattr(newtuple, attnum, desc, &newnull);

	/* cleared, or the same value (an UPDATE that did not set it) */
	if (newnull || (!oldnull && datumIsEqual(old, new, attr->attbyval, attr->attlen)))
		return;
	if (!oldnull)
	{
		bytea	   *a = DatumGetByteaPP(old);
		bytea	   *b = DatumGetByteaPP(new);

		if (VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
			memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0)
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_GENERATED_ALWAYS),
			 errmsg("column \"history\" of qml.jobs can only be cleared"),
			 errdetail("qml appends each change of state to a job's history itself."),
			 errhint("Set it to NULL to clear the job's history, or leave it out of the UPDATE.")));
}

/*
 * An INSERT may carry a history (a job moved from another database):
 * it must be one, or every read of qml.job_events would fail on it.
 */
static void
check_inserted_history(TupleDesc desc, HeapTuple newtuple)
{
	bool		isnull;
	Datum		history;

	if (!qml_catalog()->inline_history)
		return;
	history = heap_getattr(newtuple, qml_catalog()->job_att[JC_HISTORY], desc, &isnull);
	if (!isnull)
		qml_history_check(DatumGetByteaPP(history));
}

/*
 * A row about to be inserted: max_attempts from qml.default_max_attempts
 * when not given, and the stamp of the state it starts in.
 */
static HeapTuple
stamp_insert(TupleDesc desc, HeapTuple newtuple)
{
	const AttrNumber *att = qml_catalog()->job_att;
	bool		isnull;

	(void) heap_getattr(newtuple, att[JC_MAX_ATTEMPTS], desc, &isnull);
	if (isnull)
	{
		int			col = att[JC_MAX_ATTEMPTS];
		Datum		value = Int32GetDatum(qml_default_max_attempts);
		bool		null = false;

		newtuple = heap_modify_tuple_by_cols(newtuple, desc, 1, &col, &value, &null);
	}
	return qml_job_stamp_update(desc, NULL, JS_COUNT, newtuple,
								job_state_of(newtuple, desc));
}

/*
 * An update that kept the state (a heartbeat, or an admin's): an admin's
 * UPDATE may move a waiting job before its queue's head, or make a
 * scheduled or retrying job due earlier.
 */
static void
note_same_state_update(TupleDesc desc, HeapTuple oldtuple, HeapTuple newtuple,
					   JobState state)
{
	if (state == JS_ENQUEUED)
		qml_job_note_waiting_changed(desc, oldtuple, newtuple, true);
	else if (state == JS_SCHEDULED || state == JS_AWAITING_RETRY)
	{
		bool		isnull;
		Datum		run_at = heap_getattr(newtuple, qml_catalog()->job_att[JC_RUN_AT],
										  desc, &isnull);

		if (!isnull)
			qml_wake_scheduler_at_commit(DatumGetTimestampTz(run_at));
	}
}

/*
 * The row an update of `oldtuple` (in state `from`) to `newtuple` (in
 * `to`) writes: stamped, and without its lease when it left processing.
 * The BEFORE UPDATE trigger and worker_write.c both build it here.
 */
HeapTuple
qml_job_stamp_update(TupleDesc desc, HeapTuple oldtuple, JobState from,
					 HeapTuple newtuple, JobState to)
{
	const AttrNumber *att = qml_catalog()->job_att;
	QmlRowChanges changes;
	Datum		now;

	if (to == from || to == JS_COUNT)
		return newtuple;
	changes.n = 0;
	/*
	 * The clock, not the transaction's start: a fetch that waited in the
	 * server, or a long producer transaction, would otherwise stamp a time
	 * before the job really started or finished, and the latencies read
	 * off these columns would lie.
	 */
	now = TimestampTzGetDatum(GetCurrentTimestamp());

	if (to == JS_ENQUEUED)
		stamp(&changes, desc, oldtuple, newtuple, att[JC_ENQUEUED_AT], now);
	else if (to == JS_PROCESSING)
		stamp(&changes, desc, oldtuple, newtuple, att[JC_STARTED_AT], now);

	if (is_final(to))
		stamp(&changes, desc, oldtuple, newtuple, att[JC_FINISHED_AT], now);
	else if (from != JS_COUNT && is_final(from))
		clear(&changes, desc, newtuple, att[JC_FINISHED_AT]);

	if (qml_catalog()->inline_history)
		append_history(&changes, desc, oldtuple, from, newtuple, to,
					   DatumGetTimestampTz(now));

	/* only a job being processed has a lease */
	if (to != JS_PROCESSING && from == JS_PROCESSING)
	{
		clear(&changes, desc, newtuple, att[JC_LOCKED_BY]);
		clear(&changes, desc, newtuple, att[JC_LOCKED_UNTIL]);
		clear(&changes, desc, newtuple, att[JC_LEASE_PID]);
		clear(&changes, desc, newtuple, att[JC_LEASE_SESSION]);
		if (att[JC_LOCKED_ROLE] != InvalidAttrNumber)
			clear(&changes, desc, newtuple, att[JC_LOCKED_ROLE]);
	}
	if (changes.n == 0)
		return newtuple;
	return heap_modify_tuple_by_cols(newtuple, desc, changes.n, changes.cols,
									 changes.values, changes.nulls);
}

/*
 * Hands an updated row's change of state to the history, wakeup.c and
 * queue_head.c, once the update is certain to be written.
 */
void
qml_job_record_update(TupleDesc desc, HeapTuple oldtuple, JobState from,
					  HeapTuple newtuple, JobState to)
{
	if (to != from && to != JS_COUNT)
		record_row_change(desc, oldtuple, from, newtuple, to);
}

/* sets column `col` of a QmlRowChanges */
void
qml_row_set(QmlRowChanges *c, JobColumn col, Datum value, bool isnull)
{
	AttrNumber	attnum = qml_catalog()->job_att[col];

	/* a column version 1.0's table lacks (catalog.c) */
	if (attnum != InvalidAttrNumber)
		set_col(c, attnum, value, isnull);
}

/*
 * `old` (in state `from`) with the columns of `c` replaced, in state `to`,
 * then stamped as the BEFORE UPDATE trigger would (worker_write.c).
 */
HeapTuple
qml_job_update_row(TupleDesc desc, HeapTuple old, JobState from,
				   const QmlRowChanges *c, JobState to)
{
	HeapTuple	row = heap_modify_tuple_by_cols(old, desc, c->n, (int *) c->cols,
												(Datum *) c->values, (bool *) c->nulls);

	return qml_job_stamp_update(desc, old, from, row, to);
}

Datum
qml_jobs_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	newtuple;
	HeapTuple	oldtuple;
	JobState	new_state;
	JobState	old_state;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		elog(ERROR, "qml_jobs_stamp must run BEFORE INSERT OR UPDATE FOR EACH ROW");

	desc = RelationGetDescr(trigdata->tg_relation);
	if (!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		if (loading_by_copy(trigdata->tg_relation))
			return PointerGetDatum(trigdata->tg_trigtuple);
		check_inserted_history(desc, trigdata->tg_trigtuple);
		return PointerGetDatum(stamp_insert(desc, trigdata->tg_trigtuple));
	}

	oldtuple = trigdata->tg_trigtuple;
	newtuple = trigdata->tg_newtuple;
	if (qml_catalog()->inline_history)
		check_history_kept(desc, oldtuple, newtuple);
	old_state = job_state_of(oldtuple, desc);
	new_state = job_state_of(newtuple, desc);
	count_queue_move(desc, oldtuple, old_state, newtuple);
	if (new_state == old_state)
	{
		note_same_state_update(desc, oldtuple, newtuple, new_state);
		return PointerGetDatum(newtuple);
	}
	/* fires only for rows that will be written (after any recheck) */
	newtuple = qml_job_stamp_update(desc, oldtuple, old_state, newtuple, new_state);
	qml_job_record_update(desc, oldtuple, old_state, newtuple, new_state);
	if (old_state == JS_ENQUEUED)
		qml_job_note_waiting_changed(desc, oldtuple, newtuple, false);
	return PointerGetDatum(newtuple);
}

/*
 * qml_jobs_record: AFTER INSERT ... FOR EACH ROW, for rows really inserted.
 */
Datum
qml_jobs_record(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	JobState	state;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "qml_jobs_record must run AFTER INSERT FOR EACH ROW");

	if (loading_by_copy(trigdata->tg_relation))
	{
		/* nobody counted the row: qml.stats()' counts are built again */
		qml_counts_note_uncounted();
		return PointerGetDatum(NULL);
	}
	desc = RelationGetDescr(trigdata->tg_relation);
	state = job_state_of(trigdata->tg_trigtuple, desc);
	if (state != JS_COUNT)
		record_row_change(desc, NULL, JS_COUNT, trigdata->tg_trigtuple, state);
	return PointerGetDatum(NULL);
}
