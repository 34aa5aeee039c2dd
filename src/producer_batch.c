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

#define QML_MAX_METHOD_CHARS 1000
#define QML_MAX_QUEUE_CHARS 128

static const char *const allowed_keys[] = {
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

static JsonbValue *
member(JsonbContainer *obj, const char *key)
{
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

static bool
has_only_allowed_keys(JsonbContainer *obj)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;
		int			i;

		if (tok != WJB_KEY)
			continue;
		for (i = 0; i < lengthof(allowed_keys) && !known; i++)
			known = strlen(allowed_keys[i]) == v.val.string.len &&
				memcmp(allowed_keys[i], v.val.string.val, v.val.string.len) == 0;
		if (!known)
			return false;
	}
	return true;
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
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, n,
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
 * A backoff: absent or null (NULL), or a string of a positive interval of
 * at most 100 years; false if it is none of these. A string that is no
 * interval at all raises interval_in's own error.
 */
static bool
backoff_of(JsonbValue *v, Datum *value, char *null)
{
	Datum		d;

	*null = 'n';
	if (v == NULL || v->type == jbvNull)
		return true;
	if (v->type != jbvString)
		return false;
	d = DirectFunctionCall3(interval_in, CStringGetDatum(cstring_of(v)),
							ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	if (!qml_backoff_in_range(DatumGetIntervalP(d)))
		return false;
	*value = d;
	*null = ' ';
	return true;
}

/*
 * Checks element `ord` (from 1) and turns it into the INSERT's parameters,
 * queue and arguments from `defaults` when it has none; raises 22023
 * naming the first problem, in the order the PL/pgSQL version checked
 * them. Sets *unique when it has a unique_key.
 */
static void
check_element(JsonbValue *elem, int ord, const BatchJob *defaults, BatchJob *job,
			  bool *unique)
{
	JsonbContainer *obj;
	JsonbValue *v;
	int32		n;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		bad_element(ord, "is not an object");
	obj = elem->val.binary.data;
	if (!has_only_allowed_keys(obj))
		bad_element(ord, "has an unknown key");

	memset(job->nulls, ' ', sizeof(job->nulls));
	v = member(obj, "method");
	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		bad_element(ord, "needs \"method\" as a non-empty string");
	if ((job->values[EP_METHOD] = PointerGetDatum(name_of(v, QML_MAX_METHOD_CHARS))) == 0)
		bad_element(ord, "has a \"method\" longer than 1000 characters");

	v = member(obj, "queue");
	job->values[EP_QUEUE] = defaults->values[EP_QUEUE];
	if (v != NULL &&
		(job->values[EP_QUEUE] = PointerGetDatum(name_of(v, QML_MAX_QUEUE_CHARS))) == 0)
		bad_element(ord, "needs \"queue\" as a string of 1 to 128 characters");

	v = member(obj, "priority");
	n = 0;
	if (v != NULL && !integer_in(v, -PG_INT32_MAX, PG_INT32_MAX, &n))
		bad_element(ord, "needs \"priority\" as an integer");
	job->values[EP_PRIORITY] = Int32GetDatum(n);

	v = member(obj, "max_attempts");
	job->nulls[EP_MAX_ATTEMPTS] = 'n';
	if (v != NULL)
	{
		if (!integer_in(v, 1, PG_INT32_MAX, &n))
			bad_element(ord, "needs \"max_attempts\" as an integer of at least 1");
		job->values[EP_MAX_ATTEMPTS] = Int32GetDatum(n);
		job->nulls[EP_MAX_ATTEMPTS] = ' ';
	}

	v = member(obj, "run_at");
	if (v != NULL && !string_or_null(v))
		bad_element(ord, "needs \"run_at\" as a timestamp string");
	/* read once every element is checked (set_due) */
	job->values[EP_RUN_AT] = (v != NULL && v->type == jbvString) ?
		CStringGetDatum(cstring_of(v)) : (Datum) 0;

	v = member(obj, "unique_key");
	if (v != NULL && !string_or_null(v))
		bad_element(ord, "needs \"unique_key\" as a string");
	*unique |= v != NULL && v->type == jbvString;

	if (!backoff_of(member(obj, "backoff_base"), &job->values[EP_BACKOFF_BASE],
					&job->nulls[EP_BACKOFF_BASE]))
		bad_element(ord, "needs \"backoff_base\" as a positive interval string of at most 100 years");
	if (!backoff_of(member(obj, "backoff_cap"), &job->values[EP_BACKOFF_CAP],
					&job->nulls[EP_BACKOFF_CAP]))
		bad_element(ord, "needs \"backoff_cap\" as a positive interval string of at most 100 years");

	v = member(obj, "arguments");
	job->values[EP_ARGUMENTS] = v != NULL ? JsonbPGetDatum(JsonbValueToJsonb(v)) :
		defaults->values[EP_ARGUMENTS];
	job->nulls[EP_STATE] = job->nulls[EP_UNIQUE_KEY] = 'n';
}

/*
 * The job's due time and first state, once every element is checked: a
 * past (or no) run_at means now, as in enqueue, so the job keeps its place.
 */
static void
set_due(BatchJob *job, TimestampTz now)
{
	TimestampTz run_at = now;

	if (job->values[EP_RUN_AT] != 0)
		run_at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
														 job->values[EP_RUN_AT],
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1)));
	run_at = Max(run_at, now);
	job->values[EP_RUN_AT] = TimestampTzGetDatum(run_at);
	job->state = run_at > now ? JS_SCHEDULED : JS_ENQUEUED;
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
	rc = SPI_execute_plan(qml_session_plan(&plan,
										   "SELECT id FROM qml.enqueue_batch_by_statement($1) id",
										   1, &type),
						  &arg, NULL, false, 0);
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

	if (jobs == NULL || JB_ROOT_IS_SCALAR(jobs) || !JB_ROOT_IS_ARRAY(jobs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must be a JSON array of objects"),
				 errhint("Pass e.g. '[{\"method\": \"send_email\", \"arguments\": [\"a@b.c\"]}]'.")));
	PreventCommandIfReadOnly("qml.enqueue_batch()");
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	n = JB_ROOT_COUNT(jobs);
	batch = palloc(Max(n, 1) * sizeof(BatchJob));
	defaults.values[EP_QUEUE] = CStringGetTextDatum("default");
	defaults.values[EP_ARGUMENTS] = DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		check_element(getIthJsonbValueFromContainer(&jobs->root, i), i + 1,
					  &defaults, &batch[i], &unique);
	}
	for (i = 0; i < n; i++)
		set_due(&batch[i], now);
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
