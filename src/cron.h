/*-------------------------------------------------------------------------
 *
 * cron.h
 *	  Schedule parser and next-run computation for recurring jobs.
 *
 * This module is plain C with no PostgreSQL headers, so it can be unit
 * tested and fuzzed on its own (test/cron/).  It knows nothing about time
 * zones: callers convert a TimestampTz to local wall-clock fields, ask for
 * the next matching wall-clock minute, and convert back.
 *
 * Accepted schedule text (at most QML_SCHEDULE_MAX_LEN bytes, surrounding
 * whitespace ignored, names and units case-insensitive):
 *
 *	cron:	 "minute hour day-of-month month day-of-week", fields separated
 *			 by whitespace.  Each field is a comma-separated list of items;
 *			 an item is "*", "N", "A-B", "*\/S", "A-B/S" or "A/S" (A up to the
 *			 field's maximum, step S).  Months accept JAN-DEC and days of
 *			 the week SUN-SAT, also inside ranges.  Day of week 0 and 7 are
 *			 both Sunday.
 *	macros:  @yearly @annually @monthly @weekly @daily @midnight @hourly
 *			 (@reboot is rejected: only time-based schedules are supported).
 *	interval: "[every] N unit", N a positive integer, unit one of
 *			 second(s)/sec(s)/s, minute(s)/min(s)/m, hour(s)/h, day(s)/d;
 *			 from 1 second to 366 days.  The text is an interval when it
 *			 starts with "every" or has at most three words and its second
 *			 word starts with a letter (a cron hour field never does).
 *
 * Day of month and day of week follow the classic cron rule (crontab(5)):
 * a field is "restricted" when its text does not start with '*'; when both
 * are restricted a day matches if EITHER matches, otherwise both must.  So
 * "0 0 1-7 * MON" runs on days 1-7 and on every Monday, while
 * "0 0 *\/2 * MON" runs on Mondays that fall on odd days.
 *
 * src/cron.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef QML_CRON_H
#define QML_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QML_SCHEDULE_CRON		1
#define QML_SCHEDULE_INTERVAL	2

/* Longer schedule text is rejected rather than parsed. */
#define QML_SCHEDULE_MAX_LEN	256

/* Interval bounds, in microseconds. */
#define QML_INTERVAL_MIN_USEC	INT64_C(1000000)
#define QML_INTERVAL_MAX_USEC	(INT64_C(366) * 86400 * 1000000)

/* qml_cron_next gives up when nothing matches within this many years. */
#define QML_CRON_HORIZON_YEARS	5

/*
 * Largest year qml_cron_next accepts or returns (keeps year arithmetic far
 * from overflow; PostgreSQL timestamps end well before it).
 */
#define QML_CRON_MAX_YEAR		1000000

/*
 * A parsed schedule.  For QML_SCHEDULE_CRON the bitmaps are set (bit N means
 * value N is allowed; every bitmap has at least one bit) and interval_usec is
 * 0; for QML_SCHEDULE_INTERVAL only interval_usec is set (a whole number of
 * seconds, within the bounds above).
 */
typedef struct QmlSchedule
{
	int			kind;			/* QML_SCHEDULE_CRON or QML_SCHEDULE_INTERVAL */
	/* cron */
	uint64_t	minutes;		/* bits 0..59 */
	uint32_t	hours;			/* bits 0..23 */
	uint32_t	days;			/* bits 1..31 */
	uint16_t	months;			/* bits 1..12 */
	uint8_t		weekdays;		/* bits 0..6, Sunday = 0 */
	bool		dom_restricted; /* day-of-month text does not start with '*' */
	bool		dow_restricted; /* day-of-week text does not start with '*' */
	/* interval */
	int64_t		interval_usec;	/* > 0 */
} QmlSchedule;

/*
 * Parses text (NUL-terminated) into *out.  On success returns true and fills
 * *out.  On failure returns false, leaves *out untouched and, when err is not
 * NULL and errlen > 0, writes a one-line, lower-case reason without a final
 * period, e.g. "minute field: 61 is out of range 0-59" (truncated to errlen).
 */
extern bool qml_schedule_parse(const char *text, QmlSchedule *out,
							   char *err, size_t errlen);

/* Broken-down local wall-clock time; no time zone logic here. */
typedef struct QmlCronTime
{
	int			year;			/* 1 .. QML_CRON_MAX_YEAR */
	int			month;			/* 1..12 */
	int			day;			/* 1..days in month */
	int			hour;			/* 0..23 */
	int			minute;			/* 0..59 */
} QmlCronTime;

/*
 * Computes the first wall-clock minute strictly after *after that matches a
 * QML_SCHEDULE_CRON schedule and stores it in *next.  Returns false (and
 * leaves *next untouched) when nothing matches within QML_CRON_HORIZON_YEARS
 * of *after (e.g. "0 0 30 2 *"), when s is not a cron schedule, or when
 * *after is not a valid date and time.  Skips whole months, days and hours
 * that cannot match, so a call costs at most a few thousand steps.
 */
extern bool qml_cron_next(const QmlSchedule *s, const QmlCronTime *after,
						  QmlCronTime *next);

/*
 * True when the minute *t matches a QML_SCHEDULE_CRON schedule (false for an
 * invalid *t or a non-cron schedule).
 */
extern bool qml_cron_matches(const QmlSchedule *s, const QmlCronTime *t);

#endif							/* QML_CRON_H */
