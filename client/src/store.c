/*
 * store.c
 *	  Picks the storage backend for a URL, and the small pieces every
 *	  backend shares: a claimed job's allocation and the retry backoff.
 *
 * The Redis store (store_redis*.c, over hiredis) is always built in: a
 * strong reference here also pulls it out of libqml.a into programs that
 * link the static library (a weak one would not, and they would lack it).
 * The next due time of a recurring job is here too: the memory and Redis
 * stores compute it alike.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"
#include "store.h"
#include "../../src/cron.h"

extern const qml_store_ops qml__store_redis;

static bool
has_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* A URL scheme is letters, digits, "+", "-", "." before the first ":". */
static size_t
scheme_length(const char *url)
{
	size_t		n = 0;

	while (url[n] && (('a' <= url[n] && url[n] <= 'z') || ('A' <= url[n] && url[n] <= 'Z') ||
					  (n > 0 && (('0' <= url[n] && url[n] <= '9') || url[n] == '+' ||
								 url[n] == '-' || url[n] == '.'))))
		n++;
	return url[n] == ':' ? n : 0;
}

qml_status
qml__store_for_url(const char *url, const qml_store_ops **ops)
{
	size_t		n;

	*ops = NULL;
	if (url == NULL || url[0] == '\0' || has_prefix(url, "postgresql://") ||
		has_prefix(url, "postgres://"))
	{
		*ops = &qml__store_postgres;
		return QML_OK;
	}
	if (has_prefix(url, "memory:"))
	{
		*ops = &qml__store_memory;
		return QML_OK;
	}
	if (has_prefix(url, "redis://") || has_prefix(url, "rediss://") ||
		has_prefix(url, "redis+cluster://"))
	{
		*ops = &qml__store_redis;
		return QML_OK;
	}
	/* "host=... dbname=..." has no scheme: a libpq conninfo */
	if ((n = scheme_length(url)) == 0)
	{
		*ops = &qml__store_postgres;
		return QML_OK;
	}
	qml__error(QML_ERR_INVALID, "unknown storage scheme \"%.*s:\" in the database URL",
			   (int) (n > 40 ? 40 : n), url);
	qml__error_set_extra("The URL must start with postgresql://, postgres://, memory:, redis://, rediss:// or redis+cluster://, or be a libpq conninfo.",
						 "Check the --database-url option or the DATABASE_URL variable.",
						 NULL);
	return QML_ERR_INVALID;
}

qml_store_job *
qml__store_job_new(int64_t id, const char *queue, const char *method,
				   const char *arguments, int priority, int attempts,
				   int max_attempts, int64_t created_at)
{
	size_t		lq = strlen(queue) + 1,
				lm = strlen(method) + 1,
				la = strlen(arguments) + 1;
	qml_store_job *j = malloc(sizeof(qml_store_job) + lq + lm + la);
	char	   *p;

	if (j == NULL)
		return NULL;
	p = (char *) (j + 1);
	memcpy(p, queue, lq);
	j->queue = p;
	p += lq;
	memcpy(p, method, lm);
	j->method = p;
	p += lm;
	memcpy(p, arguments, la);
	j->arguments = p;
	j->id = id;
	j->priority = priority;
	j->attempts = attempts;
	j->max_attempts = max_attempts;
	j->created_at = created_at;
	j->fetched_mono = 0;
	return j;
}

qml_status
qml__store_recurring_taken(const char *name)
{
	qml__error(QML_ERR_CONFLICT, "recurring job \"%s\" already exists", name);
	qml__error_set_extra(NULL, "Remove it first (qml recurring remove NAME), or choose another name.",
						 "23505");
	return QML_ERR_CONFLICT;
}

/* As src/backoff.c: double up to the cap, then a random point in its upper half. */
int64_t
qml__store_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms)
{
	int64_t		delay;

	if (base_ms <= 0)
		base_ms = 5000;
	if (cap_ms <= 0)
		cap_ms = 3600 * 1000;
	if (base_ms > cap_ms)
		base_ms = cap_ms;
	delay = base_ms;
	for (int i = 1; i < attempts && delay < cap_ms; i++)
		delay = delay > cap_ms / 2 ? cap_ms : delay * 2;
	return delay / 2 + (int64_t) ((double) random() / ((double) RAND_MAX + 1.0) * (double) (delay - delay / 2));
}

int64_t
qml__store_schedule_next(const QmlSchedule *s, int64_t after)
{
	time_t		t = (time_t) (after / 1000000);
	struct tm	tm;
	QmlCronTime from,
				next;

	if (s->kind == QML_SCHEDULE_INTERVAL)
		return after + s->interval_usec;
	gmtime_r(&t, &tm);
	from.year = tm.tm_year + 1900;
	from.month = tm.tm_mon + 1;
	from.day = tm.tm_mday;
	from.hour = tm.tm_hour;
	from.minute = tm.tm_min;
	if (!qml_cron_next(s, &from, &next))
		return QML_TIME_NULL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = next.year - 1900;
	tm.tm_mon = next.month - 1;
	tm.tm_mday = next.day;
	tm.tm_hour = next.hour;
	tm.tm_min = next.minute;
	return (int64_t) timegm(&tm) * 1000000;
}
