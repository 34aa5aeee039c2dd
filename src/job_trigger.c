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
 *
 * Both are C because they run for every row of every claim and completion.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_enum.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_jobs_stamp);
PG_FUNCTION_INFO_V1(qml_jobs_record);

const char *const qml_state_labels[JS_COUNT] = {
	"scheduled", "enqueued", "processing", "succeeded", "failed",
	"awaiting_retry", "deleted"
};

/*
 * What the trigger looks up once per statement (kept in fn_extra, which
 * lives as long as the statement's trigger state, so a dropped and
 * re-created extension can never leave stale OIDs behind).
 */
typedef struct StampCache
{
	Oid			state_oids[JS_COUNT];
	int			att_id;
	int			att_queue;
	int			att_state;
	int			att_max_attempts;
	int			att_last_error;
	int			att_run_at;
	int			att_enqueued_at;
	int			att_started_at;
	int			att_finished_at;
	int			att_locked_by;
	int			att_locked_until;
	int			att_lease_pid;
	int			att_lease_session;
} StampCache;

static int
attnum_or_error(TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "qml.jobs has no column \"%s\"", name);
	return attnum;
}

static StampCache *
stamp_cache(FunctionCallInfo fcinfo, Relation rel)
{
	StampCache *cache = (StampCache *) fcinfo->flinfo->fn_extra;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			enum_type;
	int			i;

	if (cache != NULL)
		return cache;

	cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(StampCache));
	cache->att_id = attnum_or_error(desc, "id");
	cache->att_queue = attnum_or_error(desc, "queue");
	cache->att_state = attnum_or_error(desc, "state");
	cache->att_last_error = attnum_or_error(desc, "last_error");
	cache->att_run_at = attnum_or_error(desc, "run_at");
	cache->att_max_attempts = attnum_or_error(desc, "max_attempts");
	cache->att_enqueued_at = attnum_or_error(desc, "enqueued_at");
	cache->att_started_at = attnum_or_error(desc, "started_at");
	cache->att_finished_at = attnum_or_error(desc, "finished_at");
	cache->att_locked_by = attnum_or_error(desc, "locked_by");
	cache->att_locked_until = attnum_or_error(desc, "locked_until");
	cache->att_lease_pid = attnum_or_error(desc, "lease_pid");
	cache->att_lease_session = attnum_or_error(desc, "lease_session");

	enum_type = TupleDescAttr(desc, cache->att_state - 1)->atttypid;
	for (i = 0; i < JS_COUNT; i++)
	{
		HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME,
										  ObjectIdGetDatum(enum_type),
										  CStringGetDatum(qml_state_labels[i]));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "job state \"%s\" is missing from qml.job_state",
				 qml_state_labels[i]);
		cache->state_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}

	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

static JobState
job_state_of(StampCache *cache, HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Oid			oid = DatumGetObjectId(heap_getattr(tuple, cache->att_state,
													desc, &isnull));
	int			i;

	if (isnull)
		return JS_COUNT;
	for (i = 0; i < JS_COUNT; i++)
		if (cache->state_oids[i] == oid)
			return (JobState) i;
	return JS_COUNT;
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
 * Hands a state change to the history and to wakeup.c (which wakes the
 * queue's workers when a job became enqueued, and counts it). The worker is the lease holder: the claimer on a
 * claim, the previous holder otherwise.
 */
static void
record_change(StampCache *cache, TupleDesc desc, HeapTuple oldtuple,
			  JobState from, HeapTuple newtuple, JobState to)
{
	QmlJobChange change;
	bool		isnull;

	change.job_id = DatumGetInt64(heap_getattr(newtuple, cache->att_id, desc, &isnull));
	change.from_state = from;
	change.to_state = to;
	change.queue = text_col(newtuple, desc, cache->att_queue);
	change.worker = text_col(newtuple, desc, cache->att_locked_by);
	if (change.worker == NULL && oldtuple != NULL)
		change.worker = text_col(oldtuple, desc, cache->att_locked_by);
	change.error = (to == JS_FAILED || to == JS_AWAITING_RETRY) ?
		text_col(newtuple, desc, cache->att_last_error) : NULL;

	change.run_at = DatumGetTimestampTz(heap_getattr(newtuple, cache->att_run_at,
													 desc, &isnull));
	if (isnull)
		change.run_at = DT_NOEND;

	qml_history_add(&change);
	/* wakeups, statistics and the scheduler's next due time (wakeup.c) */
	qml_job_changed(&change);
}

/* collects column replacements for heap_modify_tuple_by_cols */
typedef struct Changes
{
	int			n;
	int			cols[12];
	Datum		values[12];
	bool		nulls[12];
} Changes;

static void
set_col(Changes *c, int attnum, Datum value, bool isnull)
{
	Assert(c->n < lengthof(c->cols));
	c->cols[c->n] = attnum;
	c->values[c->n] = value;
	c->nulls[c->n] = isnull;
	c->n++;
}

Datum
qml_jobs_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	StampCache *cache;
	HeapTuple	newtuple;
	HeapTuple	oldtuple = NULL;
	JobState	new_state;
	JobState	old_state = JS_COUNT;
	Datum		now;
	Changes		changes;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		elog(ERROR, "qml_jobs_stamp must run BEFORE INSERT OR UPDATE FOR EACH ROW");

	desc = RelationGetDescr(trigdata->tg_relation);
	cache = stamp_cache(fcinfo, trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		oldtuple = trigdata->tg_trigtuple;
		newtuple = trigdata->tg_newtuple;
		old_state = job_state_of(cache, oldtuple, desc);
	}
	else
		newtuple = trigdata->tg_trigtuple;
	new_state = job_state_of(cache, newtuple, desc);

	changes.n = 0;
	/*
	 * The clock, not the transaction's start: a fetch that waited in the
	 * server, or a long producer transaction, would otherwise stamp a time
	 * before the job really started or finished, and the latencies read
	 * off these columns would lie.
	 */
	now = TimestampTzGetDatum(GetCurrentTimestamp());

	if (oldtuple == NULL)
	{
		bool		isnull;

		(void) heap_getattr(newtuple, cache->att_max_attempts, desc, &isnull);
		if (isnull)
			set_col(&changes, cache->att_max_attempts,
					Int32GetDatum(qml_default_max_attempts), false);
	}

	if (new_state != old_state && new_state != JS_COUNT)
	{
		if (new_state == JS_ENQUEUED)
			set_col(&changes, cache->att_enqueued_at, now, false);
		else if (new_state == JS_PROCESSING)
			set_col(&changes, cache->att_started_at, now, false);

		if (is_final(new_state))
			set_col(&changes, cache->att_finished_at, now, false);
		else if (old_state != JS_COUNT && is_final(old_state))
			set_col(&changes, cache->att_finished_at, (Datum) 0, true);

		/* only a job being processed has a lease */
		if (new_state != JS_PROCESSING && old_state == JS_PROCESSING)
		{
			set_col(&changes, cache->att_locked_by, (Datum) 0, true);
			set_col(&changes, cache->att_locked_until, (Datum) 0, true);
			set_col(&changes, cache->att_lease_pid, (Datum) 0, true);
			set_col(&changes, cache->att_lease_session, (Datum) 0, true);
		}
	}

	if (changes.n > 0)
		newtuple = heap_modify_tuple_by_cols(newtuple, desc, changes.n,
											 changes.cols, changes.values,
											 changes.nulls);
	if (oldtuple != NULL && new_state != old_state && new_state != JS_COUNT)
		record_change(cache, desc, oldtuple, old_state, newtuple, new_state);

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
	StampCache *cache;
	JobState	state;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "qml_jobs_record must run AFTER INSERT FOR EACH ROW");

	desc = RelationGetDescr(trigdata->tg_relation);
	cache = stamp_cache(fcinfo, trigdata->tg_relation);
	state = job_state_of(cache, trigdata->tg_trigtuple, desc);
	if (state != JS_COUNT)
		record_change(cache, desc, NULL, JS_COUNT, trigdata->tg_trigtuple, state);
	return PointerGetDatum(NULL);
}
