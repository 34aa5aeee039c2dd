/*-------------------------------------------------------------------------
 *
 * backoff.c
 *	  Retry delays: exponential backoff with jitter.
 *
 * Attempt n waits base * 2^(n-1), capped, and then a random point in the
 * upper half of that ("equal jitter"): the delay still grows with every
 * attempt, but jobs that failed together do not all come back together.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "fmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_retry_delay);

int64
qml_backoff_usec(int attempt, int64 base_usec, int64 cap_usec)
{
	int64		delay = base_usec;
	int			i;

	if (attempt < 1)
		attempt = 1;
	/* double until the cap, never past it, so it cannot overflow */
	for (i = 1; i < attempt && delay < cap_usec; i++)
		delay = (delay > cap_usec / 2) ? cap_usec : delay * 2;
	if (delay > cap_usec)
		delay = cap_usec;

	return delay / 2 + (int64) (pg_prng_double(&pg_global_prng_state) * (delay - delay / 2));
}

/*
 * Months and days count as 30 and 1 days: a backoff is a duration, not a
 * date. Saturates at the longest duration the API takes (checks.c): a
 * backoff written into qml.jobs directly, past that, would otherwise make
 * now() + delay overflow in every fail() and every rescue of the job, and
 * fail the scheduler's passes with it.
 */
static int64
interval_usec(Interval *iv)
{
	double		limit = (double) QML_MAX_DURATION_YEARS * MONTHS_PER_YEAR *
		DAYS_PER_MONTH * USECS_PER_DAY;
	double		usec = (double) iv->time + (double) iv->day * USECS_PER_DAY +
		(double) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;

	return (int64) Min(usec, limit);
}

/*
 * The delay before attempt `attempt`'s retry, in microseconds, with
 * `base` and `cap` (NULL: the qml.retry_base / qml.retry_cap settings).
 * qml.retry_delay() and qml.fail()'s direct write (worker_held.c) both
 * compute it here.
 */
int64
qml_retry_delay_usec(int attempt, Interval *base_iv, Interval *cap_iv)
{
	int64		base = base_iv == NULL ? (int64) qml_retry_base_ms * 1000 :
		interval_usec(base_iv);
	int64		cap = cap_iv == NULL ? (int64) qml_retry_cap_ms * 1000 :
		interval_usec(cap_iv);

	/*
	 * The API refuses a backoff that is not positive; one written into
	 * qml.jobs directly is taken as the shortest, not raised on: a raising
	 * delay would fail every rescue of the job, and the scheduler's passes.
	 */
	base = Max(base, 1);
	cap = Max(cap, 1);
	if (base > cap)
		base = cap;
	return qml_backoff_usec(attempt, base, cap);
}

/*
 * qml.retry_delay(attempt int, base interval = NULL, cap interval = NULL)
 *		returns interval
 *
 * NULL base or cap means the qml.retry_base / qml.retry_cap settings.
 */
Datum
qml_retry_delay(PG_FUNCTION_ARGS)
{
	Interval   *result = (Interval *) palloc0(sizeof(Interval));

	result->time = qml_retry_delay_usec(PG_ARGISNULL(0) ? 1 : PG_GETARG_INT32(0),
										PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1),
										PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2));
	PG_RETURN_INTERVAL_P(result);
}
