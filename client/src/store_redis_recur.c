/*
 * store_redis_recur.c
 *	  Recurring jobs of the Redis store. A definition lives in its queue's
 *	  slot (P{T}:rec, name -> JSON with the next due time), so firing it is
 *	  one script there: enqueue the job and move "next" on, only when
 *	  "next" is still the due time the caller saw. Two runtimes firing the
 *	  same due time thus enqueue one job. P:recurring maps names to queues,
 *	  for the maintenance pass and for remove/list.
 *
 * Schedules are the extension's (src/cron.c): cron in UTC, or an interval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "store_redis.h"
#include "../../src/cron.h"


/* The first due time after `after_ms` (ms since epoch); -1 when none. */
static int64_t
next_due(const char *schedule, int64_t after_ms)
{
	QmlSchedule s;
	int64_t		next;

	if (!qml_schedule_parse(schedule, &s, NULL, 0))
		return -1;
	next = qml__store_schedule_next(&s, after_ms * 1000);
	return next == QML_TIME_NULL ? -1 : next / 1000;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
index_key(rds_store *r, char *key, size_t size)
{
	snprintf(key, size, "%s:recurring", r->url.prefix);
}

/* HGET/HSET/HDEL on P:recurring */
static qml_status
index_cmd(rds_store *r, const char *cmd, const char *name, const char *value,
		  redisReply **reply)
{
	char		key[96];
	const char *argv[4] = {cmd, key, name, value};

	index_key(r, key, sizeof(key));
	return qml__rds_command(r, qml__rds_key_slot(key, strlen(key)),
							value ? 4 : 3, argv, NULL, reply);
}

/* the queue of a recurring job; QML_ERR_NOT_FOUND when none */
static qml_status
queue_of(rds_store *r, const char *name, char **queue)
{
	redisReply *reply;
	qml_status	st = index_cmd(r, "HGET", name, NULL, &reply);

	if (st != QML_OK)
		return st;
	if (reply->type != REDIS_REPLY_STRING)
	{
		freeReplyObject(reply);
		return qml__error(QML_ERR_NOT_FOUND, "recurring job \"%s\" does not exist", name);
	}
	*queue = qml__strdup(reply->str);
	freeReplyObject(reply);
	return *queue ? QML_OK : qml__nomem();
}

static qml_status
set_definition(rds_store *r, const char *queue, const char *name, const char *json)
{
	const char *argv[2] = {name, json};
	redisReply *reply;
	qml_status	st;

	st = qml__rds_evals(r, RDS_RECUR_SET, qml__rds_queue_slot(queue), 2, argv, &reply);
	if (reply)
		freeReplyObject(reply);
	return st;
}

qml_status
qml__rds_recurring_add(qml_store *store, const char *name, const char *schedule,
					   const char *method, const char *arguments,
					   const qml_recurring_options *options)
{
	rds_store  *r = (rds_store *) store;
	const char *queue = options && options->queue ? options->queue : "default";
	char		err[128] = "";
	QmlSchedule parsed;
	int64_t		next;
	json_t	   *def;
	char	   *text;
	redisReply *reply;
	qml_status	st;

	if (!qml_schedule_parse(schedule, &parsed, err, sizeof(err)))
		return qml__error(QML_ERR_INVALID, "invalid schedule \"%s\": %s", schedule, err);
	if (options && options->timezone && strcmp(options->timezone, "UTC") != 0)
		return qml__error(QML_ERR_UNSUPPORTED,
						  "the Redis store runs cron schedules in UTC only");
	if ((next = next_due(schedule, now_ms())) < 0)
		return qml__error(QML_ERR_INVALID, "schedule \"%s\" never fires", schedule);
	def = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:I}",
					"name", name, "schedule", schedule, "method", method,
					"arguments", arguments ? arguments : "[]", "queue", queue,
					"priority", options ? options->priority : 0,
					"max_attempts", options && options->max_attempts > 0 ? options->max_attempts : 20,
					"backoff_base", 5000, "backoff_cap", 3600000,
					"next", (json_int_t) next);
	text = def ? json_dumps(def, JSON_COMPACT) : NULL;
	json_decref(def);
	if (text == NULL)
		return qml__nomem();
	/* the name is taken in the index first: of two adds of a name, one wins */
	if ((st = index_cmd(r, "HSETNX", name, queue, &reply)) == QML_OK)
	{
		if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
			st = qml__store_recurring_taken(name);
		freeReplyObject(reply);
		if (st == QML_OK && (st = set_definition(r, queue, name, text)) != QML_OK &&
			index_cmd(r, "HDEL", name, NULL, &reply) == QML_OK)
			freeReplyObject(reply);
	}
	free(text);
	return st;
}

qml_status
qml__rds_recurring_remove(qml_store *store, const char *name)
{
	rds_store  *r = (rds_store *) store;
	char	   *queue;
	redisReply *reply;
	qml_status	st;

	if ((st = queue_of(r, name, &queue)) != QML_OK)
		return st;
	st = set_definition(r, queue, name, "");
	free(queue);
	if (st == QML_OK && (st = index_cmd(r, "HDEL", name, NULL, &reply)) == QML_OK)
		freeReplyObject(reply);
	return st;
}

/* the definition JSON of a recurring job in its queue's slot */
static qml_status
definition(rds_store *r, const char *queue, const char *name, json_t **def)
{
	char		key[128];
	const char *argv[3] = {"HGET", key, name};
	redisReply *reply;
	qml_status	st;
	int			slot = qml__rds_queue_slot(queue);

	qml__rds_base(r, slot, key, sizeof(key));
	strncat(key, "rec", sizeof(key) - strlen(key) - 1);
	if ((st = qml__rds_command(r, slot, 3, argv, NULL, &reply)) != QML_OK)
		return st;
	*def = reply->type == REDIS_REPLY_STRING ? json_loads(reply->str, 0, NULL) : NULL;
	freeReplyObject(reply);
	return QML_OK;
}

/* Fires `name` for due time `due` ('' = now, by hand); *id 0 when it fired already. */
static qml_status
fire(rds_store *r, const char *queue, const char *name, const char *due,
	 const char *next, int64_t *id)
{
	char		slot[8];
	const char *argv[5] = {name, slot, due, next, ""};
	redisReply *reply;
	qml_status	st;
	int			s = qml__rds_queue_slot(queue);

	snprintf(slot, sizeof(slot), "%d", s);
	if ((st = qml__rds_evals(r, RDS_RECUR_FIRE, s, 5, argv, &reply)) != QML_OK)
		return st;
	*id = 0;
	if (reply->type == REDIS_REPLY_STRING)
		*id = strtoll(reply->str, NULL, 10);
	else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == -1)
		st = qml__error(QML_ERR_NOT_FOUND, "recurring job \"%s\" does not exist", name);
	freeReplyObject(reply);
	return st;
}

qml_status
qml__rds_recurring_run(qml_store *store, const char *name, int64_t *id)
{
	rds_store  *r = (rds_store *) store;
	char	   *queue;
	int64_t		got = 0;
	qml_status	st;

	if ((st = queue_of(r, name, &queue)) != QML_OK)
		return st;
	st = fire(r, queue, name, "", "", &got);
	free(queue);
	if (st == QML_OK && id)
		*id = got;
	return st;
}

/* every definition: name -> queue pairs of P:recurring */
static qml_status
all_names(rds_store *r, redisReply **reply)
{
	char		key[96];
	const char *argv[2] = {"HGETALL", key};

	index_key(r, key, sizeof(key));
	return qml__rds_command(r, qml__rds_key_slot(key, strlen(key)), 2, argv, NULL, reply);
}

qml_status
qml__rds_recurring_fire_due(rds_store *r, int64_t *fired)
{
	redisReply *names;
	qml_status	st;
	int64_t		now = now_ms();

	*fired = 0;
	if ((st = all_names(r, &names)) != QML_OK)
		return st;
	for (size_t i = 0; i + 1 < names->elements && st == QML_OK; i += 2)
	{
		const char *name = names->element[i]->str;
		const char *queue = names->element[i + 1]->str;
		json_t	   *def = NULL;
		int64_t		due;
		int64_t		next;
		int64_t		id;
		char		duetext[24];
		char		nexttext[24];

		if ((st = definition(r, queue, name, &def)) != QML_OK || def == NULL)
			continue;
		due = (int64_t) json_number_value(json_object_get(def, "next"));
		/* a missed run fires once, then the next one after now */
		next = due <= now ? next_due(json_string_value(json_object_get(def, "schedule")),
									 now) : -1;
		json_decref(def);
		if (due > now || next < 0)
			continue;
		snprintf(duetext, sizeof(duetext), "%lld", (long long) due);
		snprintf(nexttext, sizeof(nexttext), "%lld", (long long) next);
		if ((st = fire(r, queue, name, duetext, nexttext, &id)) == QML_OK && id > 0)
			(*fired)++;
	}
	freeReplyObject(names);
	return st;
}

qml_status
qml__rds_recurring_list(qml_store *store, char **json)
{
	rds_store  *r = (rds_store *) store;
	redisReply *names;
	json_t	   *out = json_array();
	qml_status	st;

	if (out == NULL)
		return qml__nomem();
	if ((st = all_names(r, &names)) != QML_OK)
	{
		json_decref(out);
		return st;
	}
	for (size_t i = 0; i + 1 < names->elements && st == QML_OK; i += 2)
	{
		json_t	   *def = NULL;
		char		at[40];

		if ((st = definition(r, names->element[i + 1]->str, names->element[i]->str,
							 &def)) != QML_OK || def == NULL)
			continue;
		qml_time_iso8601((int64_t) json_number_value(json_object_get(def, "next")) * 1000,
						 at, sizeof(at));
		json_object_set_new(def, "next_run_at", json_string(at));
		/* kept as text in Redis, listed as the JSON value it is */
		{
			json_t	   *args = json_loads(json_string_value(json_object_get(def, "arguments")),
										  JSON_DECODE_ANY, NULL);

			if (args)
				json_object_set_new(def, "arguments", args);
		}
		json_object_del(def, "next");
		json_object_del(def, "backoff_base");
		json_object_del(def, "backoff_cap");
		json_array_append_new(out, def);
	}
	freeReplyObject(names);
	*json = st == QML_OK ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (st == QML_OK && *json == NULL)
		return qml__nomem();
	return st;
}
