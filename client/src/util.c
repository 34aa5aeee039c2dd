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
	size_t		need = b->len + more + 1;
	size_t		cap;
	char	   *d;

	if (b->oom)
		return false;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	d = realloc(b->data, cap);
	if (d == NULL)
	{
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
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

bool
qml__json_check(const char *text, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t	   *v;

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
