/*-------------------------------------------------------------------------
 *
 * producer_batch.c
 *	  qml.enqueue_batch in C: many jobs from one JSON array.
 *
 * The PL/pgSQL version checked the array with one query over its elements
 * and then inserted them with INSERT ... SELECT, every row through both of
 * qml.jobs' insert triggers: a third of the rate of a plain INSERT ...
 * SELECT (bench case 2). This one checks each element in C, with the same
 * messages, then writes the rows as enqueue does (producer_api.c), which
 * puts 64 of them on a page at once (direct_insert.c). A batch with a
 * unique_key, or a qml.jobs with something of an admin's own, goes to
 * qml.enqueue_batch_by_statement once it is checked.
 *
 * The whole batch is checked before anything is written; the first bad
 * element is reported with its position (22023), and nothing is enqueued.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_enqueue_batch);

/* the keys an element may have, in the order of allowed_keys */
typedef enum BatchKey
{
	BK_METHOD,
	BK_ARGUMENTS,
	BK_QUEUE,
	BK_PRIORITY,
	BK_RUN_AT,
	BK_MAX_ATTEMPTS,
	BK_UNIQUE_KEY,
	BK_BACKOFF_BASE,
	BK_BACKOFF_CAP,
	BK_COUNT
} BatchKey;

static const char *const allowed_keys[BK_COUNT] = {
	"method", "arguments", "queue", "priority", "run_at", "max_attempts",
	"unique_key", "backoff_base", "backoff_cap"
};

/* one element of the batch, once checked: the INSERT's parameters */
typedef struct BatchJob
{
	Datum		values[QML_ENQUEUE_NPARAMS];
	char		nulls[QML_ENQUEUE_NPARAMS];
	JobState	state;
} BatchJob;

static void
bad_element(int ord, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("job %d of the batch %s", ord, problem),
			 errdetail("Allowed keys: method (required), arguments, queue, priority, run_at, max_attempts, unique_key, backoff_base, backoff_cap."),
			 errhint("Nothing was enqueued.")));
}

/*
 * The element's members, by key (NULL: absent), read into `slots` in one
 * pass over its keys; returns the first key that is not an allowed one,
 * or NULL: one pass, instead of a pass for unknown keys and then a
 * lookup for each allowed key.
 */
static char *
read_members(JsonbContainer *obj, JsonbValue **member, JsonbValue *slots)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *unknown = NULL;
	int			key = -1;

	memset(member, 0, BK_COUNT * sizeof(JsonbValue *));
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_VALUE && key >= 0)
		{
			slots[key] = v;
			member[key] = &slots[key];
			key = -1;
		}
		if (tok != WJB_KEY)
			continue;
		for (key = 0; key < BK_COUNT; key++)
			if (strlen(allowed_keys[key]) == v.val.string.len &&
				memcmp(allowed_keys[key], v.val.string.val, v.val.string.len) == 0)
				break;
		if (key == BK_COUNT)
		{
			key = -1;
			if (unknown == NULL)
				unknown = pnstrdup(v.val.string.val, Min(v.val.string.len, 64));
		}
	}
	return unknown;
}

/* a JSON string of 1 to `max` characters, as text; NULL if it is not one */
static text *
name_of(JsonbValue *v, int max)
{
	if (v == NULL || v->type != jbvString || v->val.string.len == 0 ||
		pg_mbstrlen_with_len(v->val.string.val, v->val.string.len) > max)
		return NULL;
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/* a JSON number that is an integer in lo..hi, into *out */
static bool
integer_in(JsonbValue *v, int32 lo, int32 hi, int32 *out)
{
	Datum		n;
	bool		overflow = false;

	if (v->type != jbvNumeric)
		return false;
	n = NumericGetDatum(v->val.numeric);
	/* JSON has neither, but numeric_scale() has no answer for them */
	if (numeric_is_nan(v->val.numeric) || numeric_is_inf(v->val.numeric))
		return false;
	/* no digits after the point (the cheap test), or only zeros (2.0) */
	if (DatumGetInt32(DirectFunctionCall1(numeric_scale, n)) != 0 &&
		!DatumGetBool(DirectFunctionCall2(numeric_eq, n,
										  DirectFunctionCall2(numeric_trunc, n,
															  Int32GetDatum(0)))))
		return false;
	*out = numeric_int4_opt_error(v->val.numeric, &overflow);
	return !overflow && *out >= lo && *out <= hi;
}

/* a JSON string or null */
static bool
string_or_null(JsonbValue *v)
{
	return v->type == jbvString || v->type == jbvNull;
}

static char *
cstring_of(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Reads a JSON string with a type's input function (timestamptz_in,
 * interval_in) into *out; false, with the function's message in
 * *problem, when it holds no value of the type. Only a data exception
 * (class 22) is caught, and only from these input functions, which take
 * no lock, open nothing and leave no state behind: their error needs no
 * subtransaction to be undone (PostgreSQL 16's soft input errors rest on
 * the same fact). Anything else (out of memory, a cancel) goes on.
 */
static bool
read_input(PGFunction in, JsonbValue *v, Datum *out, char **problem)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *str = cstring_of(v);
	volatile bool ok = true;

	PG_TRY();
	{
		*out = DirectFunctionCall3(in, CStringGetDatum(str),
								   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		*problem = e->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * A backoff: absent or null (NULL), or a string of a duration that
 * qml_check_duration() takes; else bad_element() naming it.
 */
static void
read_backoff(JsonbValue *v, int ord, const char *key, Datum *value, char *null)
{
	char	   *problem;

	*null = 'n';
	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type != jbvString)
		bad_element(ord, psprintf("needs \"%s\" as an interval string", key));
	if (!read_input(interval_in, v, value, &problem))
		bad_element(ord, psprintf("needs \"%s\" as an interval string (%s)", key, problem));
	if (!qml_duration_ok(DatumGetIntervalP(*value), false))
		bad_element(ord, psprintf("needs \"%s\" as a positive interval of at most 100 years, of one sign", key));
	*null = ' ';
}

/*
 * The job's due time and first state: a past (or no) run_at means now, as
 * in enqueue, so the job keeps its place; an infinite or far one is
 * refused as enqueue refuses it.
 */
static void
read_run_at(JsonbValue *v, int ord, TimestampTz now, BatchJob *job)
{
	TimestampTz run_at = now;
	Datum		d;
	char	   *problem;
	const char *out_of_bounds;

	if (v != NULL && !string_or_null(v))
		bad_element(ord, "needs \"run_at\" as a timestamp string");
	if (v != NULL && v->type == jbvString)
	{
		if (!read_input(timestamptz_in, v, &d, &problem))
			bad_element(ord, psprintf("needs \"run_at\" as a timestamp string (%s)", problem));
		out_of_bounds = qml_run_at_problem(DatumGetTimestampTz(d));
		if (out_of_bounds != NULL)
			bad_element(ord, psprintf("has a \"run_at\" that %s", out_of_bounds));
		run_at = Max(DatumGetTimestampTz(d), now);
	}
	job->values[EP_RUN_AT] = TimestampTzGetDatum(run_at);
	job->state = run_at > now ? JS_SCHEDULED : JS_ENQUEUED;
}

/* absent or JSON null: the key's default, as a NULL argument of enqueue */
static bool
absent(JsonbValue *v)
{
	return v == NULL || v->type == jbvNull;
}

/*
 * Checks element `ord` (from 1) and turns it into the INSERT's parameters,
 * queue and arguments from `defaults` when it has none; raises 22023
 * naming the first problem, in the order the PL/pgSQL version checked
 * them. Sets *unique when it has a unique_key.
 */
static void
check_element(JsonbValue *elem, int ord, const BatchJob *defaults, TimestampTz now,
			  BatchJob *job, bool *unique)
{
	JsonbValue *member[BK_COUNT];
	JsonbValue	slots[BK_COUNT];
	JsonbValue *v;
	int32		n;
	char	   *key;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		bad_element(ord, "is not an object");
	if ((key = read_members(elem->val.binary.data, member, slots)) != NULL)
		bad_element(ord, psprintf("has an unknown key \"%s\"", key));

	memset(job->nulls, ' ', sizeof(job->nulls));
	v = member[BK_METHOD];
	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		bad_element(ord, "needs \"method\" as a non-empty string");
	if ((job->values[EP_METHOD] = PointerGetDatum(name_of(v, QML_MAX_METHOD_CHARS))) == 0)
		bad_element(ord, "has a \"method\" longer than 1000 characters");

	v = member[BK_QUEUE];
	job->values[EP_QUEUE] = defaults->values[EP_QUEUE];
	if (v != NULL &&
		(job->values[EP_QUEUE] = PointerGetDatum(name_of(v, QML_MAX_QUEUE_CHARS))) == 0)
		bad_element(ord, "needs \"queue\" as a string of 1 to 128 characters");

	v = member[BK_PRIORITY];
	n = 0;
	if (!absent(v) && !integer_in(v, PG_INT32_MIN, PG_INT32_MAX, &n))
		bad_element(ord, "needs \"priority\" as an integer");
	job->values[EP_PRIORITY] = Int32GetDatum(n);

	v = member[BK_MAX_ATTEMPTS];
	job->nulls[EP_MAX_ATTEMPTS] = 'n';
	if (!absent(v))
	{
		if (!integer_in(v, 1, PG_INT32_MAX, &n))
			bad_element(ord, "needs \"max_attempts\" as an integer of at least 1");
		job->values[EP_MAX_ATTEMPTS] = Int32GetDatum(n);
		job->nulls[EP_MAX_ATTEMPTS] = ' ';
	}

	read_run_at(member[BK_RUN_AT], ord, now, job);

	v = member[BK_UNIQUE_KEY];
	if (v != NULL && !string_or_null(v))
		bad_element(ord, "needs \"unique_key\" as a string");
	if (v != NULL && v->type == jbvString &&
		name_of(v, QML_MAX_UNIQUE_KEY_CHARS) == NULL)
		bad_element(ord, psprintf("needs \"unique_key\" as a string of 1 to %d characters",
								  QML_MAX_UNIQUE_KEY_CHARS));
	*unique |= v != NULL && v->type == jbvString;

	read_backoff(member[BK_BACKOFF_BASE], ord, "backoff_base",
				 &job->values[EP_BACKOFF_BASE], &job->nulls[EP_BACKOFF_BASE]);
	read_backoff(member[BK_BACKOFF_CAP], ord, "backoff_cap",
				 &job->values[EP_BACKOFF_CAP], &job->nulls[EP_BACKOFF_CAP]);

	v = member[BK_ARGUMENTS];
	job->values[EP_ARGUMENTS] = !absent(v) ? JsonbPGetDatum(JsonbValueToJsonb(v)) :
		defaults->values[EP_ARGUMENTS];
	job->nulls[EP_STATE] = job->nulls[EP_UNIQUE_KEY] = 'n';
}

/* the batch by statement, as the extension's owner (this is SECURITY DEFINER) */
static void
enqueue_by_statement(Jsonb *jobs, ReturnSetInfo *rsinfo)
{
	static SPIPlanPtr plan = NULL;
	Oid			type = JSONBOID;
	Datum		arg = JsonbPGetDatum(jobs);
	uint64		i;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = qml_execute_plan(qml_session_plan(&plan,
										   "SELECT id FROM qml.enqueue_batch_by_statement($1) id",
										   1, &type),
						  &arg, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "enqueue_batch failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									   1, &isnull);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &isnull);
	}
	SPI_finish();
}

/*
 * qml.enqueue_batch(jobs jsonb) returns setof bigint
 *
 * The jobs of the array, with enqueue's parameters as keys; their ids in
 * the order of the array.
 */
Datum
qml_enqueue_batch(PG_FUNCTION_ARGS)
{
	Jsonb	   *jobs = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	QmlDirectInsert out;
	BatchJob	defaults;
	BatchJob   *batch;
	bool		unique = false;
	int			n;
	int			i;

	if (jobs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("jobs must not be null"),
				 errhint("Pass e.g. '[{\"method\": \"send_email\", \"arguments\": [\"a@b.c\"]}]'.")));
	if (JB_ROOT_IS_SCALAR(jobs) || !JB_ROOT_IS_ARRAY(jobs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must be a JSON array of objects"),
				 errhint("Pass e.g. '[{\"method\": \"send_email\", \"arguments\": [\"a@b.c\"]}]'.")));
	PreventCommandIfReadOnly("qml.enqueue_batch()");
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	n = JB_ROOT_COUNT(jobs);
	qml_check_count("jobs", n, QML_MAX_BATCH_JOBS);
	batch = palloc(Max(n, 1) * sizeof(BatchJob));
	defaults.values[EP_QUEUE] = CStringGetTextDatum("default");
	defaults.values[EP_ARGUMENTS] = DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		check_element(getIthJsonbValueFromContainer(&jobs->root, i), i + 1,
					  &defaults, now, &batch[i], &unique);
	}
	if (n == 0)
		return (Datum) 0;
	/* unique keys need enqueue's conflict handling, one job at a time */
	if (unique || !qml_direct_open_jobs(&out))
	{
		enqueue_by_statement(jobs, rsinfo);
		return (Datum) 0;
	}
	for (i = 0; i < n; i++)
	{
		Datum		id;
		bool		isnull = false;

		CHECK_FOR_INTERRUPTS();
		id = Int64GetDatum(qml_enqueue_row(&out, batch[i].values,
										   batch[i].nulls, batch[i].state));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &isnull);
	}
	qml_direct_close(&out);
	qml_history_flush();
	return (Datum) 0;
}
