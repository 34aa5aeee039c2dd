/*
 * store_memory_recurring.c
 *	  Recurring jobs of the memory store: add, remove, list, run now, and
 *	  firing them from the maintenance pass, once per due time.
 *
 * Schedules are parsed by the extension's own parser (src/cron.c, plain C
 * with no PostgreSQL headers), so both stores accept exactly the same text.
 * Cron schedules run in UTC: the memory store has no time zone database of
 * its own to convert with, and says so when another zone is asked for.
 * Runs missed while nothing ran (the process was down) fire once, not once
 * per missed time.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store_memory.h"

void
mem_recurring_free(mem_recurring *r)
{
	if (r == NULL)
		return;
	free(r->name);
	free(r->schedule);
	free(r->method);
	free(r->arguments);
	free(r->queue);
	free(r);
}

int64_t
mem_recurring_next(const mem_recurring *r, int64_t after)
{
	return qml__store_schedule_next(&r->parsed, after);
}

static mem_recurring **
find(mem_store *m, const char *name)
{
	mem_recurring **p;

	for (p = &m->recurring; *p; p = &(*p)->next)
		if (strcmp((*p)->name, name) == 0)
			break;
	return p;
}

/* Enqueues r's job now (caller holds mu). */
static qml_status
enqueue_one(mem_store *m, mem_recurring *r, int64_t now, int64_t *id)
{
	qml_enqueue_options o = {.queue = r->queue, .priority = r->priority,
	.max_attempts = r->max_attempts};
	qml_status	st;

	if (m->capacity > 0 && m->live >= m->capacity)
		return qml__error(QML_ERR_TIMEOUT, "the memory store is full");
	if ((st = mem_insert(m, r->method, r->arguments, &o, now, id)) == QML_OK)
		mem_wake(m, mem_queue_get(m, r->queue, false));
	return st;
}

int64_t
mem_recurring_fire(mem_store *m, int64_t now, bool *nomem)
{
	int64_t		fired = 0,
				id;
	qml_status	st;

	for (mem_recurring *r = m->recurring; r; r = r->next)
	{
		if (r->next_run_at == QML_TIME_NULL || r->next_run_at > now)
			continue;
		/* out of memory, the run is not skipped: it stays due */
		if ((st = enqueue_one(m, r, now, &id)) == QML_ERR_NOMEM)
		{
			*nomem = true;
			continue;
		}
		if (st == QML_OK)
			fired++;
		r->last_run_at = now;
		r->next_run_at = mem_recurring_next(r, now);
	}
	return fired;
}

qml_status
mem_recurring_add(qml_store *store, const char *name, const char *schedule,
				  const char *method, const char *arguments,
				  const qml_recurring_options *o)
{
	mem_store  *m = MEM(store);
	mem_recurring *r = calloc(1, sizeof(*r)),
			  **at;
	char		why[160];
	qml_status	st;

	if (r == NULL)
		return qml__nomem();
	/* qml.add_recurring's limits; a snapshot holds only UTF-8 */
	if ((st = mem_check_name("name", name, 200)) != QML_OK ||
		(st = mem_check_name("method", method, 1000)) != QML_OK ||
		(st = mem_check_name("queue", o->queue ? o->queue : "default", 128)) != QML_OK)
	{
		free(r);
		return st;
	}
	if (!qml_schedule_parse(schedule, &r->parsed, why, sizeof(why)))
	{
		free(r);
		return qml__error(QML_ERR_INVALID, "invalid schedule \"%.64s\": %s", schedule, why);
	}
	if (o->timezone && strcasecmp(o->timezone, "UTC") != 0 && strcmp(o->timezone, "Etc/UTC") != 0)
	{
		free(r);
		qml__error(QML_ERR_UNSUPPORTED, "the memory store runs cron schedules in UTC only");
		qml__error_set_extra(NULL, "Give the schedule in UTC, or use the PostgreSQL store for time zones.", NULL);
		return QML_ERR_UNSUPPORTED;
	}
	r->name = qml__strdup(name);
	r->schedule = qml__strdup(schedule);
	r->method = qml__strdup(method);
	r->arguments = qml__strdup(arguments ? arguments : "[]");
	r->queue = qml__strdup(o->queue ? o->queue : "default");
	r->priority = o->priority;
	r->max_attempts = o->max_attempts;
	r->last_run_at = QML_TIME_NULL;
	r->next_run_at = mem_recurring_next(r, qml_now());
	if (!r->name || !r->schedule || !r->method || !r->arguments || !r->queue)
	{
		mem_recurring_free(r);
		return qml__nomem();
	}
	pthread_mutex_lock(&m->mu);
	at = find(m, name);
	if (*at)
	{
		pthread_mutex_unlock(&m->mu);
		mem_recurring_free(r);
		return qml__store_recurring_taken(name);
	}
	*at = r;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return QML_OK;
}

qml_status
mem_recurring_remove(qml_store *store, const char *name)
{
	mem_store  *m = MEM(store);
	mem_recurring **at,
			   *r;

	pthread_mutex_lock(&m->mu);
	at = find(m, name);
	r = *at;
	if (r)
		*at = r->next;
	pthread_mutex_unlock(&m->mu);
	if (r == NULL)
		return qml__error(QML_ERR_NOT_FOUND, "there is no recurring job named \"%s\"", name);
	mem_recurring_free(r);
	return QML_OK;
}

qml_status
mem_recurring_run(qml_store *store, const char *name, int64_t *id)
{
	mem_store  *m = MEM(store);
	mem_recurring *r;
	qml_status	st;

	pthread_mutex_lock(&m->mu);
	r = *find(m, name);
	st = r ? enqueue_one(m, r, qml_now(), id) :
		qml__error(QML_ERR_NOT_FOUND, "there is no recurring job named \"%s\"", name);
	pthread_mutex_unlock(&m->mu);
	return st;
}

static json_t *
time_json(int64_t us)
{
	char		buf[64];

	if (us == QML_TIME_NULL)
		return json_null();
	qml_time_iso8601(us, buf, sizeof(buf));
	return json_string(buf);
}

qml_status
mem_recurring_list(qml_store *store, char **out)
{
	mem_store  *m = MEM(store);
	json_t	   *a = json_array();

	pthread_mutex_lock(&m->mu);
	for (mem_recurring *r = m->recurring; a && r; r = r->next)
	{
		json_t	   *args = json_loads(r->arguments, JSON_DECODE_ANY, NULL);

		/* out of memory, the list is refused, not handed out short */
		if (json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:o, s:s, s:o, s:o}",
										   "name", r->name, "schedule", r->schedule,
										   "method", r->method,
										   "arguments", args ? args : json_null(),
										   "queue", r->queue, "priority", r->priority,
										   "max_attempts", r->max_attempts ? json_integer(r->max_attempts) : json_null(),
										   "timezone", "UTC",
										   "next_run_at", time_json(r->next_run_at),
										   "last_run_at", time_json(r->last_run_at))) != 0)
		{
			json_decref(a);
			a = NULL;
		}
	}
	pthread_mutex_unlock(&m->mu);
	*out = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	return *out ? QML_OK : qml__nomem();
}
