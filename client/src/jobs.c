/*
 * jobs.c
 *	  The job API: checks the caller's arguments (JSON, NULLs, ranges) and
 *	  hands the call to the client's store (store.h), so a caller gets a
 *	  message about its own input whatever the backend, and every backend
 *	  receives valid input.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store.h"

static const char *const state_names[QML_STATE_COUNT] = {
	"scheduled", "enqueued", "processing", "succeeded", "failed",
	"awaiting_retry", "deleted"
};

const char *
qml_state_name(qml_job_state state)
{
	if ((int) state < 0 || state >= QML_STATE_COUNT)
		return NULL;
	return state_names[state];
}

bool
qml_state_parse(const char *name, qml_job_state *state)
{
	/* stats, the demo and the docs call awaiting_retry "retrying" */
	if (name && strcmp(name, "retrying") == 0)
		name = "awaiting_retry";
	for (int i = 0; name && i < QML_STATE_COUNT; i++)
	{
		if (strcmp(name, state_names[i]) == 0)
		{
			if (state)
				*state = (qml_job_state) i;
			return true;
		}
	}
	return false;
}

/* ---- small helpers ---- */

qml_status
qml__need_store(qml_client *client, qml_store **store)
{
	*store = client ? client->store : NULL;
	if (client == NULL)
		return qml__error(QML_ERR_INVALID, "client must not be NULL");
	return QML_OK;
}

static qml_status
check_options(const qml_enqueue_options *o)
{
	if (o == NULL)
		return QML_OK;
	if (o->max_attempts < 0)
		return qml__error(QML_ERR_INVALID, "max_attempts must be at least 1, not %d",
						  o->max_attempts);
	if (o->delay_ms < 0)
		return qml__error(QML_ERR_INVALID, "delay must not be negative");
	if (o->delay_ms > 0 && o->run_at != 0)
		return qml__error(QML_ERR_INVALID, "give run_at or delay_ms, not both");
	if (o->backoff_base_ms < 0 || o->backoff_cap_ms < 0)
		return qml__error(QML_ERR_INVALID, "backoff must not be negative");
	return QML_OK;
}

static qml_status
check_method(const char *method)
{
	if (method == NULL || method[0] == '\0')
		return qml__error(QML_ERR_INVALID, "method must be a non-empty string");
	return QML_OK;
}

static qml_status
check_name(const char *what, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return qml__error(QML_ERR_INVALID, "%s must be a non-empty string", what);
	return QML_OK;
}

/* ---- freeing what the API hands out ---- */

void
qml_job_free(qml_job *job)
{
	if (job == NULL)
		return;
	free(job->queue);
	free(job->method);
	free(job->arguments);
	free(job->locked_by);
	free(job->last_error);
	free(job->result);
	free(job->unique_key);
	free(job);
}

void
qml_job_list_free(qml_job_list *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->count; i++)
		qml_job_free(list->jobs[i]);
	free(list->jobs);
	free(list);
}

void
qml_job_events_free(qml_job_event *events, size_t count)
{
	for (size_t i = 0; events && i < count; i++)
	{
		free(events[i].worker);
		free(events[i].error);
	}
	free(events);
}

void
qml_stats_free(qml_queue_stats *stats, size_t count)
{
	for (size_t i = 0; stats && i < count; i++)
		free(stats[i].queue);
	free(stats);
}

/* ---- enqueue ---- */

qml_status
qml_enqueue(qml_client *client, const char *method, const char *arguments,
			const qml_enqueue_options *o, int64_t *id)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK ||
		(st = check_method(method)) != QML_OK ||
		(st = qml__check_arguments("arguments", arguments)) != QML_OK ||
		(st = check_options(o)) != QML_OK)
		return st;
	return s->ops->enqueue(s, method, arguments, o, id);
}

qml_status
qml_schedule_at(qml_client *client, const char *method, const char *arguments,
				int64_t run_at, const qml_enqueue_options *options, int64_t *id)
{
	qml_enqueue_options o = {0};

	if (run_at == 0 || run_at == QML_TIME_NULL)
		return qml__error(QML_ERR_INVALID, "run_at must be a time");
	if (options)
		o = *options;
	o.run_at = run_at;
	o.delay_ms = 0;
	return qml_enqueue(client, method, arguments, &o, id);
}

qml_status
qml_schedule_in(qml_client *client, const char *method, const char *arguments,
				int64_t delay_ms, const qml_enqueue_options *options, int64_t *id)
{
	qml_enqueue_options o = {0};

	if (delay_ms < 0)
		return qml__error(QML_ERR_INVALID, "delay must not be negative");
	if (options)
		o = *options;
	o.run_at = 0;
	o.delay_ms = delay_ms;
	return qml_enqueue(client, method, arguments, &o, id);
}

qml_status
qml_enqueue_batch(qml_client *client, const qml_job_spec *jobs, size_t count,
				  int64_t *ids)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (count == 0)
		return QML_OK;
	if (jobs == NULL)
		return qml__error(QML_ERR_INVALID, "jobs must not be NULL");
	for (size_t i = 0; i < count; i++)
	{
		const qml_job_spec *j = &jobs[i];
		char		why[256];

		if (check_method(j->method) != QML_OK || check_options(&j->options) != QML_OK)
		{
			char		msg[1024];

			snprintf(msg, sizeof(msg), "%s", qml_errmsg());
			return qml__error(QML_ERR_INVALID, "job %zu of the batch: %s", i + 1, msg);
		}
		if (j->arguments && !qml__json_check(j->arguments, why, sizeof(why)))
			return qml__error(QML_ERR_INVALID,
							  "job %zu of the batch: arguments are not valid JSON: %s",
							  i + 1, why);
	}
	return s->ops->enqueue_batch(s, jobs, count, ids);
}

/* ---- reading jobs ---- */

qml_status
qml_job_get(qml_client *client, int64_t id, qml_job **job)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (job == NULL)
		return qml__error(QML_ERR_INVALID, "job must not be NULL");
	*job = NULL;
	return s->ops->job_get(s, id, job);
}

qml_status
qml_job_list_get(qml_client *client, const qml_job_filter *filter,
				 qml_job_list **out)
{
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (out == NULL)
		return qml__error(QML_ERR_INVALID, "list must not be NULL");
	*out = NULL;
	if (filter)
		f = *filter;
	if (f.state != -1 && qml_state_name((qml_job_state) f.state) == NULL)
		return qml__error(QML_ERR_INVALID, "state %d is not a job state", f.state);
	if (f.limit < 0 || f.limit > 10000)
		return qml__error(QML_ERR_INVALID, "limit must be between 1 and 10000, not %d",
						  f.limit);
	if (f.limit == 0)
		f.limit = 100;
	return s->ops->job_list(s, &f, out);
}

qml_status
qml_job_events(qml_client *client, int64_t id, qml_job_event **events,
			   size_t *count)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (events == NULL || count == NULL)
		return qml__error(QML_ERR_INVALID, "events and count must not be NULL");
	*events = NULL;
	*count = 0;
	return s->ops->job_events(s, id, events, count);
}

/* ---- changing jobs ---- */

static qml_status
job_call(qml_client *client, int64_t id, bool requeue, bool *done)
{
	qml_store  *s;
	qml_status	st;
	bool		ignored;

	if (done)
		*done = false;
	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	return (requeue ? s->ops->job_requeue : s->ops->job_delete) (s, id, done ? done : &ignored);
}

qml_status
qml_job_delete(qml_client *client, int64_t id, bool *done)
{
	return job_call(client, id, false, done);
}

qml_status
qml_job_requeue(qml_client *client, int64_t id, bool *done)
{
	return job_call(client, id, true, done);
}

/* ---- statistics and queues ---- */

qml_status
qml_stats(qml_client *client, const char *queue, qml_queue_stats **stats,
		  size_t *count)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (stats == NULL || count == NULL)
		return qml__error(QML_ERR_INVALID, "stats and count must not be NULL");
	*stats = NULL;
	*count = 0;
	return s->ops->stats(s, queue, stats, count);
}

static qml_status
pause_call(qml_client *client, const char *queue, bool pause, bool *changed)
{
	qml_store  *s;
	qml_status	st;
	bool		ignored;

	if (changed)
		*changed = false;
	if ((st = qml__need_store(client, &s)) != QML_OK ||
		(st = check_name("queue", queue)) != QML_OK)
		return st;
	return s->ops->queue_pause(s, queue, pause, changed ? changed : &ignored);
}

qml_status
qml_queue_pause(qml_client *client, const char *queue, bool *changed)
{
	return pause_call(client, queue, true, changed);
}

qml_status
qml_queue_resume(qml_client *client, const char *queue, bool *changed)
{
	return pause_call(client, queue, false, changed);
}

/* ---- recurring jobs ---- */

qml_status
qml_recurring_add(qml_client *client, const char *name, const char *schedule,
				  const char *method, const char *arguments, const char *queue)
{
	qml_recurring_options o = {.queue = queue};

	return qml_recurring_add_opts(client, name, schedule, method, arguments, &o);
}

qml_status
qml_recurring_add_opts(qml_client *client, const char *name, const char *schedule,
					   const char *method, const char *arguments,
					   const qml_recurring_options *options)
{
	qml_recurring_options o = options ? *options : (qml_recurring_options) {0};
	qml_store  *s;
	qml_status	st;

	if (o.max_attempts < 0)
		return qml__error(QML_ERR_INVALID, "max_attempts must be at least 1 (0 for the default)");
	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (name == NULL || !*name || schedule == NULL || !*schedule)
		return qml__error(QML_ERR_INVALID, "name and schedule must be non-empty strings");
	if ((st = check_method(method)) != QML_OK ||
		(st = qml__check_arguments("arguments", arguments)) != QML_OK)
		return st;
	return s->ops->recurring_add(s, name, schedule, method, arguments, &o);
}

qml_status
qml_recurring_remove(qml_client *client, const char *name)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK ||
		(st = check_name("name", name)) != QML_OK)
		return st;
	return s->ops->recurring_remove(s, name);
}

qml_status
qml_recurring_list(qml_client *client, char **json)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	if (json == NULL)
		return qml__error(QML_ERR_INVALID, "json must not be NULL");
	*json = NULL;
	return s->ops->recurring_list(s, json);
}

qml_status
qml_recurring_run(qml_client *client, const char *name, int64_t *id)
{
	qml_store  *s;
	qml_status	st;
	int64_t		ignored;

	if ((st = qml__need_store(client, &s)) != QML_OK ||
		(st = check_name("name", name)) != QML_OK)
		return st;
	return s->ops->recurring_run(s, name, id ? id : &ignored);
}

/* ---- maintenance ---- */

qml_status
qml_maintain(qml_client *client, char **report)
{
	qml_store  *s;
	qml_status	st;

	if (report)
		*report = NULL;
	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	return s->ops->maintain(s, report);
}
