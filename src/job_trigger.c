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
 * (qml_job_stamp_update, qml_job_record_update). All of it works on rows
 * taken apart once (QmlJobRow), not on columns read one at a time from
 * the row, and a changed row is formed once.
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

/*
 * Takes `tuple` apart into `row`, every column at once: reading the
 * columns one by one (heap_getattr) walks the row from its start for each
 * column after the first that varies in length (queue), which made up
 * 5% of a claim and completion's CPU.
 */
void
qml_job_row_deform(TupleDesc desc, HeapTuple tuple, QmlJobRow *row)
{
	row->values = palloc(desc->natts * sizeof(Datum));
	row->nulls = palloc(desc->natts * sizeof(bool));
	heap_deform_tuple(tuple, desc, row->values, row->nulls);
}

/*
 * The row `row` holds, formed once, with the identity of `like` (its
 * ctid, self and table) as heap_modify_tuple would keep it.
 */
static HeapTuple
row_form(TupleDesc desc, const QmlJobRow *row, HeapTuple like)
{
	HeapTuple	tuple = heap_form_tuple(desc, row->values, row->nulls);

	tuple->t_data->t_ctid = like->t_data->t_ctid;
	tuple->t_self = like->t_self;
	tuple->t_tableOid = like->t_tableOid;
	return tuple;
}

/* the state in a row of qml.jobs; JS_COUNT if NULL or unknown */
JobState
qml_job_row_state(const QmlJobRow *row)
{
	bool		isnull;
	Datum		label = qml_row_get(row, JC_STATE, &isnull);

	return isnull ? JS_COUNT : qml_state_of_oid(DatumGetObjectId(label));
}

static bool
is_final(JobState s)
{
	return s == JS_SUCCEEDED || s == JS_FAILED || s == JS_DELETED;
}

/* a text column of the row, or NULL; palloc'd in the current context */
static char *
text_col(const QmlJobRow *row, JobColumn c)
{
	bool		isnull;
	Datum		d = qml_row_get(row, c, &isnull);

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
	Oid			into;

	if (ActivePortal == NULL || list_length(ActivePortal->stmts) != 1)
		return false;
	pstmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (pstmt->commandType != CMD_UTILITY || !IsA(pstmt->utilityStmt, CopyStmt))
		return false;
	copy = (CopyStmt *) pstmt->utilityStmt;
	if (!copy->is_from || copy->relation == NULL)
		return false;
	into = RangeVarGetRelid(copy->relation, NoLock, true);
	/* version 1.4: a COPY into qml.jobs goes on into its partitions */
	return into == RelationGetRelid(rel) ||
		(rel->rd_rel->relispartition && into == qml_catalog()->jobs);
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
count_queue_move(const QmlJobRow *old, JobState from, const QmlJobRow *new)
{
	bool		old_null;
	bool		new_null;
	Datum		old_queue = qml_row_get(old, JC_QUEUE, &old_null);
	Datum		new_queue = qml_row_get(new, JC_QUEUE, &new_null);

	/* a heartbeat's row keeps the very same bytes: no copy for it */
	if (old_null || new_null || datumIsEqual(old_queue, new_queue, false, -1))
		return;
	qml_job_counts_move(TextDatumGetCString(old_queue), from,
						TextDatumGetCString(new_queue), from);
}

/*
 * The worker and error of the change from `old` (NULL for an insert) in
 * state `from` to `new` in state `to`: all a history records besides the
 * states. The worker is the lease holder: the claimer on a claim, the
 * previous holder otherwise.
 */
static void
worker_and_error(const QmlJobRow *old, JobState from, const QmlJobRow *new,
				 JobState to, QmlJobChange *change)
{
	change->from_state = from;
	change->to_state = to;
	change->worker = text_col(new, JC_LOCKED_BY);
	if (change->worker == NULL && old != NULL)
		change->worker = text_col(old, JC_LOCKED_BY);
	change->error = NULL;
	if (to == JS_FAILED || to == JS_AWAITING_RETRY)
		change->error = text_col(new, JC_LAST_ERROR);
	else if (from == JS_PROCESSING && to == JS_ENQUEUED)
	{
		/*
		 * A rescue that runs the job again at once says why (maintain.c);
		 * a release keeps the last error of an earlier attempt, which is
		 * not this change's.
		 */
		char	   *now_error = text_col(new, JC_LAST_ERROR);
		char	   *was_error = text_col(old, JC_LAST_ERROR);

		if (now_error && (was_error == NULL || strcmp(now_error, was_error) != 0))
			change->error = now_error;
	}
}

/* The change a row trigger saw, handed on */
static void
record_row_change(const QmlJobRow *old, JobState from, const QmlJobRow *new,
				  JobState to)
{
	QmlJobChange change = {0};
	bool		isnull;

	/*
	 * The worker and the error are for the history table only: a row that
	 * carries its history has them from append_history, and reading them
	 * again (a copy of each) was 1% of a claim or completion.
	 */
	change.from_state = from;
	change.to_state = to;
	if (!qml_catalog()->inline_history)
		worker_and_error(old, from, new, to, &change);
	change.job_id = DatumGetInt64(qml_row_get(new, JC_ID, &isnull));
	change.queue = text_col(new, JC_QUEUE);
	change.run_at = DatumGetTimestampTz(qml_row_get(new, JC_RUN_AT, &isnull));
	if (isnull)
		change.run_at = DT_NOEND;
	change.priority = DatumGetInt32(qml_row_get(new, JC_PRIORITY, &isnull));
	qml_record_change(&change);
}

/* the key of a row in jobs_fetch_idx's order */
static QmlHeadKey
head_key_of(const QmlJobRow *row)
{
	QmlHeadKey	key;
	bool		isnull;

	key.priority = DatumGetInt32(qml_row_get(row, JC_PRIORITY, &isnull));
	key.run_at = DatumGetTimestampTz(qml_row_get(row, JC_RUN_AT, &isnull));
	key.id = DatumGetInt64(qml_row_get(row, JC_ID, &isnull));
	return key;
}

/*
 * A waiting job (`old`) was updated to `new`, which is `still_waiting`
 * or not, or deleted (`new` unused). Its transaction's
 * claims no longer see it where it waited and walk past its place:
 * should the transaction, or the subtransaction that wrote it, roll back,
 * the head moves back there, as for a claim that rolls back
 * (queue_head.c). qml_head_note_change notes a change of state at the
 * row written, whose key or queue an UPDATE may have changed too, so the
 * old place is noted here. Once an update that keeps the job enqueued
 * commits, the job waits at its new place.
 */
void
qml_job_note_waiting_changed(const QmlJobRow *old, const QmlJobRow *new,
							 bool still_waiting)
{
	char	   *old_queue = text_col(old, JC_QUEUE);
	QmlHeadKey	old_key = head_key_of(old);

	if (still_waiting)
	{
		char	   *new_queue = text_col(new, JC_QUEUE);
		QmlHeadKey	new_key = head_key_of(new);

		if (new_queue != NULL)
			qml_head_remember(new_queue, true, &new_key);
	}
	if (old_queue != NULL)
		qml_head_remember(old_queue, false, &old_key);
}

/*
 * Stamps column `c` with `now`, unless the statement set it itself (the
 * new row's value is not NULL and not the old row's): qml's own
 * statements stamp in their SET list, and an admin's explicit value wins.
 */
static bool
stamp(const QmlJobRow *old, QmlJobRow *new, JobColumn c, Datum now)
{
	bool		new_null;
	bool		old_null = true;
	Datum		new_value = qml_row_get(new, c, &new_null);
	Datum		old_value = (Datum) 0;

	if (old != NULL)
		old_value = qml_row_get(old, c, &old_null);
	if (!new_null && (old_null || DatumGetTimestampTz(new_value) !=
					  DatumGetTimestampTz(old_value)))
		return false;
	qml_row_set(new, c, now, false);
	return true;
}

/* sets column `c` to NULL, unless it already is (or the table lacks it) */
static bool
clear(QmlJobRow *new, JobColumn c)
{
	bool		isnull;

	(void) qml_row_get(new, c, &isnull);
	if (isnull)
		return false;
	qml_row_set(new, c, (Datum) 0, true);
	return true;
}

/*
 * Appends the change to the history the row carries (version 1.2's
 * qml.jobs.history, history_inline.c), when its queue records history.
 */
static bool
append_history(const QmlJobRow *old, JobState from, QmlJobRow *new, JobState to,
			   TimestampTz at)
{
	QmlJobChange change = {0};
	bool		isnull;
	Datum		history;

	/* the queue is read only when some queue has a setting of its own */
	if (qml_history_per_queue())
	{
		char	   *queue = text_col(new, JC_QUEUE);

		if (queue == NULL || !qml_history_wanted(queue))
			return false;
	}
	else if (!qml_history)
		return false;
	worker_and_error(old, from, new, to, &change);
	history = qml_row_get(new, JC_HISTORY, &isnull);
	qml_row_set(new, JC_HISTORY,
				PointerGetDatum(qml_history_append(isnull ? NULL : DatumGetByteaPP(history),
												   &change, at)),
				false);
	return true;
}

/*
 * Whether the history of `new` is the one the row had (`old`), or NULL:
 * what qml writes there is its own append (append_history).
 */
static void
check_history_kept(const QmlJobRow *old, const QmlJobRow *new)
{
	bool		oldnull;
	bool		newnull;
	Datum		was = qml_row_get(old, JC_HISTORY, &oldnull);
	Datum		now = qml_row_get(new, JC_HISTORY, &newnull);

	/* cleared, or the same value (an UPDATE that did not set it) */
	if (newnull || (!oldnull && datumIsEqual(was, now, false, -1)))
		return;
	if (!oldnull)
	{
		bytea	   *a = DatumGetByteaPP(was);
		bytea	   *b = DatumGetByteaPP(now);

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
check_inserted_history(const QmlJobRow *new)
{
	bool		isnull;
	Datum		history;

	if (!qml_catalog()->inline_history)
		return;
	history = qml_row_get(new, JC_HISTORY, &isnull);
	if (!isnull)
		qml_history_check(DatumGetByteaPP(history));
}

/*
 * A row about to be inserted: max_attempts from qml.default_max_attempts
 * when not given, and the stamp of the state it starts in. Whether it
 * changed.
 */
static bool
stamp_insert(QmlJobRow *new)
{
	bool		isnull;
	bool		changed = false;

	(void) qml_row_get(new, JC_MAX_ATTEMPTS, &isnull);
	if (isnull)
	{
		qml_row_set(new, JC_MAX_ATTEMPTS, Int32GetDatum(qml_default_max_attempts), false);
		changed = true;
	}
	return qml_job_stamp_update(NULL, JS_COUNT, new, qml_job_row_state(new)) || changed;
}

/*
 * An update that kept the state (a heartbeat, or an admin's): an admin's
 * UPDATE may move a waiting job before its queue's head, or make a
 * scheduled or retrying job due earlier.
 */
static void
note_same_state_update(const QmlJobRow *old, const QmlJobRow *new, JobState state)
{
	if (state == JS_ENQUEUED)
		qml_job_note_waiting_changed(old, new, true);
	else if (state == JS_SCHEDULED || state == JS_AWAITING_RETRY)
	{
		bool		isnull;
		Datum		run_at = qml_row_get(new, JC_RUN_AT, &isnull);

		if (!isnull)
			qml_wake_scheduler_at_commit(DatumGetTimestampTz(run_at));
	}
}

/*
 * Makes `new`, an update of `old` (NULL for an insert) in state `from` to
 * state `to`, the row to write: stamped, and without its lease when it
 * left processing. Returns whether it changed anything. The row triggers
 * and worker_write.c both build rows here.
 */
bool
qml_job_stamp_update(const QmlJobRow *old, JobState from, QmlJobRow *new, JobState to)
{
	bool		changed = false;
	Datum		now;

	if (to == from || to == JS_COUNT)
		return false;
	/*
	 * The clock, not the transaction's start: a fetch that waited in the
	 * server, or a long producer transaction, would otherwise stamp a time
	 * before the job really started or finished, and the latencies read
	 * off these columns would lie.
	 */
	now = TimestampTzGetDatum(GetCurrentTimestamp());

	if (to == JS_ENQUEUED)
		changed |= stamp(old, new, JC_ENQUEUED_AT, now);
	else if (to == JS_PROCESSING)
		changed |= stamp(old, new, JC_STARTED_AT, now);

	if (is_final(to))
		changed |= stamp(old, new, JC_FINISHED_AT, now);
	else if (from != JS_COUNT && is_final(from))
		changed |= clear(new, JC_FINISHED_AT);

	if (qml_catalog()->inline_history)
		changed |= append_history(old, from, new, to, DatumGetTimestampTz(now));

	/* only a job being processed has a lease */
	if (to != JS_PROCESSING && from == JS_PROCESSING)
	{
		changed |= clear(new, JC_LOCKED_BY);
		changed |= clear(new, JC_LOCKED_UNTIL);
		changed |= clear(new, JC_LEASE_PID);
		changed |= clear(new, JC_LEASE_SESSION);
		changed |= clear(new, JC_LOCKED_ROLE);
	}
	return changed;
}

/*
 * Hands an updated row's change of state to the history, wakeup.c and
 * queue_head.c, once the update is certain to be written.
 */
void
qml_job_record_update(const QmlJobRow *old, JobState from, const QmlJobRow *new,
					  JobState to)
{
	if (to != from && to != JS_COUNT)
		record_row_change(old, from, new, to);
}

Datum
qml_jobs_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	newtuple;
	QmlJobRow	old;
	QmlJobRow	new;
	JobState	new_state;
	JobState	old_state;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		elog(ERROR, "qml_jobs_stamp must run BEFORE INSERT OR UPDATE FOR EACH ROW");

	qml_check_jobs_layout(trigdata->tg_relation);
	desc = RelationGetDescr(trigdata->tg_relation);
	if (!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		newtuple = trigdata->tg_trigtuple;
		if (loading_by_copy(trigdata->tg_relation))
			return PointerGetDatum(newtuple);
		qml_job_row_deform(desc, newtuple, &new);
		check_inserted_history(&new);
		if (stamp_insert(&new))
			newtuple = row_form(desc, &new, newtuple);
		return PointerGetDatum(newtuple);
	}

	newtuple = trigdata->tg_newtuple;
	qml_job_row_deform(desc, trigdata->tg_trigtuple, &old);
	qml_job_row_deform(desc, newtuple, &new);
	if (qml_catalog()->inline_history)
		check_history_kept(&old, &new);
	old_state = qml_job_row_state(&old);
	new_state = qml_job_row_state(&new);
	count_queue_move(&old, old_state, &new);
	if (new_state == old_state)
	{
		note_same_state_update(&old, &new, new_state);
		return PointerGetDatum(newtuple);
	}
	/* fires only for rows that will be written (after any recheck) */
	if (qml_job_stamp_update(&old, old_state, &new, new_state))
		newtuple = row_form(desc, &new, newtuple);
	qml_job_record_update(&old, old_state, &new, new_state);
	if (old_state == JS_ENQUEUED)
		qml_job_note_waiting_changed(&old, &new, false);
	return PointerGetDatum(newtuple);
}

/*
 * qml_jobs_record: AFTER INSERT ... FOR EACH ROW, for rows really inserted.
 */
Datum
qml_jobs_record(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	QmlJobRow	row;
	JobState	state;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "qml_jobs_record must run AFTER INSERT FOR EACH ROW");
	qml_check_jobs_layout(trigdata->tg_relation);

	if (loading_by_copy(trigdata->tg_relation))
	{
		/* nobody counted the row: qml.stats()' counts are built again */
		qml_counts_note_uncounted();
		return PointerGetDatum(NULL);
	}
	qml_job_row_deform(RelationGetDescr(trigdata->tg_relation), trigdata->tg_trigtuple,
					   &row);
	state = qml_job_row_state(&row);
	if (state != JS_COUNT)
		record_row_change(NULL, JS_COUNT, &row, state);
	return PointerGetDatum(NULL);
}
