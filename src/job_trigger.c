/*-------------------------------------------------------------------------
 *
 * job_trigger.c
 *	  The row trigger on qml.jobs that keeps each row's bookkeeping true
 *	  whoever changes the state: the API, the scheduler or an admin's UPDATE.
 *
 * On every state change it stamps enqueued_at, started_at or finished_at,
 * clears the lease when a job leaves `processing` and clears finished_at when
 * a job comes back to life. On insert it fills max_attempts from
 * qml.default_max_attempts. It is C because it runs for every row of every
 * claim and completion; history and NOTIFY are statement triggers in SQL,
 * which run once per statement however many rows it touched.
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

/* job states, in the order of the enum's labels */
typedef enum JobState
{
	JS_SCHEDULED,
	JS_ENQUEUED,
	JS_PROCESSING,
	JS_SUCCEEDED,
	JS_FAILED,
	JS_AWAITING_RETRY,
	JS_DELETED,
	JS_COUNT
} JobState;

static const char *const state_labels[JS_COUNT] = {
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
	int			att_state;
	int			att_max_attempts;
	int			att_enqueued_at;
	int			att_started_at;
	int			att_finished_at;
	int			att_locked_by;
	int			att_locked_until;
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
	cache->att_state = attnum_or_error(desc, "state");
	cache->att_max_attempts = attnum_or_error(desc, "max_attempts");
	cache->att_enqueued_at = attnum_or_error(desc, "enqueued_at");
	cache->att_started_at = attnum_or_error(desc, "started_at");
	cache->att_finished_at = attnum_or_error(desc, "finished_at");
	cache->att_locked_by = attnum_or_error(desc, "locked_by");
	cache->att_locked_until = attnum_or_error(desc, "locked_until");

	enum_type = TupleDescAttr(desc, cache->att_state - 1)->atttypid;
	for (i = 0; i < JS_COUNT; i++)
	{
		HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME,
										  ObjectIdGetDatum(enum_type),
										  CStringGetDatum(state_labels[i]));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "job state \"%s\" is missing from qml.job_state",
				 state_labels[i]);
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

/* collects column replacements for heap_modify_tuple_by_cols */
typedef struct Changes
{
	int			n;
	int			cols[8];
	Datum		values[8];
	bool		nulls[8];
} Changes;

static void
set_col(Changes *c, int attnum, Datum value, bool isnull)
{
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
	newtuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	new_state = job_state_of(cache, newtuple, desc);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		old_state = job_state_of(cache, trigdata->tg_trigtuple, desc);

	changes.n = 0;
	now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
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
		}
	}

	if (changes.n == 0)
		return PointerGetDatum(newtuple);
	return PointerGetDatum(heap_modify_tuple_by_cols(newtuple, desc, changes.n,
													 changes.cols,
													 changes.values,
													 changes.nulls));
}
