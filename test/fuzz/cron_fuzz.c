/*-------------------------------------------------------------------------
 *
 * cron_fuzz.c
 *	  libFuzzer target for the schedule parser and qml_cron_next.
 *
 * Parses arbitrary bytes.  A rejection must come with a well-formed reason;
 * an accepted schedule must be internally consistent, and for cron
 * schedules qml_cron_next is checked from several start times against a
 * deliberately naive oracle written here (its own calendar arithmetic, day
 * by day and minute by minute): the result is strictly after the start,
 * matches, and nothing matches in between; "no result" means nothing
 * matches within the horizon.  Endless loops show up as libFuzzer timeouts.
 *
 * Build and run: make fuzz-cron (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#include "cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 256

static void
die(const char *what, const char *text)
{
	fprintf(stderr, "cron_fuzz: %s (input \"%s\")\n", what, text);
	abort();
}

/* Oracle calendar, independent of src/cron.c. */
static int
oracle_days_in_month(int y, int m)
{
	static const int base[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool		leap = (y % 400 == 0) || (y % 4 == 0 && y % 100 != 0);

	return base[m] + (m == 2 && leap ? 1 : 0);
}

/* Days since 0001-01-01 (a Monday) by counting, then weekday, Sunday = 0. */
static int
oracle_weekday(int y, int m, int d)
{
	long long	py = y - 1;
	long long	days = py * 365 + py / 4 - py / 100 + py / 400;
	int			i;

	for (i = 1; i < m; i++)
		days += oracle_days_in_month(y, i);
	days += d - 1;
	return (int) ((days + 1) % 7);
}

static bool
oracle_day(const QmlSchedule *s, int y, int m, int d)
{
	bool		dom_ok = (s->days & (1u << d)) != 0;
	bool		dow_ok = (s->weekdays & (1u << oracle_weekday(y, m, d))) != 0;
	bool		day_ok;

	if (!(s->months & (1u << m)))
		return false;
	if (s->dom_restricted && s->dow_restricted)
		day_ok = dom_ok || dow_ok;
	else
		day_ok = dom_ok && dow_ok;
	return day_ok;
}

static bool
oracle_minute(const QmlSchedule *s, int y, int m, int d, int hour, int minute)
{
	return oracle_day(s, y, m, d) && (s->hours & (1u << hour)) &&
		(s->minutes & (UINT64_C(1) << minute));
}

static long long
key(int y, int m, int d, int h, int mi)
{
	return ((((long long) y * 13 + m) * 32 + d) * 24 + h) * 60 + mi;
}

static void
next_day(int *y, int *m, int *d)
{
	if (++*d > oracle_days_in_month(*y, *m))
	{
		*d = 1;
		if (++*m > 12)
		{
			*m = 1;
			++*y;
		}
	}
}

/* True when some minute of day (y,m,d) in [from, to] (minute of day) matches. */
static bool
oracle_any_minute(const QmlSchedule *s, int y, int m, int d, int from, int to)
{
	int			i;

	if (!oracle_day(s, y, m, d))
		return false;
	for (i = from; i <= to; i++)
	{
		if (oracle_minute(s, y, m, d, i / 60, i % 60))
			return true;
	}
	return false;
}

static void
check_next(const QmlSchedule *s, QmlCronTime a, const char *text)
{
	QmlCronTime n;
	int			lim_y = a.year + QML_CRON_HORIZON_YEARS;
	long long	ka = key(a.year, a.month, a.day, a.hour, a.minute);
	long long	klimit = lim_y > QML_CRON_MAX_YEAR ?
		key(QML_CRON_MAX_YEAR, 12, 31, 23, 59) :
		key(lim_y, a.month, a.day, a.hour, a.minute);
	int			y;
	int			m;
	int			d;

	if (qml_cron_next(s, &a, &n))
	{
		long long	kn = key(n.year, n.month, n.day, n.hour, n.minute);

		if (n.month < 1 || n.month > 12 || n.day < 1 ||
			n.day > oracle_days_in_month(n.year, n.month) ||
			n.hour < 0 || n.hour > 23 || n.minute < 0 || n.minute > 59)
			die("next is not a valid time", text);
		if (kn <= ka)
			die("next is not after the start", text);
		if (kn > klimit)
			die("next is beyond the horizon", text);
		if (!oracle_minute(s, n.year, n.month, n.day, n.hour, n.minute))
			die("next does not match the schedule", text);
		if (!qml_cron_matches(s, &n))
			die("qml_cron_matches disagrees with qml_cron_next", text);

		/* nothing may match between the start and the result */
		if (n.year == a.year && n.month == a.month && n.day == a.day)
		{
			if (oracle_any_minute(s, a.year, a.month, a.day,
								  a.hour * 60 + a.minute + 1,
								  n.hour * 60 + n.minute - 1))
				die("skipped an earlier match on the start day", text);
			return;
		}
		if (oracle_any_minute(s, a.year, a.month, a.day,
							  a.hour * 60 + a.minute + 1, 1439))
			die("skipped a match later on the start day", text);
		y = a.year;
		m = a.month;
		d = a.day;
		for (next_day(&y, &m, &d);
			 !(y == n.year && m == n.month && d == n.day);
			 next_day(&y, &m, &d))
		{
			if (oracle_day(s, y, m, d))
				die("skipped a matching day", text);
		}
		if (oracle_any_minute(s, n.year, n.month, n.day, 0,
							  n.hour * 60 + n.minute - 1))
			die("skipped an earlier match on the result day", text);
		return;
	}

	/* no result: nothing may match from the start up to the horizon */
	if (oracle_any_minute(s, a.year, a.month, a.day,
						  a.hour * 60 + a.minute + 1, 1439))
		die("missed a match on the start day", text);
	y = a.year;
	m = a.month;
	d = a.day;
	for (next_day(&y, &m, &d); key(y, m, d, 0, 0) <= klimit; next_day(&y, &m, &d))
	{
		/* the last day counts only up to the limit's time of day */
		bool		last = key(y, m, d, 23, 59) > klimit;
		int			upto = (int) (klimit % 1440);

		if (!last && oracle_day(s, y, m, d))
			die("missed a matching day within the horizon", text);
		if (last && oracle_any_minute(s, y, m, d, 0, upto))
			die("missed a match on the horizon's last day", text);
	}
}

static void
check_rejection(const char *text, const char *err)
{
	size_t		len = strlen(err);
	size_t		i;

	if (len == 0)
		die("rejected without a reason", text);
	if (len >= ERRLEN - 1)
		die("reason too long (truncated)", text);
	for (i = 0; i < len; i++)
	{
		if ((unsigned char) err[i] < 0x20 || (unsigned char) err[i] >= 0x7f)
			die("reason has a non-printable byte", text);
	}
	if (err[len - 1] == '.')
		die("reason ends with a period", text);
	if (err[0] >= 'A' && err[0] <= 'Z')
		die("reason starts upper case", text);
}

static void
check_schedule(const QmlSchedule *s, const char *text)
{
	if (s->kind == QML_SCHEDULE_INTERVAL)
	{
		if (s->interval_usec < QML_INTERVAL_MIN_USEC ||
			s->interval_usec > QML_INTERVAL_MAX_USEC ||
			s->interval_usec % 1000000 != 0)
			die("interval out of bounds", text);
		if (s->minutes || s->hours || s->days || s->months || s->weekdays)
			die("interval with cron bits", text);
		return;
	}
	if (s->kind != QML_SCHEDULE_CRON)
		die("unknown kind", text);
	if (s->interval_usec != 0)
		die("cron with an interval", text);
	if (s->minutes == 0 || (s->minutes >> 60) != 0)
		die("bad minute bits", text);
	if (s->hours == 0 || (s->hours >> 24) != 0)
		die("bad hour bits", text);
	if (s->days == 0 || (s->days & 1) != 0)
		die("bad day bits", text);
	if (s->months == 0 || (s->months & 1) != 0 || (s->months >> 13) != 0)
		die("bad month bits", text);
	if (s->weekdays == 0 || (s->weekdays >> 7) != 0)
		die("bad weekday bits", text);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	char	   *err = malloc(ERRLEN);
	char	   *small = malloc(5);
	QmlSchedule s;
	QmlSchedule s2;
	bool		ok;
	unsigned	h = 2166136261u;
	size_t		i;

	memcpy(text, data, size);
	text[size] = '\0';

	ok = qml_schedule_parse(text, &s, err, ERRLEN);
	/* same answer with a tiny buffer and with none */
	if (qml_schedule_parse(text, &s2, small, 5) != ok ||
		qml_schedule_parse(text, &s2, NULL, 0) != ok)
		die("result depends on the error buffer", text);
	if (!ok)
	{
		check_rejection(text, err);
		if (strlen(small) != (strlen(err) < 4 ? strlen(err) : 4) ||
			strncmp(small, err, 4) != 0)
			die("truncated reason differs", text);
		goto done;
	}
	if (strlen(text) > QML_SCHEDULE_MAX_LEN)
		die("accepted overlong input", text);
	if (memcmp(&s, &s2, sizeof(s)) != 0)
		die("parse is not deterministic", text);
	check_schedule(&s, text);
	if (s.kind != QML_SCHEDULE_CRON)
		goto done;

	for (i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	{
		static const QmlCronTime fixed[] = {
			{2024, 2, 28, 23, 59},
			{2023, 12, 31, 23, 59},
			{2096, 2, 29, 12, 0},
			{1, 1, 1, 0, 0},
			{QML_CRON_MAX_YEAR, 12, 31, 23, 59},
		};
		QmlCronTime a;
		int			years[4] = {1970, 2096, 1, QML_CRON_MAX_YEAR - 10};

		/* two fixed starts chosen by the input, one derived from it */
		check_next(&s, fixed[h % 5], text);
		check_next(&s, fixed[(h / 5) % 5], text);
		a.year = years[(h >> 3) % 4] + (int) ((h >> 5) % 10);
		a.month = 1 + (int) ((h >> 9) % 12);
		a.day = 1 + (int) ((h >> 13) % (unsigned) oracle_days_in_month(a.year, a.month));
		a.hour = (int) ((h >> 18) % 24);
		a.minute = (int) ((h >> 23) % 60);
		check_next(&s, a, text);
	}

done:
	free(small);
	free(err);
	free(text);
	return 0;
}
