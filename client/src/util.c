/*
 * util.c
 *	  Small helpers: clocks, sleeping, times as text, result columns,
 *	  growing buffers, PostgreSQL array literals, and JSON checks (jansson).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "internal.h"

int64_t
qml_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
qml__mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CLOCK_MONOTONIC to the last tick: a few ms behind, far cheaper */
int64_t
qml__mono_coarse_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
qml__sleep_ms(int ms, const atomic_bool *stop)
{
	int64_t		end = qml__mono_us() + (int64_t) ms * 1000;

	for (;;)
	{
		int64_t		left = end - qml__mono_us();
		struct timespec ts;

		if (left <= 0 || (stop && atomic_load(stop)))
			return;
		if (left > 20000)
			left = 20000;
		ts.tv_sec = 0;
		ts.tv_nsec = (long) left * 1000;
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

int
qml__backoff_ms(int attempt)
{
	int			ms = 100;
	unsigned	seed = (unsigned) qml__mono_us();

	while (attempt-- > 0 && ms < 5000)
		ms *= 2;
	if (ms > 5000)
		ms = 5000;
	/* up to a quarter of jitter, so restarted workers do not reconnect in step */
	return ms - (int) (rand_r(&seed) % (unsigned) (ms / 4 + 1));
}

void
qml__cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &attr);
	pthread_condattr_destroy(&attr);
}

bool
qml__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
	struct timespec ts;

	if (deadline <= 0)
	{
		pthread_cond_wait(cv, mu);
		return true;
	}
	ts.tv_sec = deadline / 1000000;
	ts.tv_nsec = (long) (deadline % 1000000) * 1000;
	return pthread_cond_timedwait(cv, mu, &ts) == 0;
}

void
qml_time_iso8601(int64_t us, char *buf, size_t size)
{
	time_t		sec = (time_t) (us / 1000000);
	long		frac = (long) (us % 1000000);
	struct tm	tm;

	if (frac < 0)
	{
		frac += 1000000;
		sec -= 1;
	}
	gmtime_r(&sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, frac);
}

/* ---- result columns and parameters ---- */

void
qml__i64_text(char *buf, size_t size, int64_t v)
{
	snprintf(buf, size, "%" PRId64, v);
}

int64_t
qml__col_i64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return QML_TIME_NULL;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double
qml__col_double(const PGresult *r, int row, int col, double null_value)
{
	if (PQgetisnull(r, row, col))
		return null_value;
	return strtod(PQgetvalue(r, row, col), NULL);
}

char *
qml__col_str(const PGresult *r, int row, int col, bool *oom)
{
	char	   *s;

	if (PQgetisnull(r, row, col))
		return NULL;
	s = qml__strdup(PQgetvalue(r, row, col));
	if (s == NULL)
		*oom = true;
	return s;
}

void *
qml__grow(void *items, size_t *cap, size_t need, size_t first, size_t size)
{
	size_t		n = *cap ? *cap : first;
	void	   *grown;

	/* an array never allocated is made even for no room, so NULL is a failure */
	if (need == 0)
		need = 1;
	if (need <= *cap)
		return items;
	while (n < need)
	{
		if (n > SIZE_MAX / 2)
			return NULL;
		n *= 2;
	}
	if (n > SIZE_MAX / size || (grown = realloc(items, n * size)) == NULL)
		return NULL;
	*cap = n;
	return grown;
}

char *
qml__strdup(const char *s)
{
	size_t		n;
	char	   *d;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void
qml_free(void *ptr)
{
	free(ptr);
}

/* ---- buffers ---- */

void
qml__buf_init(qml_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = false;
}

void
qml__buf_free(qml_buf *b)
{
	free(b->data);
	qml__buf_init(b);
}

void
qml__buf_reset(qml_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static bool
buf_reserve(qml_buf *b, size_t more)
{
	char	   *d;

	if (b->oom)
		return false;
	if ((d = qml__grow(b->data, &b->cap, b->len + more + 1, 64, 1)) == NULL)
	{
		b->oom = true;
		return false;
	}
	b->data = d;
	return true;
}

void
qml__buf_append(qml_buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
qml__buf_puts(qml_buf *b, const char *s)
{
	qml__buf_append(b, s, strlen(s));
}

void
qml__buf_printf(qml_buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t) n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
}

/*
 * A number in decimal, without printf: a flush writes a thousand ids, and
 * vsnprintf twice per id was a tenth of the flusher's work.
 */
void
qml__buf_i64(qml_buf *b, int64_t v)
{
	char		digits[24];
	char	   *p = digits + sizeof(digits);
	uint64_t	u = v < 0 ? -(uint64_t) v : (uint64_t) v;

	do
		*--p = (char) ('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	qml__buf_append(b, p, (size_t) (digits + sizeof(digits) - p));
}

void
qml__buf_array_elem(qml_buf *b, const char *s)
{
	const char *p;

	if (s == NULL)
	{
		qml__buf_puts(b, "NULL");
		return;
	}
	qml__buf_append(b, "\"", 1);
	for (p = s; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			qml__buf_append(b, "\\", 1);
		qml__buf_append(b, p, 1);
	}
	qml__buf_append(b, "\"", 1);
}

/* ---- JSON ---- */

/*
 * The common case without jansson: a value made only of ASCII strings
 * without \u escapes, numbers without an exponent of at most 15 digits,
 * true/false/null, arrays and objects at most PLAIN_DEPTH deep. What this
 * accepts jansson and jsonb accept too; anything else (including every
 * error, whose message jansson words) goes to jansson. Parsing into a tree
 * costs allocations per value, and every enqueued job's arguments pass
 * here.
 */
#define PLAIN_DEPTH 32

static const char *
plain_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *
plain_string(const char *p)
{
	for (p++;; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
			return p + 1;
		if (c < 0x20 || c >= 0x7F)
			return NULL;
		if (c == '\\')
		{
			p++;
			if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL)
				return NULL;
		}
	}
}

static const char *
plain_number(const char *p)
{
	int			digits = 0;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++, digits++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++, digits++;
	else
		return NULL;
	if (*p == '.')
	{
		if (!(*++p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++, digits++;
	}
	if (digits > 15 || *p == 'e' || *p == 'E')
		return NULL;
	return p;
}

static const char *
plain_value(const char *p, int depth)
{
	char		close;

	p = plain_ws(p);
	if (*p == '"')
		return plain_string(p);
	if (*p == '-' || (*p >= '0' && *p <= '9'))
		return plain_number(p);
	if ((*p == 't' && strncmp(p, "true", 4) == 0) || (*p == 'n' && strncmp(p, "null", 4) == 0))
		return p + 4;
	if (*p == 'f' && strncmp(p, "false", 5) == 0)
		return p + 5;
	if ((*p != '[' && *p != '{') || depth >= PLAIN_DEPTH)
		return NULL;
	close = *p == '[' ? ']' : '}';
	p = plain_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;)
	{
		if (close == '}')
		{
			if (*p != '"' || (p = plain_string(p)) == NULL)
				return NULL;
			if (*(p = plain_ws(p)) != ':')
				return NULL;
			p++;
		}
		if ((p = plain_value(p, depth + 1)) == NULL)
			return NULL;
		p = plain_ws(p);
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = plain_ws(p + 1);
	}
}

bool
qml__json_plain(const char *text)
{
	const char *end = plain_value(text, 0);

	return end != NULL && *plain_ws(end) == '\0';
}

bool
qml__json_check(const char *text, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t	   *v;

	if (qml__json_plain(text))
		return true;

	/*
	 * Integers as reals: jsonb takes numbers of any size, jansson's integers
	 * stop at 64 bits. NUL characters stay refused, as jsonb refuses \u0000.
	 */
	v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
	if (v == NULL)
	{
		if (err && errlen)
			snprintf(err, errlen, "%s (line %d, column %d)", jerr.text,
					 jerr.line, jerr.column);
		return false;
	}
	json_decref(v);
	return true;
}

/*
 * The length of the well-formed UTF-8 character at s (as jansson and
 * PostgreSQL accept one: no overlong form, no surrogate, at most U+10FFFF),
 * 0 if the bytes there are not one.
 */
static size_t
utf8_char_len(const unsigned char *s)
{
	unsigned int c = s[0];
	size_t		n;
	unsigned int cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		(cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

long
qml__utf8_chars(const char *s)
{
	long		chars = 0;

	for (const unsigned char *p = (const unsigned char *) s; *p; chars++)
	{
		size_t		n = utf8_char_len(p);

		if (n == 0)
			return -1;
		p += n;
	}
	return chars;
}

bool
qml__utf8_valid(const char *s)
{
	return qml__utf8_chars(s) >= 0;
}

char *
qml__strdup_utf8(const char *s)
{
	char	   *d = qml__strdup(s);

	for (unsigned char *p = (unsigned char *) d; p && *p;)
	{
		size_t		n = utf8_char_len(p);

		if (n == 0)
			*p++ = '?';
		else
			p += n;
	}
	return d;
}

qml_status
qml__check_arguments(const char *what, const char *json)
{
	char		why[256];

	if (json == NULL || qml__json_check(json, why, sizeof(why)))
		return QML_OK;
	return qml__error(QML_ERR_INVALID, "%s is not valid JSON: %s", what, why);
}

bool
qml_parse_duration_ms(const char *text, int64_t bare_unit_ms, int64_t *ms)
{
	char	   *end;
	double		v;
	double		unit = (double) bare_unit_ms;

	if (text == NULL || ms == NULL)
		return false;
	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || v < 0 || !isfinite(v))
		return false;
	while (*end == ' ')
		end++;
	if (*end == '\0')
		unit = (double) bare_unit_ms;
	else if (strcmp(end, "s") == 0 || strcmp(end, "sec") == 0 ||
			 strcmp(end, "seconds") == 0 || strcmp(end, "second") == 0)
		unit = 1000;
	else if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0 ||
			 strcmp(end, "minutes") == 0 || strcmp(end, "minute") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0 || strcmp(end, "hours") == 0 || strcmp(end, "hour") == 0)
		unit = 3600000;
	else if (strcmp(end, "d") == 0 || strcmp(end, "days") == 0 || strcmp(end, "day") == 0)
		unit = 86400000;
	else
		return false;
	if (v * unit > 1e15)
		return false;
	*ms = (int64_t) llround(v * unit);
	return true;
}

char *
qml__array_literal(const char *const *items, size_t n)
{
	qml_buf		b;

	qml__buf_init(&b);
	qml__buf_puts(&b, "{");
	for (size_t i = 0; i < n; i++)
	{
		if (i)
			qml__buf_puts(&b, ",");
		qml__buf_array_elem(&b, items[i]);
	}
	qml__buf_puts(&b, "}");
	if (b.oom)
	{
		qml__buf_free(&b);
		return NULL;
	}
	return b.data;
}
