/*-------------------------------------------------------------------------
 *
 * checks.c
 *	  Argument checks shared by the C and SQL functions, so that each kind of
 *	  bad input gets one message and one SQLSTATE wherever it is passed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_check_name_sql);
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

/* 22023 unless the interval is positive; `what` names the argument */
void
qml_check_positive(const char *what, Interval *value)
{
	Interval	zero = {0};

	if (value == NULL ||
		DatumGetBool(DirectFunctionCall2(interval_le, IntervalPGetDatum(value),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive interval", what),
				 errhint("Use an interval such as '5 minutes'.")));
}

/*
 * A per-job backoff is at most 100 years, so that the backoff arithmetic
 * (in microseconds) cannot overflow.
 */
static bool
above_backoff_limit(Interval *value)
{
	Interval	limit = {0};

	limit.month = 100 * 12;
	return DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(value),
											IntervalPGetDatum(&limit)));
}

/* 22023 unless the backoff is positive and within the limit */
void
qml_check_backoff(const char *what, Interval *value)
{
	qml_check_positive(what, value);
	if (above_backoff_limit(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most 100 years", what)));
}

/* whether qml_check_backoff() would take it (enqueue_batch's own message) */
bool
qml_backoff_in_range(Interval *value)
{
	Interval	zero = {0};

	return DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(value),
											IntervalPGetDatum(&zero))) &&
		!above_backoff_limit(value);
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

/* qml.check_lease(lease interval): for SQL callers */
Datum
qml_check_lease_sql(PG_FUNCTION_ARGS)
{
	qml_check_positive("lease", PG_ARGISNULL(0) ? NULL : PG_GETARG_INTERVAL_P(0));
	PG_RETURN_VOID();
}
