/*-------------------------------------------------------------------------
 *
 * cron.c
 *	  Parses recurring-job schedules (cron fields, @macros, intervals) and
 *	  computes the next wall-clock minute a cron schedule fires.
 *
 * Deliberately free of PostgreSQL headers and of any allocation or global
 * state: the same object is linked into the extension and into the
 * standalone unit test and fuzzer under test/cron/.  Time zones and
 * TimestampTz conversion belong to the caller.  See cron.h for the grammar.
 *
 * src/cron.c
 *
 *-------------------------------------------------------------------------
 */
#include "cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef __GNUC__
#define CRON_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CRON_PRINTF(f, a)
#endif

/* Enough words to parse "every N unit" plus one word of trailing junk. */
#define MAX_WORDS		8

/* User text echoed in an error is cut to this many bytes. */
#define MAX_ECHO		32

/* Numbers are accumulated only up to here; anything bigger is out of range. */
#define NUMBER_CAP		100000000

typedef struct Word
{
	const char *start;
	int			len;
} Word;

/* What differs between the five cron fields. */
typedef struct CronField
{
	const char *name;			/* used as "<name> field: ..." in errors */
	int			min;
	int			max;			/* largest value accepted in the text */
	int			star_max;		/* what "*" and "A/S" run up to */
	const char *const *names;	/* three-letter names, or NULL */
	int			names_base;		/* value of names[0] */
	const char *name_kind;		/* "month" or "day" for error text */
} CronField;

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};

static const char *const day_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

/*
 * Day of week accepts 7 as a second Sunday (as most crons do) but "*" means
 * 0-6, so that "*\/2" does not pick Sunday twice.
 */
static const CronField cron_fields[5] = {
	{"minute", 0, 59, 59, NULL, 0, NULL},
	{"hour", 0, 23, 23, NULL, 0, NULL},
	{"day-of-month", 1, 31, 31, NULL, 0, NULL},
	{"month", 1, 12, 12, month_names, 1, "month"},
	{"day-of-week", 0, 7, 6, day_names, 0, "day"},
};

typedef struct Macro
{
	const char *name;
	const char *expansion;
} Macro;

static const Macro macros[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
	{NULL, NULL}
};

typedef struct IntervalUnit
{
	const char *name;
	int64_t		seconds;
} IntervalUnit;

static const IntervalUnit interval_units[] = {
	{"s", 1}, {"sec", 1}, {"secs", 1}, {"second", 1}, {"seconds", 1},
	{"m", 60}, {"min", 60}, {"mins", 60}, {"minute", 60}, {"minutes", 60},
	{"h", 3600}, {"hour", 3600}, {"hours", 3600},
	{"d", 86400}, {"day", 86400}, {"days", 86400},
	{NULL, 0}
};

/*
 * Character classes by hand: <ctype.h> depends on the locale, and schedule
 * syntax must not.
 */
static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\v' || c == '\f';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char
to_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/* Case-insensitive comparison of len bytes at s with the lower-case lit. */
static bool
word_equals(const char *s, int len, const char *lit)
{
	int			i;

	for (i = 0; i < len; i++)
	{
		if (lit[i] == '\0' || to_lower(s[i]) != lit[i])
			return false;
	}
	return lit[len] == '\0';
}

static void set_error(char *err, size_t errlen, const char *fmt,...) CRON_PRINTF(3, 4);

static void
set_error(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Copies user text into buf for an error message, keeping the message one
 * printable line whatever bytes the input held, and bounded in length.
 */
static const char *
echo_text(char *buf, const char *s, int len)
{
	int			n = len > MAX_ECHO ? MAX_ECHO : len;
	int			i;

	for (i = 0; i < n; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (n < len)
	{
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* Describes one offending character: 'x' when printable, else its code. */
static const char *
echo_char(char *buf, char c)
{
	unsigned char uc = (unsigned char) c;

	if (uc >= 0x20 && uc < 0x7f)
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02x", uc);
	return buf;
}

/*
 * Splits text into whitespace-separated words, storing at most MAX_WORDS of
 * them; returns how many there are in total.
 */
static int
split_words(const char *text, Word *words)
{
	const char *p = text;
	int			n = 0;

	for (;;)
	{
		const char *start;

		while (is_space(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !is_space(*p))
			p++;
		if (n < MAX_WORDS)
		{
			words[n].start = start;
			words[n].len = (int) (p - start);
		}
		n++;
	}
	return n;
}

/*
 * Reads a run of digits at *p (there is at least one), saturating at
 * NUMBER_CAP so that long inputs cannot overflow (anything that big is out
 * of range for every caller).
 */
static int
read_number(const char **p, const char *end)
{
	int			v = 0;

	while (*p < end && is_digit(**p))
	{
		if (v < NUMBER_CAP)
			v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

/* Parses one number or name of a cron field at *p, advancing *p. */
static bool
parse_value(const CronField *f, const char **p, const char *end,
			const char *item, int *value, char *err, size_t errlen)
{
	const char *start = *p;
	char		buf[MAX_ECHO + 4];

	if (*p == end)
	{
		set_error(err, errlen, "%s field: \"%s\" is incomplete", f->name,
				  echo_text(buf, item, (int) (end - item)));
		return false;
	}
	if (is_digit(**p))
	{
		int			v = read_number(p, end);

		if (v < f->min || v > f->max)
		{
			set_error(err, errlen, "%s field: %s is out of range %d-%d",
					  f->name, echo_text(buf, start, (int) (*p - start)),
					  f->min, f->max);
			return false;
		}
		*value = v;
		return true;
	}
	if (is_alpha(**p))
	{
		int			len;
		int			i;

		while (*p < end && is_alpha(**p))
			(*p)++;
		len = (int) (*p - start);
		if (f->names == NULL)
		{
			set_error(err, errlen, "%s field: \"%s\" is not a number",
					  f->name, echo_text(buf, start, len));
			return false;
		}
		for (i = 0; f->names[i] != NULL; i++)
		{
			if (word_equals(start, len, f->names[i]))
			{
				*value = f->names_base + i;
				return true;
			}
		}
		set_error(err, errlen, "%s field: unknown %s name \"%s\"",
				  f->name, f->name_kind, echo_text(buf, start, len));
		return false;
	}
	set_error(err, errlen, "%s field: unexpected character %s",
			  f->name, echo_char(buf, **p));
	return false;
}

/*
 * Parses one list item ("*", "N", "A-B", each optionally followed by "/S")
 * occupying [item, end) and sets its values in *bits.
 */
static bool
parse_item(const CronField *f, const char *item, const char *end,
		   uint64_t *bits, char *err, size_t errlen)
{
	const char *p = item;
	bool		star = false;
	bool		range = false;
	int			lo;
	int			hi;
	int			step = 1;
	int			v;
	char		buf[MAX_ECHO + 4];

	if (*p == '*')
	{
		star = true;
		lo = f->min;
		hi = f->star_max;
		p++;
	}
	else
	{
		if (!parse_value(f, &p, end, item, &lo, err, errlen))
			return false;
		hi = lo;
		if (p < end && *p == '-')
		{
			p++;
			range = true;
			if (!parse_value(f, &p, end, item, &hi, err, errlen))
				return false;
		}
	}

	if (p < end && *p == '/')
	{
		const char *step_start;
		int			span = f->star_max - f->min + 1;

		p++;
		if (p == end)
		{
			set_error(err, errlen, "%s field: missing step after '/' in \"%s\"",
					  f->name, echo_text(buf, item, (int) (end - item)));
			return false;
		}
		if (!is_digit(*p))
		{
			set_error(err, errlen, "%s field: step must be a number, found %s",
					  f->name, echo_char(buf, *p));
			return false;
		}
		step_start = p;
		step = read_number(&p, end);
		if (step < 1 || step > span)
		{
			set_error(err, errlen, "%s field: step %s is out of range 1-%d",
					  f->name, echo_text(buf, step_start, (int) (p - step_start)),
					  span);
			return false;
		}
		/* "A/S" means from A to the end of the field, as in Vixie cron. */
		if (!star && !range)
			hi = lo > f->star_max ? lo : f->star_max;
	}

	if (p < end)
	{
		char		cbuf[16];

		set_error(err, errlen, "%s field: unexpected character %s in \"%s\"",
				  f->name, echo_char(cbuf, *p),
				  echo_text(buf, item, (int) (end - item)));
		return false;
	}
	if (lo > hi)
	{
		set_error(err, errlen, "%s field: range \"%s\" runs backwards (%d is after %d)",
				  f->name, echo_text(buf, item, (int) (end - item)), lo, hi);
		return false;
	}

	for (v = lo; v <= hi; v += step)
		*bits |= UINT64_C(1) << v;
	return true;
}

/* Parses one comma-separated cron field into a bitmap of allowed values. */
static bool
parse_field(const CronField *f, const Word *w, uint64_t *bits,
			char *err, size_t errlen)
{
	const char *p = w->start;
	const char *end = w->start + w->len;

	*bits = 0;
	for (;;)
	{
		const char *comma = memchr(p, ',', (size_t) (end - p));
		const char *item_end = comma ? comma : end;

		if (item_end == p)
		{
			set_error(err, errlen, "%s field: empty list item", f->name);
			return false;
		}
		if (!parse_item(f, p, item_end, bits, err, errlen))
			return false;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return true;
}

static bool
parse_cron(const Word *words, int nwords, QmlSchedule *s,
		   char *err, size_t errlen)
{
	uint64_t	bits[5];
	int			i;

	if (nwords != 5)
	{
		set_error(err, errlen,
				  "expected 5 fields (minute hour day-of-month month day-of-week), found %d",
				  nwords);
		return false;
	}
	for (i = 0; i < 5; i++)
	{
		if (!parse_field(&cron_fields[i], &words[i], &bits[i], err, errlen))
			return false;
	}
	s->kind = QML_SCHEDULE_CRON;
	s->minutes = bits[0];
	s->hours = (uint32_t) bits[1];
	s->days = (uint32_t) bits[2];
	s->months = (uint16_t) bits[3];
	/* fold 7 onto 0: both are Sunday */
	s->weekdays = (uint8_t) ((bits[4] | (bits[4] >> 7)) & 0x7f);
	s->dom_restricted = words[2].start[0] != '*';
	s->dow_restricted = words[4].start[0] != '*';
	return true;
}

static bool
parse_macro(const Word *words, int nwords, QmlSchedule *s,
			char *err, size_t errlen)
{
	char		buf[MAX_ECHO + 4];
	int			i;

	if (word_equals(words[0].start, words[0].len, "@reboot"))
	{
		set_error(err, errlen,
				  "@reboot is not supported: recurring jobs need a time-based schedule");
		return false;
	}
	for (i = 0; macros[i].name != NULL; i++)
	{
		if (word_equals(words[0].start, words[0].len, macros[i].name))
		{
			Word		expanded[MAX_WORDS];

			if (nwords > 1)
			{
				set_error(err, errlen, "unexpected text \"%s\" after %s",
						  echo_text(buf, words[1].start, words[1].len),
						  macros[i].name);
				return false;
			}
			return parse_cron(expanded, split_words(macros[i].expansion, expanded),
							  s, err, errlen);
		}
	}
	set_error(err, errlen, "unknown macro \"%s\"",
			  echo_text(buf, words[0].start, words[0].len));
	return false;
}

static bool
parse_interval(const Word *words, int nwords, QmlSchedule *s,
			   char *err, size_t errlen)
{
	const int64_t max_seconds = QML_INTERVAL_MAX_USEC / 1000000;
	char		buf[MAX_ECHO + 4];
	const Word *amount;
	const Word *unit;
	int64_t		n = 0;
	int64_t		unit_seconds = 0;
	int			first = 0;
	int			i;

	if (word_equals(words[0].start, words[0].len, "every"))
		first = 1;
	if (nwords <= first)
	{
		set_error(err, errlen, "interval: missing amount after \"every\"");
		return false;
	}
	amount = &words[first];
	for (i = 0; i < amount->len; i++)
	{
		if (!is_digit(amount->start[i]))
		{
			set_error(err, errlen,
					  "interval: amount \"%s\" is not a positive whole number",
					  echo_text(buf, amount->start, amount->len));
			return false;
		}
		/* saturate past the maximum so huge amounts cannot overflow */
		if (n <= max_seconds)
			n = n * 10 + (amount->start[i] - '0');
	}
	if (nwords <= first + 1)
	{
		set_error(err, errlen, "interval: missing unit after \"%s\"",
				  echo_text(buf, amount->start, amount->len));
		return false;
	}
	unit = &words[first + 1];
	for (i = 0; interval_units[i].name != NULL; i++)
	{
		if (word_equals(unit->start, unit->len, interval_units[i].name))
		{
			unit_seconds = interval_units[i].seconds;
			break;
		}
	}
	if (unit_seconds == 0)
	{
		set_error(err, errlen,
				  "interval: unknown unit \"%s\" (use seconds, minutes, hours or days)",
				  echo_text(buf, unit->start, unit->len));
		return false;
	}
	if (nwords > first + 2)
	{
		set_error(err, errlen, "interval: unexpected text \"%s\" after the unit",
				  echo_text(buf, words[first + 2].start, words[first + 2].len));
		return false;
	}
	if (n == 0)
	{
		set_error(err, errlen, "interval: amount must be at least 1");
		return false;
	}
	if (n > max_seconds || n * unit_seconds > max_seconds)
	{
		set_error(err, errlen, "interval: %s %.*s is longer than 366 days",
				  echo_text(buf, amount->start, amount->len),
				  unit->len > MAX_ECHO ? MAX_ECHO : unit->len, unit->start);
		return false;
	}
	s->kind = QML_SCHEDULE_INTERVAL;
	s->interval_usec = n * unit_seconds * 1000000;
	return true;
}

bool
qml_schedule_parse(const char *text, QmlSchedule *out, char *err, size_t errlen)
{
	Word		words[MAX_WORDS];
	int			nwords;
	QmlSchedule s;
	bool		ok;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (text == NULL)
	{
		set_error(err, errlen, "schedule is null");
		return false;
	}
	/* strnlen: never scan far past the limit, whatever the caller passed */
	if (strnlen(text, QML_SCHEDULE_MAX_LEN + 1) > QML_SCHEDULE_MAX_LEN)
	{
		set_error(err, errlen, "schedule is longer than %d bytes",
				  QML_SCHEDULE_MAX_LEN);
		return false;
	}
	nwords = split_words(text, words);
	if (nwords == 0)
	{
		set_error(err, errlen, "schedule is empty");
		return false;
	}

	memset(&s, 0, sizeof(s));
	if (words[0].start[0] == '@')
		ok = parse_macro(words, nwords, &s, err, errlen);
	else if (word_equals(words[0].start, words[0].len, "every") ||
			 ((nwords == 2 || nwords == 3) && is_alpha(words[1].start[0])))
		ok = parse_interval(words, nwords, &s, err, errlen);
	else
		ok = parse_cron(words, nwords, &s, err, errlen);

	if (ok && out != NULL)
		*out = s;
	return ok;
}

/* Next-time computation */

static bool
is_leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return (m == 2 && is_leap_year(y)) ? 29 : mdays[m - 1];
}

/* Day of week, Sunday = 0, for a proleptic Gregorian date with y >= 1. */
static int
day_of_week(int y, int m, int d)
{
	static const int offset[12] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};

	if (m < 3)
		y--;
	return (int) (((int64_t) y + y / 4 - y / 100 + y / 400 + offset[m - 1] + d) % 7);
}

static bool
valid_time(const QmlCronTime *t)
{
	return t->year >= 1 && t->year <= QML_CRON_MAX_YEAR &&
		t->month >= 1 && t->month <= 12 &&
		t->day >= 1 && t->day <= days_in_month(t->year, t->month) &&
		t->hour >= 0 && t->hour <= 23 &&
		t->minute >= 0 && t->minute <= 59;
}

/* The classic cron day rule; see cron.h. */
static bool
day_matches(const QmlSchedule *s, int y, int m, int d)
{
	bool		dom = (s->days >> d) & 1;
	bool		dow = (s->weekdays >> day_of_week(y, m, d)) & 1;

	if (s->dom_restricted && s->dow_restricted)
		return dom || dow;
	return dom && dow;
}

/* Lowest set bit of bits in [from, max], or -1. */
static int
next_bit(uint64_t bits, int from, int max)
{
	int			i;

	for (i = from; i <= max; i++)
	{
		if ((bits >> i) & 1)
			return i;
	}
	return -1;
}

static int
compare_times(const QmlCronTime *a, const QmlCronTime *b)
{
	if (a->year != b->year)
		return a->year < b->year ? -1 : 1;
	if (a->month != b->month)
		return a->month < b->month ? -1 : 1;
	if (a->day != b->day)
		return a->day < b->day ? -1 : 1;
	if (a->hour != b->hour)
		return a->hour < b->hour ? -1 : 1;
	if (a->minute != b->minute)
		return a->minute < b->minute ? -1 : 1;
	return 0;
}

bool
qml_cron_matches(const QmlSchedule *s, const QmlCronTime *t)
{
	if (s == NULL || t == NULL || s->kind != QML_SCHEDULE_CRON || !valid_time(t))
		return false;
	return ((s->months >> t->month) & 1) &&
		day_matches(s, t->year, t->month, t->day) &&
		((s->hours >> t->hour) & 1) &&
		((s->minutes >> t->minute) & 1);
}

/*
 * The latest minute qml_cron_next may answer for a search from *after.  It
 * is compared field by field, so a Feb 29 start simply gives a limit "Feb
 * 29" that every later Mar 1 exceeds.
 */
static QmlCronTime
search_limit(const QmlCronTime *after)
{
	QmlCronTime limit = *after;

	limit.year += QML_CRON_HORIZON_YEARS;
	/* never answer with a time that qml_cron_matches would call invalid */
	if (limit.year > QML_CRON_MAX_YEAR)
	{
		limit.year = QML_CRON_MAX_YEAR;
		limit.month = 12;
		limit.day = 31;
		limit.hour = 23;
		limit.minute = 59;
	}
	return limit;
}

/* Carries overflowed fields upwards; only one unit is ever added. */
static void
carry(QmlCronTime *t)
{
	if (t->minute > 59)
	{
		t->minute = 0;
		t->hour++;
	}
	if (t->hour > 23)
	{
		t->hour = 0;
		t->day++;
	}
	if (t->day > days_in_month(t->year, t->month))
	{
		t->day = 1;
		t->month++;
	}
	if (t->month > 12)
	{
		t->month = 1;
		t->year++;
	}
}

/* Moves *t to the first minute of the day after it (carry fixes overflow). */
static void
next_day(QmlCronTime *t)
{
	t->day++;
	t->hour = 0;
	t->minute = 0;
}

/*
 * One step of the search from *t (already carried): true when *t matches.
 * Otherwise moves *t forward to the first minute of the next candidate
 * month, day or hour and returns false; an allowed hour or minute later in
 * the same hour or day is moved to directly.
 */
static bool
step_towards_match(const QmlSchedule *s, QmlCronTime *t)
{
	int			m = next_bit(s->months, t->month, 12);
	int			h;
	int			mi;

	if (m < 0)
	{
		t->year++;
		t->month = 1;
		t->day = 1;
		t->hour = 0;
		t->minute = 0;
		return false;
	}
	if (m != t->month)
	{
		t->month = m;
		t->day = 1;
		t->hour = 0;
		t->minute = 0;
		return false;
	}
	if (!day_matches(s, t->year, t->month, t->day))
	{
		next_day(t);
		return false;
	}
	h = next_bit(s->hours, t->hour, 23);
	if (h < 0)
	{
		next_day(t);
		return false;
	}
	if (h != t->hour)
	{
		t->hour = h;
		t->minute = 0;
	}
	mi = next_bit(s->minutes, t->minute, 59);
	if (mi < 0)
	{
		t->hour++;
		t->minute = 0;
		return false;
	}
	t->minute = mi;
	return true;
}

bool
qml_cron_next(const QmlSchedule *s, const QmlCronTime *after, QmlCronTime *next)
{
	QmlCronTime t;
	QmlCronTime limit;

	if (s == NULL || after == NULL || next == NULL ||
		s->kind != QML_SCHEDULE_CRON || !valid_time(after))
		return false;

	limit = search_limit(after);
	t = *after;
	t.minute++;

	/*
	 * Each step either matches or moves t forward to the first minute of the
	 * next candidate month, day or hour (or to the next allowed hour or
	 * minute), so the loop runs a bounded number of times before passing the
	 * limit: at most a few per day of the horizon.
	 */
	for (;;)
	{
		carry(&t);
		if (compare_times(&t, &limit) > 0)
			return false;
		if (step_towards_match(s, &t))
			break;
	}
	if (compare_times(&t, &limit) > 0)
		return false;
	*next = t;
	return true;
}
