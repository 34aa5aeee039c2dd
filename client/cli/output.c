/*
 * output.c
 *	  Printing for the qml command: errors and exit codes, JSON, times and
 *	  durations (both ways), and aligned tables.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int
cli_exit_code(qml_status st)
{
	switch (st)
	{
		case QML_OK:
			return EXIT_OK;
		case QML_ERR_INVALID:
			return EXIT_USAGE;
		case QML_ERR_CONNECT:
			return EXIT_CONNECT;
		case QML_ERR_NO_EXTENSION:
		case QML_ERR_UNSUPPORTED:
			return EXIT_NO_EXTENSION;
		case QML_ERR_NOT_FOUND:
			return EXIT_NOT_FOUND;
		default:
			return EXIT_FAILED;
	}
}

static const char *
status_key(qml_status st)
{
	static const char *const keys[] = {
		"ok", "invalid", "connect", "no_extension", "unsupported", "not_found",
		"conflict", "permission", "timeout", "server", "state", "nomem", "system"
	};

	return (unsigned) st < sizeof(keys) / sizeof(keys[0]) ? keys[st] : "error";
}

int
cli_fail(cli *g, qml_status st)
{
	const char *detail = qml_errdetail();
	const char *hint = qml_errhint();

	if (g && g->json)
	{
		json_t	   *e = json_pack("{s:s,s:s}", "status", status_key(st), "message", qml_errmsg());
		json_t	   *o = json_object();
		char	   *text;

		if (*detail)
			json_object_set_new(e, "detail", json_string(detail));
		if (*hint)
			json_object_set_new(e, "hint", json_string(hint));
		if (*qml_errsqlstate())
			json_object_set_new(e, "sqlstate", json_string(qml_errsqlstate()));
		json_object_set_new(o, "error", e);
		text = json_dumps(o, JSON_COMPACT);
		if (text)
			fprintf(stderr, "%s\n", text);
		free(text);
		json_decref(o);
	}
	else
	{
		fprintf(stderr, "qml: %s\n", qml_errmsg());
		if (*detail)
			fprintf(stderr, "detail: %s\n", detail);
		if (*hint)
			fprintf(stderr, "hint: %s\n", hint);
	}
	return cli_exit_code(st);
}

void
cli_print_json(json_t *v)
{
	char	   *text = v ? json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;

	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(v);
}

json_t *
cli_json_value(const char *text)
{
	json_t	   *v;

	if (text == NULL)
		return json_null();
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v ? v : json_string(text);
}

json_t *
cli_json_time(int64_t us)
{
	char		buf[48];
	time_t		sec;
	struct tm	tm;

	if (us == QML_TIME_NULL)
		return json_null();
	sec = (time_t) (us / 1000000);
	gmtime_r(&sec, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int) (us % 1000000));
	return json_string(buf);
}

static json_t *
json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
cli_json_job(const qml_job *j)
{
	json_t	   *o = json_object();

	json_object_set_new(o, "id", json_integer(j->id));
	json_object_set_new(o, "queue", json_string(j->queue));
	json_object_set_new(o, "method", json_string(j->method));
	json_object_set_new(o, "arguments", cli_json_value(j->arguments));
	json_object_set_new(o, "priority", json_integer(j->priority));
	json_object_set_new(o, "state", json_string(qml_state_name(j->state)));
	json_object_set_new(o, "attempts", json_integer(j->attempts));
	json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
	json_object_set_new(o, "run_at", cli_json_time(j->run_at));
	json_object_set_new(o, "created_at", cli_json_time(j->created_at));
	json_object_set_new(o, "enqueued_at", cli_json_time(j->enqueued_at));
	json_object_set_new(o, "started_at", cli_json_time(j->started_at));
	json_object_set_new(o, "finished_at", cli_json_time(j->finished_at));
	json_object_set_new(o, "locked_by", json_str_or_null(j->locked_by));
	json_object_set_new(o, "locked_until", cli_json_time(j->locked_until));
	json_object_set_new(o, "last_error", json_str_or_null(j->last_error));
	json_object_set_new(o, "result", cli_json_value(j->result));
	json_object_set_new(o, "unique_key", json_str_or_null(j->unique_key));
	return o;
}

const char *
cli_time(int64_t us, char *buf, size_t size)
{
	time_t		sec;
	struct tm	tm;

	if (us == QML_TIME_NULL)
		return "-";
	sec = (time_t) (us / 1000000);
	localtime_r(&sec, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

static void
short_duration(int64_t us, char *buf, size_t size)
{
	int64_t		s = us / 1000000;

	if (us < 1000000)
		snprintf(buf, size, "%lldms", (long long) (us / 1000));
	else if (s < 120)
		snprintf(buf, size, "%llds", (long long) s);
	else if (s < 7200)
		snprintf(buf, size, "%lldm", (long long) (s / 60));
	else if (s < 172800)
		snprintf(buf, size, "%lldh", (long long) (s / 3600));
	else
		snprintf(buf, size, "%lldd", (long long) (s / 86400));
}

const char *
cli_ago(int64_t us, char *buf, size_t size)
{
	char		d[32];
	int64_t		delta;

	if (us == QML_TIME_NULL)
		return "-";
	delta = qml_now() - us;
	short_duration(delta >= 0 ? delta : -delta, d, sizeof(d));
	snprintf(buf, size, delta >= 0 ? "%s ago" : "in %s", d);
	return buf;
}

const char *
cli_duration(int64_t us, char *buf, size_t size)
{
	if (us < 1000)
		snprintf(buf, size, "%lld µs", (long long) us);
	else if (us < 1000000)
		snprintf(buf, size, "%lld ms", (long long) (us / 1000));
	else if (us < 120000000)
		snprintf(buf, size, "%.1f s", us / 1e6);
	else
		snprintf(buf, size, "%.1f min", us / 6e7);
	return buf;
}

bool
cli_parse_int(const char *text, long min, long max, long *out)
{
	char	   *end;
	long		v;

	/*
	 * plain digits, a '-' before them at most: strtol would also take " 1"
	 * and "+1", which no more name a number here than "1 " does
	 */
	if (!isdigit((unsigned char) text[text[0] == '-']))
		return false;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool
cli_parse_duration_ms(const char *text, int64_t *ms)
{
	return qml_parse_duration_ms(text, 1000, ms);
}

/*
 * Seconds since 1970 and microseconds as microseconds; false when that
 * does not fit in 64 bits (far beyond any timestamp the server takes,
 * which then says so itself).
 */
static bool
seconds_us(long long sec, long frac_us, int64_t *us)
{
	if (sec > INT64_MAX / 1000000 - 1 || sec < INT64_MIN / 1000000 + 1)
		return false;
	*us = (int64_t) sec * 1000000 + frac_us;
	return true;
}

/*
 * Whether strptime's fields name a real day and time: it takes
 * "2025-02-30" (and mktime would make it March 2nd).
 */
static bool
real_date(const struct tm *tm)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			year = tm->tm_year + 1900;
	bool		leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return tm->tm_mon >= 0 && tm->tm_mon < 12 && tm->tm_mday >= 1 &&
		tm->tm_mday <= days[tm->tm_mon] + (tm->tm_mon == 1 && leap) &&
		tm->tm_hour < 24 && tm->tm_min < 60 && tm->tm_sec < 60;
}

/* "+HH:MM", "+HHMM" or "+HH" (or -) and nothing after: seconds east of UTC */
static bool
utc_offset(const char *text, long *east)
{
	int			hh,
				mm = 0,
				len = (int) strlen(text);

	if ((text[0] != '+' && text[0] != '-') ||
		!(len == 3 || len == 5 || (len == 6 && text[3] == ':')) ||
		strspn(text + 1, "0123456789:") != (size_t) (len - 1))
		return false;
	hh = (text[1] - '0') * 10 + (text[2] - '0');
	if (len > 3)
		mm = (text[len - 2] - '0') * 10 + (text[len - 1] - '0');
	if (hh > 15 || mm > 59)
		return false;
	*east = (text[0] == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
	return true;
}

bool
cli_parse_time(const char *text, int64_t *us)
{
	static const char *const formats[] = {
		"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M",
		"%Y-%m-%d %H:%M", "%Y-%m-%d"
	};
	char	   *end;
	long long	epoch;

	if (strcmp(text, "now") == 0)
	{
		*us = qml_now();
		return true;
	}
	errno = 0;
	epoch = strtoll(text, &end, 10);
	if (!errno && end != text && *end == '\0')
		return seconds_us(epoch, 0, us);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
	{
		struct tm	tm;
		const char *rest;
		long		frac_us = 0;
		time_t		sec;

		memset(&tm, 0, sizeof(tm));
		long		east;

		if ((rest = strptime(text, formats[i], &tm)) == NULL)
			continue;
		if (!real_date(&tm))
			return false;
		if (*rest == '.')
		{
			long		scale = 100000;

			for (rest++; isdigit((unsigned char) *rest); rest++, scale /= 10)
				frac_us += (*rest - '0') * scale;
		}
		if (*rest == '\0')
		{
			tm.tm_isdst = -1;
			if ((sec = mktime(&tm)) == (time_t) -1)
				return false;
		}
		else if (strcmp(rest, "Z") == 0 || strcmp(rest, "z") == 0)
			sec = timegm(&tm);
		else if ((*rest == '+' || *rest == '-') && isdigit((unsigned char) rest[1]))
		{
			if (!utc_offset(rest, &east))
				return false;
			sec = timegm(&tm) - east;
		}
		else
			continue;
		return seconds_us(sec, frac_us, us);
	}
	return false;
}

/* ---- text from the database, for a terminal ---- */

/*
 * s with its control characters written out: a job's method, queue,
 * arguments, error or worker name is anyone's text, and a terminal obeys
 * the controls in it (ESC starts sequences that move the cursor, retitle
 * the window, write the clipboard), and a direction override shows the
 * rest of the line reordered. Each C0 control (newline and tab kept when
 * keep_lines), DEL, each C1 control (U+0080..U+009F) and each direction
 * override or isolate (U+202A..U+202E, U+2066..U+2069) becomes \xNN or
 * \uNNNN. Into dst when not NULL; returns the length.
 */
static size_t
printable(char *dst, const char *s, bool keep_lines)
{
	size_t		n = 0;

	for (const unsigned char *p = (const unsigned char *) s; p && *p; p++)
	{
		char		esc[8];
		size_t		len;

		if ((*p < 0x20 && !(keep_lines && (*p == '\n' || *p == '\t'))) || *p == 0x7f)
			len = (size_t) snprintf(esc, sizeof(esc), "\\x%02x", *p);
		else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
			len = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", *++p);
		/* direction overrides reorder what follows: U+202A..E, U+2066..9 */
		else if (*p == 0xE2 && ((p[1] == 0x80 && p[2] >= 0xAA && p[2] <= 0xAE) ||
								(p[1] == 0x81 && p[2] >= 0xA6 && p[2] <= 0xA9)))
		{
			len = (size_t) snprintf(esc, sizeof(esc), "\\u%04x",
									0x2000 + ((p[1] & 0x3F) << 6) + (p[2] & 0x3F));
			p += 2;
		}
		else
		{
			esc[0] = (char) *p;
			len = 1;
		}
		if (dst)
			memcpy(dst + n, esc, len);
		n += len;
	}
	if (dst)
		dst[n] = '\0';
	return n;
}

char *
cli_printable(const char *s, bool keep_lines)
{
	char	   *out = malloc(printable(NULL, s, keep_lines) + 1);

	if (out)
		printable(out, s, keep_lines);
	return out;
}

void
cli_print_field(const char *label, const char *value)
{
	char	   *text = cli_printable(value, true);

	printf("  %-14s%s\n", label, text ? text : "");
	free(text);
}

/* ---- tables ---- */

/* Room for one more row; false when memory ran out. */
static bool
table_reserve(cli_table *t)
{
	size_t		need = (t->nrows + 1) * (size_t) t->ncols;

	if (need > t->cap)
	{
		size_t		cap = t->cap ? t->cap * 2 : (size_t) t->ncols * 16;
		char	  **c;

		while (cap < need)
			cap *= 2;
		if ((c = realloc(t->cells, cap * sizeof(char *))) == NULL)
			return false;
		t->cells = c;
		t->cap = cap;
	}
	return true;
}

static void
table_row(cli_table *t, va_list ap)
{
	size_t		base = t->nrows * (size_t) t->ncols;

	if (!table_reserve(t))
		return;
	for (int i = 0; i < t->ncols; i++)
	{
		const char *s = va_arg(ap, const char *);

		t->cells[base + (size_t) i] = cli_printable(s ? s : "", false);
	}
	t->nrows++;
}

void
cli_table_init(cli_table *t, int ncols,...)
{
	va_list		ap;

	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	va_start(ap, ncols);
	table_row(t, ap);
	va_end(ap);
}

void
cli_table_add(cli_table *t,...)
{
	va_list		ap;

	va_start(ap, t);
	table_row(t, ap);
	va_end(ap);
}

/* Display width of UTF-8 text: count the characters, not the bytes. */
static int
width(const char *s)
{
	int			w = 0;

	for (; s && *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			w++;
	return w;
}

void
cli_table_print(cli_table *t, FILE *out)
{
	int		   *w = calloc((size_t) t->ncols, sizeof(int));

	if (w == NULL)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++)
		{
			int			cw = width(t->cells[r * (size_t) t->ncols + (size_t) c]);

			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++)
	{
		for (int c = 0; c < t->ncols; c++)
		{
			const char *cell = t->cells[r * (size_t) t->ncols + (size_t) c];

			if (c == t->ncols - 1)
				fprintf(out, "%s", cell ? cell : "");
			else
				fprintf(out, "%s%*s  ", cell ? cell : "", w[c] - width(cell), "");
		}
		fputc('\n', out);
	}
	free(w);
}

void
cli_table_free(cli_table *t)
{
	for (size_t i = 0; i < t->nrows * (size_t) t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}
