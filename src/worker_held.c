/*-------------------------------------------------------------------------
 *
 * worker_held.c
 *	  The SQL functions that write the jobs a worker holds: qml.complete,
 *	  qml.complete_batch, qml.fail, qml.fail_batch, qml.heartbeat and
 *	  qml.release.
 *
 * Each checks its arguments, then writes the jobs directly
 * (qml_write_held, worker_write.c), giving only how a held job's new row
 * is made from its row and what the function returns. When qml.jobs has
 * something of an admin's own (direct_gate.c) the direct write does
 * nothing, and the function's UPDATE statement runs instead, through
 * run_statement: the same statements as version 1.2's SQL functions, the
 * row trigger doing the bookkeeping. Either way the rows, history, counts
 * and wakeups are the same. The statements rely on the search_path the
 * SQL declarations pin (pg_catalog, pg_temp) and name every object with
 * its schema.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tstoreReceiver.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_complete);
PG_FUNCTION_INFO_V1(qml_complete_batch);
PG_FUNCTION_INFO_V1(qml_fail);
PG_FUNCTION_INFO_V1(qml_fail_batch);
PG_FUNCTION_INFO_V1(qml_heartbeat);
PG_FUNCTION_INFO_V1(qml_release);

/*
 * Only the lease holder writes: the worker named, called by the role
 * that claimed or by an admin (lease_role.c). Every statement returns
 * the rows it wrote as the function returns them.
 */
#define HELD(ids) \
" WHERE j.id " ids " AND j.state = 'processing' AND j.locked_by = $2" \
"   AND qml.may_act(j.locked_role)"

/*
 * A completion stamps and drops the lease itself, so that the row trigger
 * need not rebuild the row to do it (job_trigger.c).
 */
#define COMPLETE_SET \
"UPDATE qml.jobs j SET state = 'succeeded'," \
"       finished_at = clock_timestamp(), locked_by = NULL, locked_until = NULL," \
"       lease_pid = NULL, lease_session = NULL, locked_role = NULL"

static const char *const complete_sql = COMPLETE_SET ", result = $3"
HELD("= $1") " RETURNING j.id";

static const char *const complete_batch_sql = COMPLETE_SET
HELD("= ANY ($1)") " RETURNING j.id";

static const char *const complete_batch_results_sql = COMPLETE_SET ","
"       result = $3[array_position($1, j.id) - 1 + array_lower($3, 1)]"
HELD("= ANY ($1)") " RETURNING j.id";

/* version 1.2's qml.fail_batch, for job_ids $1, errors $3, retry $4 */
static const char *const fail_sql =
"UPDATE qml.jobs j"
"   SET state = CASE WHEN f.again AND j.attempts < j.max_attempts"
"                    THEN 'awaiting_retry' ELSE 'failed' END::qml.job_state,"
"       run_at = CASE WHEN f.again AND j.attempts < j.max_attempts"
"                     THEN now() + qml.retry_delay(j.attempts, j.backoff_base, j.backoff_cap)"
"                     ELSE j.run_at END,"
"       last_error = coalesce(f.error, 'failed without an error message')"
"  FROM unnest($1, $3, coalesce($4, array_fill(true, ARRAY[cardinality($1)])))"
"         AS f(id, error, again)"
HELD("= f.id")
" RETURNING j.id, j.state, CASE WHEN j.state = 'awaiting_retry' THEN j.run_at END";

static const char *const heartbeat_sql =
"UPDATE qml.jobs j SET locked_until = now() + $3"
HELD("= ANY ($1)") " RETURNING j.id";

static const char *const release_sql =
"UPDATE qml.jobs j SET state = 'enqueued', attempts = greatest(j.attempts - 1, 0)"
HELD("= $1") " RETURNING j.id";

/* what the direct write tells a read-only transaction it cannot run */
#define READ_ONLY_AS "UPDATE"

/*
 * Runs `sql` (one of the statements above, prepared once a session) with
 * `values` and `nulls`: the way every function here writes when the direct
 * write may not. The rows it returns go straight to the function's result
 * set when `rsinfo` is given (as the direct write's do, spilling to disk
 * past work_mem, not kept in memory by SPI until the end); else column
 * `col` of the first of them, if any, to *value when `value` is. Returns
 * how many rows it wrote. As origin, in any session (qml_execute_plan).
 */
static uint64
run_statement(const char *caller, SPIPlanPtr *plan, const char *sql, int nargs,
			  Oid *types, Datum *values, const char *nulls,
			  ReturnSetInfo *rsinfo, int col, Datum *value, bool *isnull)
{
	DestReceiver *dest = NULL;
	uint64		n;
	int			rc;

	Assert(rsinfo == NULL || value == NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (rsinfo != NULL)
	{
		/* RETURNING lists the function's result columns, in order */
		dest = CreateDestReceiver(DestTuplestore);
		SetTuplestoreDestReceiverParams(dest, rsinfo->setResult,
										rsinfo->econtext->ecxt_per_query_memory,
										false, NULL, NULL);
	}
	rc = qml_execute_plan_into(qml_session_plan(plan, sql, nargs, types), values,
							   nulls, dest);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "%s failed: %s", caller, SPI_result_code_string(rc));
	n = SPI_processed;
	/* the columns returned are all passed by value (id, state) */
	if (value != NULL && n > 0)
		*value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							   col, isnull);
	if (dest != NULL)
		dest->rDestroy(dest);
	SPI_finish();
	return n;
}

/* a caller's array taken apart: elements, their NULLs, how many */
typedef struct Elements
{
	Datum	   *values;
	bool	   *nulls;
	int			n;
} Elements;

static void
elements_of(ArrayType *array, Oid type, Elements *e)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(array, type, typlen, typbyval, typalign,
					  &e->values, &e->nulls, &e->n);
}

/*
 * The array of the `n` elements `values` and `nulls` of type `type`: one
 * dimension, subscripts from 1
 */
static Datum
array_of(Datum *values, bool *nulls, int n, Oid type)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type,
											  typlen, typbyval, typalign));
}

/* an array of one element, `value` of type `type` */
static Datum
one_element(Datum value, bool isnull, Oid type)
{
	return array_of(&value, &isnull, 1, type);
}

/* the state's enum value, as a result column */
static Datum
state_datum(JobState s)
{
	return ObjectIdGetDatum(qml_catalog()->state_oids[s]);
}

/* now() + `iv`, as the statements compute it */
static TimestampTz
now_plus(Interval *iv)
{
	return DatumGetTimestampTz(
		DirectFunctionCall2(timestamptz_pl_interval,
							TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
							IntervalPGetDatum(iv)));
}

/*
 * What a function's write needs besides the ids, and where its result
 * goes: one struct for all of them, each using its own fields.
 */
typedef struct HeldArgs
{
	ReturnSetInfo *rsinfo;		/* a set-returning function's rows, or NULL */
	/* complete: results[pos] for the job at pos, when results is given */
	const Datum *results;
	const bool *result_nulls;
	/* fail: errors[pos]; retry[pos] when given (none at all: no retry) */
	const Datum *errors;
	const bool *error_nulls;
	bool		retry_given;
	const Datum *retry;
	int			nretry;
	Datum		state;			/* qml.fail's result ... */
	bool		state_null;		/* ... NULL when not written */
	/* heartbeat */
	TimestampTz locked_until;
} HeldArgs;

/* Completions ------------------------------------------------------- */

/*
 * The succeeded row: what COMPLETE_SET writes, the result only when one
 * was passed.
 */
static JobState
succeeded_row(const QmlJobRow *old, QmlJobRow *new, int pos, void *arg)
{
	HeldArgs   *a = (HeldArgs *) arg;

	qml_row_set(new, JC_STATE, state_datum(JS_SUCCEEDED), false);
	qml_row_set(new, JC_FINISHED_AT, TimestampTzGetDatum(GetCurrentTimestamp()), false);
	qml_row_set(new, JC_LOCKED_BY, (Datum) 0, true);
	qml_row_set(new, JC_LOCKED_UNTIL, (Datum) 0, true);
	qml_row_set(new, JC_LOCKED_ROLE, (Datum) 0, true);
	qml_row_set(new, JC_LEASE_PID, (Datum) 0, true);
	qml_row_set(new, JC_LEASE_SESSION, (Datum) 0, true);
	if (a->results != NULL)
		qml_row_set(new, JC_RESULT, a->results[pos], a->result_nulls[pos]);
	return JS_SUCCEEDED;
}

/* a held job written: its id into the result set, when there is one */
static void
id_written(const QmlJobRow *new, JobState to, int pos, void *arg)
{
	ReturnSetInfo *rsinfo = ((HeldArgs *) arg)->rsinfo;
	bool		isnull;
	Datum		id = qml_row_get(new, JC_ID, &isnull);

	if (rsinfo != NULL)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &isnull);
}

/*
 * qml.complete(job_id bigint, worker text, result jsonb = NULL) returns bool
 *
 * processing -> succeeded, for the lease holder only; false otherwise (a
 * lost lease is a race, not an error).
 */
Datum
qml_complete(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, TEXTOID, JSONBOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		id_null = false;
	bool		result_null = PG_ARGISNULL(2);
	HeldArgs	args = {0};
	QmlHeldWrite w = {"qml.complete()", succeeded_row, id_written, &args};
	int			n;

	qml_check_name("worker", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   QML_MAX_WORKER_CHARS);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	args.results = &values[2];
	args.result_nulls = &result_null;

	n = qml_write_held(&w, &values[0], &id_null, 1, PG_GETARG_TEXT_PP(1));
	if (n < 0)
		n = (int) run_statement("complete", &plan, complete_sql, 3, types, values,
								nulls, NULL, 0, NULL, NULL);
	PG_RETURN_BOOL(n > 0);
}

/*
 * qml.complete_batch(job_ids bigint[], worker text, results jsonb[] = NULL)
 *		returns setof bigint
 *
 * Completes the jobs this worker still holds, with results[i] for
 * job_ids[i] when results is given; returns their ids.
 */
Datum
qml_complete_batch(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr results_plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[3] = {INT8ARRAYOID, TEXTOID, JSONBARRAYOID};
	Datum		values[3];
	bool		with_results = !PG_ARGISNULL(2);
	Elements	ids;
	Elements	results = {0};
	HeldArgs	args = {0};
	QmlHeldWrite w = {"qml.complete_batch()", succeeded_row, id_written, &args};

	qml_check_name("worker", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   QML_MAX_WORKER_CHARS);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	qml_check_array_size("job_ids", PG_GETARG_ARRAYTYPE_P(0), QML_MAX_BATCH_IDS);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	elements_of(PG_GETARG_ARRAYTYPE_P(0), INT8OID, &ids);
	if (with_results)
	{
		elements_of(PG_GETARG_ARRAYTYPE_P(2), JSONBOID, &results);
		if (ids.n != results.n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("results has %d elements but job_ids has %d",
							results.n, ids.n),
					 errhint("Pass one result per job, or none at all.")));
		args.results = results.values;
		args.result_nulls = results.nulls;
	}
	args.rsinfo = rsinfo;

	if (qml_write_held(&w, ids.values, ids.nulls, ids.n, PG_GETARG_TEXT_PP(1)) < 0)
	{
		if (with_results)
		{
			/*
			 * The statement pairs them by subscript (array_position): it
			 * gets both in one dimension from 1, so that results[i] is
			 * job_ids[i]'s whatever the caller's bounds and shape, as here.
			 */
			values[0] = array_of(ids.values, ids.nulls, ids.n, INT8OID);
			values[2] = array_of(results.values, results.nulls, results.n, JSONBOID);
			run_statement("complete_batch", &results_plan, complete_batch_results_sql,
						  3, types, values, NULL, rsinfo, 0, NULL, NULL);
		}
		else
			run_statement("complete_batch", &plan, complete_batch_sql, 2, types,
						  values, NULL, rsinfo, 0, NULL, NULL);
	}
	return (Datum) 0;
}

/* Failures ---------------------------------------------------------- */

/*
 * The failed row, as fail_sql's SET list writes it: awaiting_retry, due
 * after the backoff, while retry is asked for and attempts remain, else
 * failed; the error, or a word that there was none.
 */
static JobState
failed_row(const QmlJobRow *old, QmlJobRow *new, int pos, void *arg)
{
	HeldArgs   *a = (HeldArgs *) arg;
	bool		attempts_null;
	bool		max_null;
	bool		isnull;
	int32		attempts = DatumGetInt32(qml_row_get(old, JC_ATTEMPTS, &attempts_null));
	int32		max_attempts = DatumGetInt32(qml_row_get(old, JC_MAX_ATTEMPTS, &max_null));
	/* unnest pads an empty retry with NULLs, which retry nothing */
	bool		again = !a->retry_given ||
		(pos < a->nretry && DatumGetBool(a->retry[pos]));
	JobState	to = JS_FAILED;

	if (again && !attempts_null && !max_null && attempts < max_attempts)
	{
		Interval   *delay = (Interval *) palloc0(sizeof(Interval));
		Datum		base = qml_row_get(old, JC_BACKOFF_BASE, &isnull);
		Interval   *base_iv = isnull ? NULL : DatumGetIntervalP(base);
		Datum		cap = qml_row_get(old, JC_BACKOFF_CAP, &isnull);

		delay->time = qml_retry_delay_usec(attempts, base_iv,
										   isnull ? NULL : DatumGetIntervalP(cap));
		qml_row_set(new, JC_RUN_AT, TimestampTzGetDatum(now_plus(delay)), false);
		to = JS_AWAITING_RETRY;
	}
	qml_row_set(new, JC_STATE, state_datum(to), false);
	qml_row_set(new, JC_LAST_ERROR,
				a->error_nulls[pos] ?
				CStringGetTextDatum("failed without an error message") : a->errors[pos],
				false);
	return to;
}

/*
 * A failed job written: fail_batch's row (id, state, when the retry is
 * due), or qml.fail's state.
 */
static void
fail_written(const QmlJobRow *new, JobState to, int pos, void *arg)
{
	HeldArgs   *a = (HeldArgs *) arg;
	Datum		values[3];
	bool		nulls[3] = {false, false, to != JS_AWAITING_RETRY};

	a->state = state_datum(to);
	a->state_null = false;
	if (a->rsinfo == NULL)
		return;
	values[0] = qml_row_get(new, JC_ID, &nulls[0]);
	values[1] = a->state;
	values[2] = nulls[2] ? (Datum) 0 : qml_row_get(new, JC_RUN_AT, &nulls[2]);
	tuplestore_putvalues(a->rsinfo->setResult, a->rsinfo->setDesc, values, nulls);
}

/*
 * Fails the jobs of `ids` (an int8[] datum) with `errors` and `retry`
 * (text[] and bool[] datums; retry may be NULL), as fail_batch: directly,
 * or by fail_sql. The rows go to a->rsinfo when set; else a->state gets
 * the state of the job written.
 */
static void
fail_jobs(HeldArgs *a, Datum ids, Datum worker, Datum errors, Datum retry,
		  bool retry_null)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {INT8ARRAYOID, TEXTOID, TEXTARRAYOID, BOOLARRAYOID};
	Datum		values[4] = {ids, worker, errors, retry};
	char		nulls[4] = {' ', ' ', ' ', retry_null ? 'n' : ' '};
	QmlHeldWrite w = {READ_ONLY_AS, failed_row, fail_written, a};
	Elements	id;
	Elements	err;
	Elements	again = {0};

	elements_of(DatumGetArrayTypeP(ids), INT8OID, &id);
	elements_of(DatumGetArrayTypeP(errors), TEXTOID, &err);
	if (!retry_null)
		elements_of(DatumGetArrayTypeP(retry), BOOLOID, &again);
	a->errors = err.values;
	a->error_nulls = err.nulls;
	a->retry_given = !retry_null;
	a->retry = again.values;
	a->nretry = again.n;
	a->state_null = true;
	if (qml_write_held(&w, id.values, id.nulls, id.n, DatumGetTextPP(worker)) < 0)
		run_statement("fail_batch", &plan, fail_sql, 4, types, values, nulls,
					  a->rsinfo, 2, a->rsinfo != NULL ? NULL : &a->state,
					  &a->state_null);
}

/* 22004 for a NULL in retry, as version 1.2's array_position check */
static void
check_retry(ArrayType *retry)
{
	Elements	e;
	int			i;

	if (retry == NULL)
		return;
	if (ARR_NDIM(retry) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("searching for elements in multidimensional arrays is not supported")));
	elements_of(retry, BOOLOID, &e);
	for (i = 0; i < e.n; i++)
		if (e.nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("retry must not be null"),
					 errhint("Pass true to retry while attempts remain, false to fail for good.")));
}

/*
 * qml.fail_batch(job_ids bigint[], worker text, errors text[],
 *				  retry boolean[] = NULL)
 *		returns table (job_id bigint, state qml.job_state, next_run_at timestamptz)
 *
 * qml.fail for many jobs: a row for each job this worker still held.
 * The checks, in version 1.2's order: the worker's name; NULL job_ids,
 * no rows; NULL errors; arrays of other lengths; a NULL in retry.
 */
Datum
qml_fail_batch(PG_FUNCTION_ARGS)
{
	ArrayType  *retry = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	HeldArgs	args = {0};
	int			nids;
	int			nerrors;
	int			nretry;

	qml_check_name("worker", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   QML_MAX_WORKER_CHARS);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (PG_ARGISNULL(0))
		return (Datum) 0;		/* no jobs, as for complete_batch */
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("errors must not be null"),
				 errhint("Pass one error message (or NULL element) per job.")));
	nids = ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(0)), ARR_DIMS(PG_GETARG_ARRAYTYPE_P(0)));
	nerrors = ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(2)), ARR_DIMS(PG_GETARG_ARRAYTYPE_P(2)));
	nretry = retry == NULL ? 0 : ArrayGetNItems(ARR_NDIM(retry), ARR_DIMS(retry));
	if (nerrors != nids || (nretry != 0 && nretry != nids))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %d elements but job_ids has %d",
						nerrors != nids ? "errors" : "retry",
						nerrors != nids ? nerrors : nretry, nids),
				 errhint("Give errors (and retry, if given) one element per job id.")));
	check_retry(retry);

	args.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	fail_jobs(&args, PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2),
			  PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), PG_ARGISNULL(3));
	return (Datum) 0;
}

/*
 * qml.fail(job_id bigint, worker text, error text, retry boolean = true)
 *		returns qml.job_state
 *
 * processing -> awaiting_retry (with backoff) while attempts remain and
 * retry is true, else -> failed. The new state, or NULL when the worker
 * no longer holds the job. Version 1.2's fail_batch of one job: its
 * checks, in its order, then the same write.
 */
Datum
qml_fail(PG_FUNCTION_ARGS)
{
	HeldArgs	args = {0};
	Datum		id = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	bool		id_null = PG_ARGISNULL(0);
	Datum		error = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	bool		error_null = PG_ARGISNULL(2);
	Datum		again = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	QmlHeldWrite w = {READ_ONLY_AS, failed_row, fail_written, &args};

	qml_check_name("worker", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   QML_MAX_WORKER_CHARS);
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("retry must not be null"),
				 errhint("Pass true to retry while attempts remain, false to fail for good.")));
	args.errors = &error;
	args.error_nulls = &error_null;
	args.retry_given = true;
	args.retry = &again;
	args.nretry = 1;
	args.state_null = true;
	if (qml_write_held(&w, &id, &id_null, 1, PG_GETARG_TEXT_PP(1)) < 0)
	{
		/* the statement takes arrays: this job's, of one element each */
		Datum		ids = one_element(id, id_null, INT8OID);
		Datum		errors = one_element(error, error_null, TEXTOID);
		Datum		retry = one_element(again, false, BOOLOID);

		fail_jobs(&args, ids, PG_GETARG_DATUM(1), errors, retry, false);
	}
	if (args.state_null)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(args.state);
}

/* Heartbeats and releases ------------------------------------------- */

/* the row with its lease extended, as heartbeat_sql's SET list writes it */
static JobState
extended_row(const QmlJobRow *old, QmlJobRow *new, int pos, void *arg)
{
	qml_row_set(new, JC_LOCKED_UNTIL,
				TimestampTzGetDatum(((HeldArgs *) arg)->locked_until), false);
	return JS_PROCESSING;
}

/*
 * qml.heartbeat(job_ids bigint[], worker text, lease interval = '5 minutes')
 *		returns setof bigint
 *
 * Extends the leases this worker still holds to now() + lease; returns
 * their ids.
 */
Datum
qml_heartbeat(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8ARRAYOID, TEXTOID, INTERVALOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	Interval   *lease = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	HeldArgs	args = {0};
	QmlHeldWrite w = {READ_ONLY_AS, extended_row, id_written, &args};
	Elements	ids = {0};

	qml_check_name("worker", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   QML_MAX_WORKER_CHARS);
	qml_check_duration("lease", lease, false);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	args.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	args.locked_until = now_plus(lease);
	/* NULL job_ids: no jobs, but the UPDATE it was still runs its checks */
	if (!PG_ARGISNULL(0))
		elements_of(PG_GETARG_ARRAYTYPE_P(0), INT8OID, &ids);
	if (qml_write_held(&w, ids.values, ids.nulls, ids.n, PG_GETARG_TEXT_PP(1)) >= 0)
		return (Datum) 0;
	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	values[1] = PG_GETARG_DATUM(1);
	values[2] = IntervalPGetDatum(lease);
	run_statement("heartbeat", &plan, heartbeat_sql, 3, types, values, nulls,
				  args.rsinfo, 0, NULL, NULL);
	return (Datum) 0;
}

/*
 * The row given back unrun, as release_sql's SET list writes it: enqueued,
 * the attempt it was fetched with not counted (the trigger's code then
 * stamps it, drops the lease, and moves its queue's head back to it).
 */
static JobState
released_row(const QmlJobRow *old, QmlJobRow *new, int pos, void *arg)
{
	bool		isnull;
	int32		attempts = DatumGetInt32(qml_row_get(old, JC_ATTEMPTS, &isnull));

	/* greatest(attempts - 1, 0): NULL is passed over, leaving 0 */
	qml_row_set(new, JC_ATTEMPTS, Int32GetDatum(isnull ? 0 : Max(attempts - 1, 0)), false);
	qml_row_set(new, JC_STATE, state_datum(JS_ENQUEUED), false);
	return JS_ENQUEUED;
}

/*
 * qml.release(job_id bigint, worker text) returns boolean
 *
 * Gives a held job back unrun (e.g. at shutdown); false when the worker
 * no longer holds it.
 */
Datum
qml_release(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		id_null = PG_ARGISNULL(0);
	HeldArgs	args = {0};
	QmlHeldWrite w = {READ_ONLY_AS, released_row, id_written, &args};
	int			n;

	qml_check_name("worker", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   QML_MAX_WORKER_CHARS);
	values[0] = id_null ? (Datum) 0 : PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	if (id_null)
		nulls[0] = 'n';
	n = qml_write_held(&w, &values[0], &id_null, 1, PG_GETARG_TEXT_PP(1));
	if (n < 0)
		n = (int) run_statement("release", &plan, release_sql, 2, types, values,
								nulls, NULL, 0, NULL, NULL);
	PG_RETURN_BOOL(n > 0);
}
