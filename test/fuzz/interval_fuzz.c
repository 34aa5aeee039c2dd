/*-------------------------------------------------------------------------
 *
 * interval_fuzz.c
 *	  libFuzzer target for interval schedules ("every 5 minutes", "30 s")
 *	  of the schedule parser (src/cron.c).
 *
 * Two modes, chosen by the first byte.  Structured: the input picks the
 * parts of an interval text (an "every" or not, an amount of any size, with
 * a sign or leading zeros, a unit among the valid ones and some invalid
 * ones, letter case, white space, a trailing word); the text is built and
 * parsed, and the answer is checked against an oracle computed here from
 * the parts: accepted exactly when it should be, with exactly N * unit
 * seconds.  Raw: the rest of the input is the text; an accepted interval
 * must give the same value when written back as "N seconds" and as
 * "every N s".  Both modes check the rejection reason's form.
 *
 * Build and run: make fuzz-interval (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#include "cron.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 256

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *text)
{
	fprintf(stderr, "interval_fuzz: %s (input \"%s\")\n", what, text);
	abort();
}

typedef struct
{
	const char *name;
	int64_t		seconds;		/* 0: not a unit */
} Unit;

static const Unit units[] = {
	{"s", 1}, {"sec", 1}, {"secs", 1}, {"second", 1}, {"seconds", 1},
	{"m", 60}, {"min", 60}, {"mins", 60}, {"minute", 60}, {"minutes", 60},
	{"h", 3600}, {"hour", 3600}, {"hours", 3600},
	{"d", 86400}, {"day", 86400}, {"days", 86400},
	{"w", 0}, {"weeks", 0}, {"ms", 0}, {"secondss", 0}, {"mi", 0}, {"y", 0},
};

#define NUNITS (sizeof(units) / sizeof(units[0]))

static const char *const spaces[] = {" ", "\t", "  ", "\n ", "\r\f\v"};

static void
check_rejection(const char *text, const char *err)
{
	size_t		len = strlen(err);

	if (len == 0 || len >= ERRLEN - 1)
		die("rejected without a whole reason", text);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) err[i] < 0x20 || (unsigned char) err[i] >= 0x7f)
			die("reason has a non-printable byte", text);
	if (err[len - 1] == '.' || (err[0] >= 'A' && err[0] <= 'Z'))
		die("reason is not a lower-case phrase", text);
}

static void
check_interval(const QmlSchedule *s, const char *text)
{
	if (s->kind != QML_SCHEDULE_INTERVAL || s->interval_usec < QML_INTERVAL_MIN_USEC ||
		s->interval_usec > QML_INTERVAL_MAX_USEC || s->interval_usec % 1000000 != 0 ||
		s->minutes || s->hours || s->days || s->months || s->weekdays)
		die("accepted interval is out of bounds or mixed", text);
}

/* the value written back must parse to the same value */
static void
round_trip(const QmlSchedule *s, const char *text)
{
	char		back[64];
	QmlSchedule s2;
	int64_t		secs = s->interval_usec / 1000000;

	snprintf(back, sizeof(back), "%" PRId64 " seconds", secs);
	if (!qml_schedule_parse(back, &s2, NULL, 0) || s2.kind != QML_SCHEDULE_INTERVAL ||
		s2.interval_usec != s->interval_usec)
		die("\"N seconds\" round trip differs", text);
	snprintf(back, sizeof(back), "every %" PRId64 " s", secs);
	if (!qml_schedule_parse(back, &s2, NULL, 0) || s2.interval_usec != s->interval_usec)
		die("\"every N s\" round trip differs", text);
}

static void
mangle_case(char *w, uint8_t bits)
{
	for (size_t i = 0; w[i]; i++)
		if ((bits >> (i % 8)) & 1 && w[i] >= 'a' && w[i] <= 'z')
			w[i] = (char) (w[i] - 'a' + 'A');
}

static void
structured(const uint8_t *d, size_t size)
{
	uint8_t		b[12] = {0};
	uint64_t	amount = 0;
	char		text[512];
	char		unit[16];
	char		every[8] = "every";
	const Unit *u;
	const char *sp;
	const char *sign = "";
	bool		zeros,
				extra;
	bool		want;
	QmlSchedule s;
	char		err[ERRLEN];

	memcpy(b, d, size < sizeof(b) ? size : sizeof(b));
	for (int i = 0; i < 8; i++)
		amount = amount << 8 | b[3 + i];
	switch (b[1] & 3)
	{
		case 0:
			amount %= 100;
			break;
		case 1:
			amount %= 1000000;
			break;
		case 2:
			amount %= 40000000;
			break;
	}
	u = &units[b[2] % NUNITS];
	snprintf(unit, sizeof(unit), "%s", u->name);
	mangle_case(unit, b[11]);
	mangle_case(every, (uint8_t) (b[11] >> 3));
	sp = spaces[(b[1] >> 2) % 5];
	zeros = b[1] & 0x20;
	extra = b[1] & 0x40;
	if (b[0] & 0x02)
		sign = (b[0] & 0x04) ? "-" : "+";
	snprintf(text, sizeof(text), "%s%s%s%s%s%" PRIu64 "%s%s%s%s%s",
			 (b[0] & 0x08) ? sp : "", (b[0] & 0x01) ? every : "", (b[0] & 0x01) ? sp : "",
			 sign, zeros ? "000" : "", amount, sp, unit,
			 extra ? sp : "", extra ? "x" : "", (b[0] & 0x10) ? sp : "");

	want = *sign == '\0' && !extra && u->seconds > 0 && amount >= 1 &&
		amount <= (uint64_t) (QML_INTERVAL_MAX_USEC / 1000000) / (uint64_t) u->seconds;
	if (qml_schedule_parse(text, &s, err, sizeof(err)) != want)
		die(want ? "valid interval rejected" : "invalid interval accepted", text);
	if (!want)
	{
		check_rejection(text, err);
		return;
	}
	check_interval(&s, text);
	if (s.interval_usec != (int64_t) amount * u->seconds * 1000000)
		die("interval has the wrong value", text);
	round_trip(&s, text);
}

static void
raw(const uint8_t *d, size_t size)
{
	char	   *text = malloc(size + 1);
	char		err[ERRLEN];
	QmlSchedule s;

	memcpy(text, d, size);
	text[size] = '\0';
	if (!qml_schedule_parse(text, &s, err, sizeof(err)))
		check_rejection(text, err);
	else if (s.kind == QML_SCHEDULE_INTERVAL)
	{
		check_interval(&s, text);
		round_trip(&s, text);
	}
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 0x80)
		raw(data + 1, size - 1);
	else
		structured(data, size);
	return 0;
}
