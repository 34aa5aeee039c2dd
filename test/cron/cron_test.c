/*-------------------------------------------------------------------------
 *
 * cron_test.c
 *	  Unit tests for the schedule parser and next-run computation (src/cron.c).
 *
 * Every expected value here is worked out by hand (bit lists, calendar
 * dates), not computed with the code under test.  Prints one line per
 * failure and a summary; exits non-zero on any failure.
 *
 * Build and run: make -f test/cron/cron.mk cron-test
 *
 *-------------------------------------------------------------------------
 */
#include "cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	checks;
static int	failures;

#define CHECK(cond, ...) \
	do { \
		checks++; \
		if (!(cond)) \
		{ \
			failures++; \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

/* Bitmap from a list of bit numbers ended by -1. */
static uint64_t
bits(int first,...)
{
	va_list		ap;
	uint64_t	b = 0;
	int			v;

	va_start(ap, first);
	for (v = first; v >= 0; v = va_arg(ap, int))
		b |= UINT64_C(1) << v;
	va_end(ap);
	return b;
}

/* Bitmap with bits lo..hi set. */
static uint64_t
span(int lo, int hi)
{
	uint64_t	b = 0;
	int			v;

	for (v = lo; v <= hi; v++)
		b |= UINT64_C(1) << v;
	return b;
}

#define ALL_MIN		span(0, 59)
#define ALL_HOUR	span(0, 23)
#define ALL_DOM		span(1, 31)
#define ALL_MON		span(1, 12)
#define ALL_DOW		span(0, 6)

static void
ok_cron(int line, const char *text, uint64_t minutes, uint64_t hours,
		uint64_t days, uint64_t months, uint64_t weekdays,
		bool dom_restricted, bool dow_restricted)
{
	QmlSchedule s;
	char		err[200] = "";
	bool		ok = qml_schedule_parse(text, &s, err, sizeof(err));

	checks++;
	if (!ok)
	{
		failures++;
		printf("FAIL line %d: \"%s\" rejected: %s\n", line, text, err);
		return;
	}
	if (s.kind != QML_SCHEDULE_CRON || s.minutes != minutes ||
		s.hours != hours || s.days != days || s.months != months ||
		s.weekdays != weekdays || s.dom_restricted != dom_restricted ||
		s.dow_restricted != dow_restricted || s.interval_usec != 0)
	{
		failures++;
		printf("FAIL line %d: \"%s\": kind %d min %llx hour %lx dom %lx mon %x dow %x r %d/%d\n",
			   line, text, s.kind, (unsigned long long) s.minutes,
			   (unsigned long) s.hours, (unsigned long) s.days,
			   (unsigned) s.months, (unsigned) s.weekdays,
			   s.dom_restricted, s.dow_restricted);
	}
}

static void
ok_interval(int line, const char *text, int64_t seconds)
{
	QmlSchedule s;
	char		err[200] = "";
	bool		ok = qml_schedule_parse(text, &s, err, sizeof(err));

	checks++;
	if (!ok)
	{
		failures++;
		printf("FAIL line %d: \"%s\" rejected: %s\n", line, text, err);
		return;
	}
	if (s.kind != QML_SCHEDULE_INTERVAL || s.interval_usec != seconds * 1000000 ||
		s.minutes != 0 || s.weekdays != 0)
	{
		failures++;
		printf("FAIL line %d: \"%s\": kind %d usec %lld, expected %lld s\n",
			   line, text, s.kind, (long long) s.interval_usec, (long long) seconds);
	}
}

/*
 * The text must be rejected with a reason containing each of the given
 * fragments (NULL-terminated), in the documented message style, leaving
 * the output untouched.
 */
static void
bad(int line, const char *text,...)
{
	QmlSchedule s;
	QmlSchedule sentinel;
	char		err[200];
	char		small[12];
	va_list		ap;
	const char *frag;
	size_t		len;

	memset(&sentinel, 0x5a, sizeof(sentinel));
	s = sentinel;
	memset(err, 'X', sizeof(err));
	checks++;
	if (qml_schedule_parse(text, &s, err, sizeof(err)))
	{
		failures++;
		printf("FAIL line %d: \"%s\" accepted\n", line, text);
		return;
	}
	len = strlen(err);
	CHECK(memcmp(&s, &sentinel, sizeof(s)) == 0,
		  "line %d: output changed on failure", line);
	CHECK(len > 0 && len < sizeof(err), "line %d: empty or unterminated reason", line);
	CHECK(strchr(err, '\n') == NULL, "line %d: reason has a newline: %s", line, err);
	CHECK(len == 0 || err[len - 1] != '.', "line %d: reason ends with a period: %s", line, err);
	CHECK(!(err[0] >= 'A' && err[0] <= 'Z'), "line %d: reason starts upper case: %s", line, err);

	va_start(ap, text);
	while ((frag = va_arg(ap, const char *)) != NULL)
		CHECK(strstr(err, frag) != NULL,
			  "line %d: \"%s\": reason \"%s\" lacks \"%s\"", line, text, err, frag);
	va_end(ap);

	/* a short buffer is truncated, still terminated; NULL err is allowed */
	memset(small, 'X', sizeof(small));
	CHECK(!qml_schedule_parse(text, &s, small, 8) && small[7] == '\0' &&
		  small[8] == 'X', "line %d: short error buffer mishandled", line);
	CHECK(!qml_schedule_parse(text, &s, NULL, 0), "line %d: NULL err", line);
}

static QmlCronTime
tm(const char *text)
{
	QmlCronTime t;

	if (sscanf(text, "%d-%d-%d %d:%d", &t.year, &t.month, &t.day,
			   &t.hour, &t.minute) != 5)
	{
		printf("bad time literal %s\n", text);
		exit(2);
	}
	return t;
}

static void
next_is(int line, const char *sched, const char *after, const char *expected)
{
	QmlSchedule s;
	char		err[200] = "";
	QmlCronTime a = tm(after);
	QmlCronTime n = {0, 0, 0, 0, 0};
	QmlCronTime e;

	checks++;
	if (!qml_schedule_parse(sched, &s, err, sizeof(err)))
	{
		failures++;
		printf("FAIL line %d: \"%s\" rejected: %s\n", line, sched, err);
		return;
	}
	if (expected == NULL)
	{
		if (qml_cron_next(&s, &a, &n))
		{
			failures++;
			printf("FAIL line %d: \"%s\" after %s: got %04d-%02d-%02d %02d:%02d, expected none\n",
				   line, sched, after, n.year, n.month, n.day, n.hour, n.minute);
		}
		return;
	}
	e = tm(expected);
	if (!qml_cron_next(&s, &a, &n))
	{
		failures++;
		printf("FAIL line %d: \"%s\" after %s: none, expected %s\n",
			   line, sched, after, expected);
		return;
	}
	if (memcmp(&n, &e, sizeof(n)) != 0)
	{
		failures++;
		printf("FAIL line %d: \"%s\" after %s: got %04d-%02d-%02d %02d:%02d, expected %s\n",
			   line, sched, after, n.year, n.month, n.day, n.hour, n.minute, expected);
		return;
	}
	CHECK(qml_cron_matches(&s, &n), "line %d: result does not match", line);
}

static void
test_accepted_cron(void)
{
	ok_cron(__LINE__, "* * * * *", ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 1 1 *", bits(0, -1), bits(0, -1), bits(1, -1), bits(1, -1), ALL_DOW, true, false);
	ok_cron(__LINE__, "59 23 31 12 6", bits(59, -1), bits(23, -1), bits(31, -1), bits(12, -1), bits(6, -1), true, true);
	ok_cron(__LINE__, "00 05 07 08 0", bits(0, -1), bits(5, -1), bits(7, -1), bits(8, -1), bits(0, -1), true, true);
	/* lists, ranges, steps */
	ok_cron(__LINE__, "5,10,15 * * * *", bits(5, 10, 15, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "10-20 * * * *", span(10, 20), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "*/15 * * * *", bits(0, 15, 30, 45, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "10-50/20 * * * *", bits(10, 30, 50, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "5/20 * * * *", bits(5, 25, 45, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "*/60 * * * *", bits(0, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "1,2,10-12,*/30 * * * *", bits(0, 1, 2, 10, 11, 12, 30, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "0 */6 * * *", bits(0, -1), bits(0, 6, 12, 18, -1), ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "0 9-17/4 * * *", bits(0, -1), bits(9, 13, 17, -1), ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 1,15 * *", bits(0, -1), bits(0, -1), bits(1, 15, -1), ALL_MON, ALL_DOW, true, false);
	ok_cron(__LINE__, "0 0 */10 * *", bits(0, -1), bits(0, -1), bits(1, 11, 21, 31, -1), ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 25/3 * *", bits(0, -1), bits(0, -1), bits(25, 28, 31, -1), ALL_MON, ALL_DOW, true, false);
	ok_cron(__LINE__, "0-59 0-23 1-31 1-12 0-6", ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true);
	/* names, case-insensitive, in lists and ranges, mixed with numbers */
	ok_cron(__LINE__, "0 0 * JAN,jul *", bits(0, -1), bits(0, -1), ALL_DOM, bits(1, 7, -1), ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 * jan-Mar *", bits(0, -1), bits(0, -1), ALL_DOM, span(1, 3), ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 * feb-DEC/3 *", bits(0, -1), bits(0, -1), ALL_DOM, bits(2, 5, 8, 11, -1), ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 * 3-NOV *", bits(0, -1), bits(0, -1), ALL_DOM, span(3, 11), ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 * apr,may,jun,aug,sep,oct,nov,dec *", bits(0, -1), bits(0, -1), ALL_DOM, bits(4, 5, 6, 8, 9, 10, 11, 12, -1), ALL_DOW, false, false);
	ok_cron(__LINE__, "0 0 * * MON-FRI", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, span(1, 5), false, true);
	ok_cron(__LINE__, "0 0 * * sun,Tue,WED,thu,fri,sat", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, 2, 3, 4, 5, 6, -1), false, true);
	ok_cron(__LINE__, "0 0 * * mon-5", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, span(1, 5), false, true);
	ok_cron(__LINE__, "0 0 * * 1/2", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(1, 3, 5, -1), false, true);
	ok_cron(__LINE__, "0 0 * * */2", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, 2, 4, 6, -1), false, false);
	/* day of week 7 is Sunday, alone, in ranges and with names */
	ok_cron(__LINE__, "0 0 * * 7", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, -1), false, true);
	ok_cron(__LINE__, "0 0 * * 5-7", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, 5, 6, -1), false, true);
	ok_cron(__LINE__, "0 0 * * SAT-7", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, 6, -1), false, true);
	ok_cron(__LINE__, "0 0 * * 0-7", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, ALL_DOW, false, true);
	ok_cron(__LINE__, "0 0 * * 7/3", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, -1), false, true);
	/* whitespace of all kinds around and between fields */
	ok_cron(__LINE__, "  0\t0  *\t* \t 1 \n", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(1, -1), false, true);

	/* exactly the maximum length is fine */
	{
		char		text[QML_SCHEDULE_MAX_LEN + 1];

		memset(text, ' ', QML_SCHEDULE_MAX_LEN);
		memcpy(text, "1 2 3 4 5", 9);
		text[QML_SCHEDULE_MAX_LEN] = '\0';
		ok_cron(__LINE__, text, bits(1, -1), bits(2, -1), bits(3, -1), bits(4, -1), bits(5, -1), true, true);
	}
}

static void
test_accepted_macros(void)
{
	ok_cron(__LINE__, "@yearly", bits(0, -1), bits(0, -1), bits(1, -1), bits(1, -1), ALL_DOW, true, false);
	ok_cron(__LINE__, "@annually", bits(0, -1), bits(0, -1), bits(1, -1), bits(1, -1), ALL_DOW, true, false);
	ok_cron(__LINE__, "@monthly", bits(0, -1), bits(0, -1), bits(1, -1), ALL_MON, ALL_DOW, true, false);
	ok_cron(__LINE__, "@weekly", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, bits(0, -1), false, true);
	ok_cron(__LINE__, "@daily", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "@midnight", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, "@hourly", bits(0, -1), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false);
	ok_cron(__LINE__, " @Daily\t", bits(0, -1), bits(0, -1), ALL_DOM, ALL_MON, ALL_DOW, false, false);
}

static void
test_accepted_intervals(void)
{
	ok_interval(__LINE__, "1 second", 1);
	ok_interval(__LINE__, "2 seconds", 2);
	ok_interval(__LINE__, "3 sec", 3);
	ok_interval(__LINE__, "4 secs", 4);
	ok_interval(__LINE__, "5 s", 5);
	ok_interval(__LINE__, "1 minute", 60);
	ok_interval(__LINE__, "2 minutes", 120);
	ok_interval(__LINE__, "3 min", 180);
	ok_interval(__LINE__, "4 mins", 240);
	ok_interval(__LINE__, "5 m", 300);
	ok_interval(__LINE__, "1 hour", 3600);
	ok_interval(__LINE__, "2 hours", 7200);
	ok_interval(__LINE__, "3 h", 10800);
	ok_interval(__LINE__, "1 day", 86400);
	ok_interval(__LINE__, "2 days", 172800);
	ok_interval(__LINE__, "3 d", 259200);
	ok_interval(__LINE__, "every 5 seconds", 5);
	ok_interval(__LINE__, "EVERY 10 Minutes", 600);
	ok_interval(__LINE__, "  every\t2   HOURS  ", 7200);
	ok_interval(__LINE__, "007 minutes", 420);
	/* the upper bound, 366 days, in every unit */
	ok_interval(__LINE__, "366 days", 31622400);
	ok_interval(__LINE__, "8784 hours", 31622400);
	ok_interval(__LINE__, "527040 minutes", 31622400);
	ok_interval(__LINE__, "31622400 seconds", 31622400);
}

static void
test_rejected(void)
{
	char		text[QML_SCHEDULE_MAX_LEN + 2];

	/* whole-text problems */
	bad(__LINE__, "", "empty", NULL);
	bad(__LINE__, " \t\n ", "empty", NULL);
	memset(text, ' ', sizeof(text) - 1);
	memcpy(text, "1 2 3 4 5", 9);
	text[sizeof(text) - 1] = '\0';
	bad(__LINE__, text, "longer than 256 bytes", NULL);
	bad(__LINE__, "*", "expected 5 fields", "found 1", NULL);
	bad(__LINE__, "* * * *", "expected 5 fields", "found 4", NULL);
	bad(__LINE__, "* * * * * *", "expected 5 fields", "found 6", NULL);
	bad(__LINE__, "0 0 1 * * /bin/true", "expected 5 fields", "found 6", NULL);
	bad(__LINE__, "5minutes", "expected 5 fields", NULL);

	/* out of range, one per field and both ends */
	{
		QmlSchedule s;
		char		err[200];

		CHECK(!qml_schedule_parse("61 * * * *", &s, err, sizeof(err)) &&
			  strcmp(err, "minute field: 61 is out of range 0-59") == 0,
			  "exact reason for 61: \"%s\"", err);
	}
	bad(__LINE__, "60 * * * *", "minute field", "60 is out of range 0-59", NULL);
	bad(__LINE__, "* 24 * * *", "hour field", "24 is out of range 0-23", NULL);
	bad(__LINE__, "* * 0 * *", "day-of-month field", "0 is out of range 1-31", NULL);
	bad(__LINE__, "* * 32 * *", "day-of-month field", "32 is out of range 1-31", NULL);
	bad(__LINE__, "* * * 0 *", "month field", "0 is out of range 1-12", NULL);
	bad(__LINE__, "* * * 13 *", "month field", "13 is out of range 1-12", NULL);
	bad(__LINE__, "* * * * 8", "day-of-week field", "8 is out of range 0-7", NULL);
	bad(__LINE__, "1-60 * * * *", "minute field", "60 is out of range", NULL);
	bad(__LINE__, "99999999999999999999 * * * *", "minute field", "out of range 0-59", NULL);
	bad(__LINE__, "* * * * 1,2,3,99", "day-of-week field", "99 is out of range", NULL);

	/* reversed ranges */
	bad(__LINE__, "5-2 * * * *", "minute field", "range \"5-2\" runs backwards", NULL);
	bad(__LINE__, "* 23-1 * * *", "hour field", "backwards", NULL);
	bad(__LINE__, "* * * DEC-JAN *", "month field", "\"DEC-JAN\" runs backwards", NULL);
	bad(__LINE__, "* * * * FRI-MON", "day-of-week field", "backwards", NULL);
	bad(__LINE__, "* * * * 7-1", "day-of-week field", "backwards", NULL);

	/* steps */
	bad(__LINE__, "*/0 * * * *", "minute field", "step 0 is out of range 1-60", NULL);
	bad(__LINE__, "1-5/0 * * * *", "minute field", "step 0", NULL);
	bad(__LINE__, "*/61 * * * *", "minute field", "step 61 is out of range 1-60", NULL);
	bad(__LINE__, "* */25 * * *", "hour field", "step 25 is out of range 1-24", NULL);
	bad(__LINE__, "* * * * */8", "day-of-week field", "step 8 is out of range 1-7", NULL);
	bad(__LINE__, "*/ * * * *", "minute field", "missing step", NULL);
	bad(__LINE__, "*/x * * * *", "minute field", "step must be a number", NULL);
	bad(__LINE__, "*/5/2 * * * *", "minute field", "unexpected character '/'", NULL);

	/* list items */
	bad(__LINE__, "1,,2 * * * *", "minute field", "empty list item", NULL);
	bad(__LINE__, ",1 * * * *", "minute field", "empty list item", NULL);
	bad(__LINE__, "* * 1, * *", "day-of-month field", "empty list item", NULL);
	bad(__LINE__, "* * * * ,", "day-of-week field", "empty list item", NULL);

	/* names */
	bad(__LINE__, "* * * FOO *", "month field", "unknown month name \"FOO\"", NULL);
	bad(__LINE__, "* * * JANUARY *", "month field", "unknown month name", NULL);
	bad(__LINE__, "* * * MON *", "month field", "unknown month name \"MON\"", NULL);
	bad(__LINE__, "* * * * FUNDAY", "day-of-week field", "unknown day name \"FUNDAY\"", NULL);
	bad(__LINE__, "* * * * JAN", "day-of-week field", "unknown day name \"JAN\"", NULL);
	bad(__LINE__, "JAN * * * *", "minute field", "\"JAN\" is not a number", NULL);
	bad(__LINE__, "* * L * *", "day-of-month field", "\"L\" is not a number", NULL);
	bad(__LINE__, "* * * * MON-XYZ", "day-of-week field", "unknown day name \"XYZ\"", NULL);

	/* junk characters */
	bad(__LINE__, "5% * * * *", "minute field", "unexpected character '%'", NULL);
	bad(__LINE__, "? * * * *", "minute field", "unexpected character '?'", NULL);
	bad(__LINE__, "* * * * 1#2", "day-of-week field", "unexpected character '#'", NULL);
	bad(__LINE__, "*-5 * * * *", "minute field", "unexpected character '-'", NULL);
	bad(__LINE__, "-5 * * * *", "minute field", "unexpected character '-'", NULL);
	bad(__LINE__, "1-2-3 * * * *", "minute field", "unexpected character '-'", NULL);
	bad(__LINE__, "5- * * * *", "minute field", "\"5-\" is incomplete", NULL);
	bad(__LINE__, "* 1a * * *", "hour field", "unexpected character 'a'", NULL);
	bad(__LINE__, "\x01 * * * *", "minute field", "byte 0x01", NULL);
	bad(__LINE__, "* * * * \xc3\xa9", "day-of-week field", "byte 0xc3", NULL);
	bad(__LINE__, "* * * * MON\xff", "day-of-week field", "byte 0xff", NULL);

	/* macros */
	bad(__LINE__, "@reboot", "@reboot is not supported", NULL);
	bad(__LINE__, "@REBOOT", "@reboot is not supported", NULL);
	bad(__LINE__, "@foo", "unknown macro \"@foo\"", NULL);
	bad(__LINE__, "@", "unknown macro \"@\"", NULL);
	bad(__LINE__, "@ daily", "unknown macro \"@\"", NULL);
	bad(__LINE__, "@daily 5", "unexpected text \"5\" after @daily", NULL);
	bad(__LINE__, "@hourly * * * * *", "unexpected text", NULL);

	/* intervals */
	bad(__LINE__, "0 seconds", "interval", "at least 1", NULL);
	bad(__LINE__, "every 0 minutes", "interval", "at least 1", NULL);
	bad(__LINE__, "-5 minutes", "interval", "\"-5\" is not a positive whole number", NULL);
	bad(__LINE__, "+5 minutes", "interval", "not a positive whole number", NULL);
	bad(__LINE__, "1.5 hours", "interval", "\"1.5\" is not a positive whole number", NULL);
	bad(__LINE__, "5e3 seconds", "interval", "not a positive whole number", NULL);
	bad(__LINE__, "every five minutes", "interval", "\"five\" is not a positive whole number", NULL);
	bad(__LINE__, "5 fortnights", "interval", "unknown unit \"fortnights\"", NULL);
	bad(__LINE__, "5 minutesx", "interval", "unknown unit", NULL);
	bad(__LINE__, "5 minutes later", "interval", "unexpected text \"later\"", NULL);
	bad(__LINE__, "every 5 minutes please", "interval", "unexpected text \"please\"", NULL);
	bad(__LINE__, "every 5 * * * *", "interval", "unknown unit \"*\"", NULL);
	bad(__LINE__, "every", "interval", "missing amount", NULL);
	bad(__LINE__, "every 5", "interval", "missing unit after \"5\"", NULL);
	bad(__LINE__, "367 days", "interval", "longer than 366 days", NULL);
	bad(__LINE__, "8785 hours", "interval", "longer than 366 days", NULL);
	bad(__LINE__, "31622401 seconds", "interval", "longer than 366 days", NULL);
	bad(__LINE__, "99999999999999999999999999 seconds", "interval", "longer than 366 days", NULL);

	/* a NULL text is an error, not a crash */
	CHECK(!qml_schedule_parse(NULL, NULL, NULL, 0), "NULL text accepted");
}

static void
test_next(void)
{
	QmlSchedule s;
	QmlCronTime a;
	QmlCronTime n;

	/* "*\/15", strictly after, hour/day/year carry */
	next_is(__LINE__, "*/15 * * * *", "2024-01-01 00:00", "2024-01-01 00:15");
	next_is(__LINE__, "*/15 * * * *", "2024-01-01 00:14", "2024-01-01 00:15");
	next_is(__LINE__, "*/15 * * * *", "2024-01-01 00:15", "2024-01-01 00:30");
	next_is(__LINE__, "*/15 * * * *", "2024-01-01 00:59", "2024-01-01 01:00");
	next_is(__LINE__, "*/15 * * * *", "2024-12-31 23:45", "2025-01-01 00:00");
	next_is(__LINE__, "* * * * *", "2023-12-31 23:59", "2024-01-01 00:00");
	next_is(__LINE__, "* * * * *", "2024-06-15 10:20", "2024-06-15 10:21");
	next_is(__LINE__, "0 0 * * *", "2024-01-01 00:00", "2024-01-02 00:00");
	next_is(__LINE__, "@hourly", "2024-01-01 10:00", "2024-01-01 11:00");
	next_is(__LINE__, "@yearly", "2024-01-01 00:00", "2025-01-01 00:00");
	next_is(__LINE__, "@monthly", "2024-12-01 00:00", "2025-01-01 00:00");
	next_is(__LINE__, "30 9-17/4 * * *", "2024-05-05 17:30", "2024-05-06 09:30");
	next_is(__LINE__, "30 9-17/4 * * *", "2024-05-06 09:30", "2024-05-06 13:30");
	next_is(__LINE__, "45 23 * * *", "2024-05-06 23:46", "2024-05-07 23:45");
	next_is(__LINE__, "0 12 * DEC *", "2024-12-31 12:00", "2025-12-01 12:00");

	/* month ends: 30- and 31-day months, February */
	next_is(__LINE__, "0 0 * * *", "2024-04-30 00:00", "2024-05-01 00:00");
	next_is(__LINE__, "0 0 * * *", "2023-02-28 00:00", "2023-03-01 00:00");
	next_is(__LINE__, "0 0 * * *", "2024-02-28 00:00", "2024-02-29 00:00");
	next_is(__LINE__, "0 0 31 * *", "2024-01-31 00:00", "2024-03-31 00:00");
	next_is(__LINE__, "0 0 31 * *", "2024-03-31 00:00", "2024-05-31 00:00");
	next_is(__LINE__, "0 0 31 * *", "2024-04-15 08:00", "2024-05-31 00:00");
	next_is(__LINE__, "0 0 31 * *", "2024-08-31 00:00", "2024-10-31 00:00");
	next_is(__LINE__, "0 0 30 * *", "2024-01-30 00:00", "2024-03-30 00:00");

	/* Feb 29: leap years, and 2100 is not one while 2000 was */
	next_is(__LINE__, "0 0 29 2 *", "2023-06-01 00:00", "2024-02-29 00:00");
	next_is(__LINE__, "0 0 29 2 *", "2024-03-01 00:00", "2028-02-29 00:00");
	next_is(__LINE__, "0 0 29 2 *", "2024-02-29 00:00", "2028-02-29 00:00");
	next_is(__LINE__, "0 0 29 2 *", "1999-03-01 00:00", "2000-02-29 00:00");
	next_is(__LINE__, "0 0 29 2 *", "2099-03-01 00:00", "2104-02-29 00:00");
	next_is(__LINE__, "30 12 * 2 *", "2023-02-28 12:30", "2024-02-01 12:30");
	next_is(__LINE__, "30 12 * 2 *", "2024-02-28 12:30", "2024-02-29 12:30");

	/*
	 * Day-of-month / day-of-week.  September 2024: the 1st is a Sunday, so
	 * Mondays are 2, 9, 16, 23, 30; October 2024 Mondays are 7, 14, 21, 28.
	 */
	next_is(__LINE__, "0 0 * * MON", "2024-09-01 12:00", "2024-09-02 00:00");
	next_is(__LINE__, "0 0 * * 1-5", "2024-12-27 00:00", "2024-12-30 00:00");
	/* both restricted: either matches */
	next_is(__LINE__, "0 0 1-7 * MON", "2024-09-08 00:00", "2024-09-09 00:00");
	next_is(__LINE__, "0 0 1-7 * MON", "2024-09-30 00:00", "2024-10-01 00:00");
	next_is(__LINE__, "0 0 1-7 * MON", "2024-10-01 00:00", "2024-10-02 00:00");
	next_is(__LINE__, "0 0 1-7 * MON", "2024-10-07 00:00", "2024-10-14 00:00");
	next_is(__LINE__, "0 0 13 * FRI", "2024-09-07 00:00", "2024-09-13 00:00");
	next_is(__LINE__, "0 0 13 * FRI", "2024-09-13 00:00", "2024-09-20 00:00");
	/* day of month starts with '*': both must match (odd-day Mondays) */
	next_is(__LINE__, "0 0 */2 * MON", "2024-09-01 00:00", "2024-09-09 00:00");
	next_is(__LINE__, "0 0 */2 * MON", "2024-09-09 00:00", "2024-09-23 00:00");
	next_is(__LINE__, "0 0 */2 * MON", "2024-09-23 00:00", "2024-10-07 00:00");
	/* day of week starts with '*': both must match (days 1-7, even weekday) */
	next_is(__LINE__, "0 0 1-7 * */2", "2024-09-01 00:00", "2024-09-03 00:00");

	/* Sunday as 7, 0 and SUN (2024-09-08 is a Sunday) */
	next_is(__LINE__, "0 9 * * 7", "2024-09-02 00:00", "2024-09-08 09:00");
	next_is(__LINE__, "0 9 * * 0", "2024-09-02 00:00", "2024-09-08 09:00");
	next_is(__LINE__, "0 9 * * sun", "2024-09-02 00:00", "2024-09-08 09:00");
	next_is(__LINE__, "0 9 * * 6-7", "2024-09-02 00:00", "2024-09-07 09:00");

	/* nothing within five years */
	next_is(__LINE__, "0 0 30 2 *", "2024-01-01 00:00", NULL);
	next_is(__LINE__, "0 0 31 4,6,9,11 *", "2024-01-01 00:00", NULL);
	next_is(__LINE__, "0 0 31 FEB *", "2024-01-01 00:00", NULL);
	/* the horizon: 2100 is not a leap year, so 2096 -> 2104 is too far */
	next_is(__LINE__, "0 0 29 2 *", "2096-03-01 00:00", NULL);

	/* results never go past QML_CRON_MAX_YEAR (1000000) */
	next_is(__LINE__, "0 0 1 1 *", "999999-06-01 00:00", "1000000-01-01 00:00");
	next_is(__LINE__, "* * * * *", "1000000-12-31 23:58", "1000000-12-31 23:59");
	next_is(__LINE__, "* * * * *", "1000000-12-31 23:59", NULL);

	/* invalid input times and non-cron schedules give false */
	CHECK(qml_schedule_parse("* * * * *", &s, NULL, 0), "parse");
	a = tm("2024-13-01 00:00");
	CHECK(!qml_cron_next(&s, &a, &n), "month 13 accepted");
	a = tm("2023-02-29 00:00");
	CHECK(!qml_cron_next(&s, &a, &n), "2023-02-29 accepted");
	a = tm("2024-01-01 24:00");
	CHECK(!qml_cron_next(&s, &a, &n), "hour 24 accepted");
	a = tm("2024-01-01 00:60");
	CHECK(!qml_cron_next(&s, &a, &n), "minute 60 accepted");
	a = tm("0-01-01 00:00");
	CHECK(!qml_cron_next(&s, &a, &n), "year 0 accepted");
	CHECK(qml_schedule_parse("5 minutes", &s, NULL, 0), "parse");
	a = tm("2024-01-01 00:00");
	CHECK(!qml_cron_next(&s, &a, &n), "interval schedule accepted by qml_cron_next");
	CHECK(!qml_cron_matches(&s, &a), "interval schedule accepted by qml_cron_matches");
}

static void
test_matches(void)
{
	QmlSchedule s;
	QmlCronTime t;

	CHECK(qml_schedule_parse("*/15 9-17 * * MON-FRI", &s, NULL, 0), "parse");
	t = tm("2024-09-02 09:45");	/* Monday */
	CHECK(qml_cron_matches(&s, &t), "Monday 09:45");
	t = tm("2024-09-02 09:46");
	CHECK(!qml_cron_matches(&s, &t), "Monday 09:46");
	t = tm("2024-09-02 18:00");
	CHECK(!qml_cron_matches(&s, &t), "Monday 18:00");
	t = tm("2024-09-01 10:00");	/* Sunday */
	CHECK(!qml_cron_matches(&s, &t), "Sunday 10:00");
	t = tm("2024-02-30 10:00");
	CHECK(!qml_cron_matches(&s, &t), "Feb 30");
}

/* Worst cases stay cheap: a no-match search covers five years by skipping. */
static void
test_speed(void)
{
	QmlSchedule s;
	QmlCronTime a = tm("2024-01-01 00:00");
	QmlCronTime n;
	int			i;
	int			found = 0;

	CHECK(qml_schedule_parse("0 0 31 2 MON", &s, NULL, 0), "parse");
	for (i = 0; i < 20000; i++)
		found += qml_cron_next(&s, &a, &n);
	/* 2024-02-05 is the first Monday in February 2024 */
	CHECK(found == 20000 && n.month == 2 && n.day == 5, "feb mondays");
	CHECK(qml_schedule_parse("59 23 31 12 *", &s, NULL, 0), "parse");
	for (i = 0; i < 20000; i++)
		found += qml_cron_next(&s, &a, &n);
	CHECK(n.year == 2024 && n.month == 12 && n.day == 31, "new year's eve");
}

int
main(void)
{
	test_accepted_cron();
	test_accepted_macros();
	test_accepted_intervals();
	test_rejected();
	test_next();
	test_matches();
	test_speed();

	printf("cron_test: %d checks, %d failures\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
