/*-------------------------------------------------------------------------
 *
 * checks.c
 *	  Argument checks shared by the C and SQL functions, so that each kind of
 *	  bad input gets one message and one SQLSTATE wherever it is passed.
 *
 * The bounds keep every value an argument can take inside what the code
 * computes with it: a duration is at most 100 years and never mixes signs
 * (now() + '1 month -29 days' is a day in the past in February), a run_at
 * is finite and before the year 10000, a name or key fits the indexes,
 * an array fits one allocation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_check_name_sql);
PG_FUNCTION_INFO_V1(qml_check_duration_sql);
PG_FUNCTION_INFO_V1(qml_duration_ok_sql);
PG_FUNCTION_INFO_V1(qml_check_lease_sql);

/*
 * A name (method, queue, worker): 22004 when NULL, 22023 when empty, 22001
 * when longer than maxlen characters.
 */
void
qml_check_name(const char *what, text *value, int maxlen)
{
	int			len;

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	len = pg_mbstrlen_with_len(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long (%d characters)", what, len),
				 errdetail("A %s may have at most %d characters.", what, maxlen)));
}

/*
 * What is wrong with a duration, or NULL when nothing is: positive (or
 * zero, when zero_ok), no part of the opposite sign, at most 100 years.
 */
static const char *
duration_problem(Interval *value, bool zero_ok)
{
	Interval	limit = {0};

	if (value == NULL)
		return zero_ok ? "must not be null" : "must be a positive interval";
	if (value->month < 0 || value->day < 0 || value->time < 0)
	{
		if (value->month > 0 || value->day > 0 || value->time > 0)
			return "must not mix positive and negative parts";
		return zero_ok ? "must not be negative" : "must be a positive interval";
	}
	if (!zero_ok && value->month == 0 && value->day == 0 && value->time == 0)
		return "must be a positive interval";
	limit.month = QML_MAX_DURATION_YEARS * MONTHS_PER_YEAR;
	if (DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(value),
										 IntervalPGetDatum(&limit))))
		return "must be at most 100 years";
	return NULL;
}

/*
 * 22023 unless `value` is a usable duration (duration_problem); `what`
 * names the argument.
 */
void
qml_check_duration(const char *what, Interval *value, bool zero_ok)
{
	const char *problem = duration_problem(value, zero_ok);

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s", what, problem),
				 errhint(zero_ok ? "Use an interval such as '5 minutes', or 0." :
						 "Use an interval such as '5 minutes'.")));
}

/* whether qml_check_duration() would take it (enqueue_batch's own message) */
bool
qml_duration_ok(Interval *value, bool zero_ok)
{
	return duration_problem(value, zero_ok) == NULL;
}

/*
 * What is wrong with a job's run_at, or NULL: it is finite and before the
 * year 10000 ('infinity' would be a job that never runs, and with a
 * unique_key would hold its key for ever). A past run_at means now.
 */
const char *
qml_run_at_problem(TimestampTz run_at)
{
	TimestampTz limit = (TimestampTz) (date2j(10000, 1, 1) - POSTGRES_EPOCH_JDATE) *
		USECS_PER_DAY;

	if (TIMESTAMP_NOT_FINITE(run_at))
		return "must be a finite timestamp";
	if (run_at >= limit)
		return "must be before the year 10000";
	return NULL;
}

/* 22023 unless run_at is usable (qml_run_at_problem) */
void
qml_check_run_at(TimestampTz run_at)
{
	const char *problem = qml_run_at_problem(run_at);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run_at %s", problem),
				 errhint("Pass NULL or a past time to run the job now.")));
}

/* 22023 unless a unique_key (NULL: none) has 1 to QML_MAX_UNIQUE_KEY_CHARS characters */
void
qml_check_unique_key(text *value)
{
	if (value != NULL)
		qml_check_name("unique_key", value, QML_MAX_UNIQUE_KEY_CHARS);
}

/*
 * 54000 when an array argument (of SQL or JSON) has more than `max`
 * elements: past some millions the work arrays no longer fit one
 * allocation, and the caller would get XX000.
 */
void
qml_check_count(const char *what, int n, int max)
{
	if (n > max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d elements, more than %d", what, n, max),
				 errhint("Split it over several calls.")));
}

/* qml_check_count() of a SQL array, before it is taken apart */
void
qml_check_array_size(const char *what, ArrayType *value, int max)
{
	qml_check_count(what, ArrayGetNItems(ARR_NDIM(value), ARR_DIMS(value)), max);
}

/* qml.check_name(what text, value text, maxlen int): for SQL callers */
Datum
qml_check_name_sql(PG_FUNCTION_ARGS)
{
	qml_check_name(text_to_cstring(PG_GETARG_TEXT_PP(0)),
				   PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   PG_GETARG_INT32(2));
	PG_RETURN_VOID();
}

/* qml.check_duration(what text, value interval, zero_ok boolean): for SQL callers */
Datum
qml_check_duration_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("what and zero_ok must not be null")));
	qml_check_duration(text_to_cstring(PG_GETARG_TEXT_PP(0)),
					   PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1),
					   PG_GETARG_BOOL(2));
	PG_RETURN_VOID();
}

/* qml.duration_ok(value interval, zero_ok boolean): qml.queues' CHECK */
Datum
qml_duration_ok_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(qml_duration_ok(PG_GETARG_INTERVAL_P(0), PG_GETARG_BOOL(1)));
}

/*
 * qml.check_lease(lease interval) of the 1.0 script, which a database not
 * yet updated still calls (heartbeat): the lease check of 1.1.
 */
Datum
qml_check_lease_sql(PG_FUNCTION_ARGS)
{
	qml_check_duration("lease", PG_ARGISNULL(0) ? NULL : PG_GETARG_INTERVAL_P(0),
					   false);
	PG_RETURN_VOID();
}
