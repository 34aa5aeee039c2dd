/*-------------------------------------------------------------------------
 *
 * recurring.c
 *	  Recurring jobs in the backend: schedule text and time zones checked
 *	  with clear errors, the next run computed, due runs fired.
 *
 * The parser (cron.c) is plain C on wall-clock fields; here a time zone
 * turns a timestamptz into local fields and the parser's answer back. A
 * schedule may name its zone with a "CRON_TZ=Area/City " prefix or the
 * timezone argument; without either, cron fields are read in UTC.
 *
 * Interval schedules keep their cadence: the next run is the first
 * multiple of the interval after the previous due time that lies in the
 * future, so a late pass does not shift later runs, and runs missed while
 * the server was down fire once. Cron schedules run at the first matching
 * minute after now; when a DST change makes a local time occur twice or
 * not at all, the run goes to the next instant that is later than now.
 *
 * Firing is qml.fire_recurring() (SQL): it locks due rows with SKIP LOCKED,
 * enqueues and moves next_run_at in one transaction, so each due time
 * fires once whatever number of passes run at the same time, and a crash
 * leaves either both or neither.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "cron.h"
#include "qml.h"

PG_FUNCTION_INFO_V1(qml_next_run);

/* runs of one schedule looked at before giving up on a DST-mangled day */
#define MAX_LOCAL_STEPS 1000

static const char *const schedule_hint =
"Use 5-field cron such as '*/5 * * * *', a macro such as '@hourly', "
"or an interval such as '30 seconds'.";

/* "minute field: 61 is out of range" -> "Minute field: 61 is out of range." */
static char *
as_sentence(const char *reason)
{
	char	   *s = psprintf("%s.", reason);

	if (s[0] >= 'a' && s[0] <= 'z')
		s[0] = s[0] - 'a' + 'A';
	return s;
}

/*
 * Splits off a "CRON_TZ=zone " or "TZ=zone " prefix; returns the rest of
 * the text and sets *zone (NULL when there is none).
 */
static const char *
split_zone_prefix(const char *text, char **zone)
{
	const char *p = text;
	const char *start;
	int			skip;

	*zone = NULL;
	while (*p == ' ' || *p == '\t')
		p++;
	if (pg_strncasecmp(p, "CRON_TZ=", 8) == 0)
		skip = 8;
	else if (pg_strncasecmp(p, "TZ=", 3) == 0)
		skip = 3;
	else
		return text;
	start = p + skip;
	p = start;
	while (*p != '\0' && *p != ' ' && *p != '\t')
		p++;
	*zone = pnstrdup(start, p - start);
	return p;
}

static pg_tz *
zone_or_error(const char *name)
{
	pg_tz	   *tz = (name[0] == '\0') ? NULL : pg_tzset(name);

	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", name),
				 errhint("Use a name from pg_timezone_names, such as 'Europe/Paris'.")));
	return tz;
}

/* parses schedule text and its time zone, or raises 22023 */
static void
parse_schedule(const char *text, const char *zone_arg, QmlSchedule *s,
			   pg_tz **tz)
{
	char		reason[256];
	char	   *zone_prefix;
	const char *rest = split_zone_prefix(text, &zone_prefix);
	const char *zone = zone_arg;

	if (zone_prefix != NULL)
	{
		if (zone_arg != NULL && pg_strcasecmp(zone_arg, zone_prefix) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("schedule \"%s\" names time zone \"%s\" but timezone is \"%s\"",
							text, zone_prefix, zone_arg),
					 errhint("Name the time zone once.")));
		zone = zone_prefix;
	}
	if (!qml_schedule_parse(rest, s, reason, sizeof(reason)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule \"%s\"", text),
				 errdetail_internal("%s", as_sentence(reason)),
				 errhint("%s", schedule_hint)));
	*tz = zone_or_error(zone != NULL ? zone : "UTC");
}

static void
to_local(TimestampTz t, pg_tz *tz, QmlCronTime *out)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			offset;

	if (timestamp2tm(t, &offset, &tm, &fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	out->year = tm.tm_year;
	out->month = tm.tm_mon;
	out->day = tm.tm_mday;
	out->hour = tm.tm_hour;
	out->minute = tm.tm_min;
}

static TimestampTz
from_local(const QmlCronTime *local, pg_tz *tz)
{
	struct pg_tm tm;
	int			offset;
	Timestamp	result;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = local->year;
	tm.tm_mon = local->month;
	tm.tm_mday = local->day;
	tm.tm_hour = local->hour;
	tm.tm_min = local->minute;
	offset = DetermineTimeZoneOffset(&tm, tz);
	if (tm2timestamp(&tm, 0, &offset, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

/* the first run of a cron schedule later than `after` */
static TimestampTz
cron_next(const char *text, const QmlSchedule *s, pg_tz *tz, TimestampTz after)
{
	QmlCronTime cur;
	int			i;

	to_local(after, tz, &cur);
	for (i = 0; i < MAX_LOCAL_STEPS; i++)
	{
		QmlCronTime next;
		TimestampTz t;

		if (!qml_cron_next(s, &cur, &next))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("schedule \"%s\" never runs", text),
					 errdetail("No time in the next %d years matches it.",
							   QML_CRON_HORIZON_YEARS),
					 errhint("%s", schedule_hint)));
		t = from_local(&next, tz);
		if (t > after)
			return t;
		cur = next;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("schedule \"%s\" has no run after %s", text,
					timestamptz_to_str(after))));
	return 0;					/* keep the compiler quiet */
}

/* the first run of an interval schedule after `now`, on the cadence of `due` */
static TimestampTz
interval_next(int64 step, TimestampTz due, TimestampTz now)
{
	int64		k = 1;
	int64		offset;
	TimestampTz next;

	if (now >= due)
		k = (now - due) / step + 1;
	if (pg_mul_s64_overflow(k, step, &offset) ||
		pg_add_s64_overflow(due, offset, &next) || !IS_VALID_TIMESTAMP(next))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return next;
}

/*
 * qml.next_run(schedule text, timezone text, due timestamptz,
 *				now timestamptz) returns timestamptz
 *
 * Internal: the run of `schedule` that follows the one due at `due`, never
 * earlier than `now`. With due = now, the first run of a new schedule.
 * Errors: 22023 invalid schedule (the parser's reason in the detail),
 * unknown time zone, a schedule that never runs; 22004 null schedule.
 */
Datum
qml_next_run(PG_FUNCTION_ARGS)
{
	char	   *sched;
	char	   *zone = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	TimestampTz due;
	TimestampTz now;
	QmlSchedule s;
	pg_tz	   *tz;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schedule must not be null"),
				 errhint("%s", schedule_hint)));
	sched = text_to_cstring(PG_GETARG_TEXT_PP(0));
	now = PG_ARGISNULL(3) ? GetCurrentTransactionStartTimestamp() :
		PG_GETARG_TIMESTAMPTZ(3);
	due = PG_ARGISNULL(2) ? now : PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(due) || TIMESTAMP_NOT_FINITE(now))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("a recurring job's times must be finite")));

	parse_schedule(sched, zone, &s, &tz);
	if (s.kind == QML_SCHEDULE_INTERVAL)
		PG_RETURN_TIMESTAMPTZ(interval_next(s.interval_usec, due, now));
	PG_RETURN_TIMESTAMPTZ(cron_next(sched, &s, tz, Max(due, now)));
}

/* A step of the pass (SPI connected): fires due recurring jobs. */
uint64
qml_recurring_fire(int batch)
{
	static SPIPlanPtr plan = NULL;
	Datum		arg = Int32GetDatum(batch);
	Oid			type = INT4OID;
	bool		isnull;

	if (qml_spi_run(&plan, "SELECT qml.fire_recurring($1)", 1, &type, &arg) != 1)
		elog(ERROR, "could not fire recurring jobs");
	return (uint64) DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1,
												&isnull));
}
