/*
 * store_memory_snapshot.c
 *	  The file of "memory:PATH": written on a clean close, read on open.
 *
 * One JSON object a line: a header, then each queue (paused or not), each
 * job with its history, each recurring job. It is written to PATH.tmp,
 * flushed to disk and renamed over PATH, so a crash during the write leaves
 * the previous snapshot whole. Leases are wall-clock times and are kept: a
 * job that was processing when the process stopped is rescued by the next
 * process once its lease runs out, as a job of a dead worker is.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_memory.h"

#define SNAPSHOT_FORMAT 1

static json_t *
opt_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
job_json(const mem_job *j)
{
	json_t	   *ev = json_array();
	json_t	   *o;

	for (uint32_t i = 0; i < j->nevents; i++)
		json_array_append_new(ev, json_pack("[I, i, i, o, o]", (json_int_t) j->events[i].at,
											j->events[i].from, j->events[i].to,
											opt_str(j->events[i].worker),
											opt_str(j->events[i].error)));
	o = json_pack("{s:I, s:s, s:s, s:s, s:o, s:i, s:i, s:i, s:i}",
				  "id", (json_int_t) j->id, "queue", j->queue->name, "method", j->method,
				  "arguments", j->arguments, "unique_key", opt_str(j->unique_key),
				  "priority", j->priority, "state", j->state, "attempts", j->attempts,
				  "max_attempts", j->max_attempts);
	json_object_set_new(o, "times", json_pack("[I, I, I, I, I, I]",
											  (json_int_t) j->run_at, (json_int_t) j->created_at,
											  (json_int_t) j->enqueued_at, (json_int_t) j->started_at,
											  (json_int_t) j->finished_at, (json_int_t) j->locked_until));
	json_object_set_new(o, "locked_by", opt_str(j->locked_by));
	json_object_set_new(o, "last_error", opt_str(j->last_error));
	json_object_set_new(o, "result", opt_str(j->result));
	json_object_set_new(o, "backoff", json_pack("[I, I]", (json_int_t) j->backoff_base_ms,
												(json_int_t) j->backoff_cap_ms));
	json_object_set_new(o, "events", ev);
	return json_pack("{s:o}", "job", o);
}

static bool
write_line(FILE *f, json_t *o)
{
	int			rc = o ? json_dumpf(o, f, JSON_COMPACT) : -1;

	json_decref(o);
	return rc == 0 && fputc('\n', f) != EOF;
}

qml_status
mem_snapshot_save(mem_store *m)
{
	size_t		len = strlen(m->path) + 5;
	char	   *tmp = malloc(len);
	FILE	   *f;
	bool		ok;

	if (tmp == NULL)
		return qml__nomem();
	snprintf(tmp, len, "%s.tmp", m->path);
	if ((f = fopen(tmp, "w")) == NULL)
	{
		qml__error(QML_ERR_SYSTEM, "cannot write the snapshot \"%s\": %s", tmp, strerror(errno));
		free(tmp);
		return QML_ERR_SYSTEM;
	}
	ok = write_line(f, json_pack("{s:i, s:I}", "qml_memory_snapshot", SNAPSHOT_FORMAT,
								 "next_id", (json_int_t) (m->by_id_base + (int64_t) m->nby_id)));
	for (size_t i = 0; ok && i < m->nqueues; i++)
		ok = write_line(f, json_pack("{s:{s:s, s:b}}", "queue", "name", m->queues[i]->name,
									 "paused", m->queues[i]->paused));
	for (size_t i = 0; ok && i < m->nby_id; i++)
		if (m->by_id[i])
			ok = write_line(f, job_json(m->by_id[i]));
	for (mem_recurring *r = m->recurring; ok && r; r = r->next)
		ok = write_line(f, json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I}}", "recurring",
									 "name", r->name, "schedule", r->schedule, "method", r->method,
									 "arguments", r->arguments, "queue", r->queue,
									 "priority", r->priority, "max_attempts", r->max_attempts,
									 "next_run_at", (json_int_t) r->next_run_at,
									 "last_run_at", (json_int_t) r->last_run_at));
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, m->path) != 0)
	{
		qml__error(QML_ERR_SYSTEM, "cannot write the snapshot \"%s\": %s", m->path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return QML_ERR_SYSTEM;
	}
	free(tmp);
	return QML_OK;
}

static char *
dup_json(json_t *v)
{
	return json_is_string(v) ? qml__strdup(json_string_value(v)) : NULL;
}

static qml_status
load_job(mem_store *m, json_t *o)
{
	qml_enqueue_options opt = {0};
	json_t	   *t = json_object_get(o, "times"),
			   *ev = json_object_get(o, "events");
	mem_job    *j,
			   *holder;
	mem_queue  *q;
	int64_t		id = json_integer_value(json_object_get(o, "id")),
				got;
	qml_status	st;

	opt.queue = json_string_value(json_object_get(o, "queue"));
	opt.unique_key = json_string_value(json_object_get(o, "unique_key"));
	opt.priority = (int) json_integer_value(json_object_get(o, "priority"));
	opt.max_attempts = (int) json_integer_value(json_object_get(o, "max_attempts"));
	if (opt.queue == NULL || !json_is_string(json_object_get(o, "method")) ||
		!json_is_array(t) || json_array_size(t) != 6 || !json_is_array(ev) || id < m->by_id_base)
		return qml__error(QML_ERR_INVALID, "a job line of the snapshot is malformed");
	/* ids are kept: pad the index up to this one */
	while (m->by_id_base + (int64_t) m->nby_id < id)
	{
		if ((st = mem_insert(m, "-", "[]", NULL, 0, &got)) != QML_OK)
			return st;
		j = m->by_id[m->nby_id - 1];
		mem_index_remove(&j->queue->ready, j);
		j->queue->counts[j->state]--;
		m->live--;
		mem_job_free(j);
		m->by_id[m->nby_id - 1] = NULL;
	}
	/* inserted as enqueued, then set to what the file says */
	if ((q = mem_queue_get(m, opt.queue, true)) == NULL)
		return qml__nomem();
	holder = opt.unique_key ? mem_map_get(&q->unique, opt.unique_key) : NULL;
	if (holder)
		mem_map_del(&q->unique, opt.unique_key);
	if ((st = mem_insert(m, json_string_value(json_object_get(o, "method")),
						 json_string_value(json_object_get(o, "arguments")), &opt, 0, &got)) != QML_OK)
		return st;
	j = m->by_id[m->nby_id - 1];
	mem_index_remove(&j->queue->ready, j);
	if (j->unique_key)
		mem_map_del(&j->queue->unique, j->unique_key);
	if (holder)
		mem_map_put(&q->unique, holder->unique_key, holder);
	j->queue->counts[j->state]--;
	m->live--;
	for (uint32_t i = 0; i < j->nevents; i++)
		free(j->events[i].error);
	j->nevents = 0;

	j->state = (int8_t) json_integer_value(json_object_get(o, "state"));
	if (j->state < 0 || j->state >= QML_STATE_COUNT)
		j->state = QML_STATE_ENQUEUED;
	j->attempts = (int) json_integer_value(json_object_get(o, "attempts"));
	j->run_at = json_integer_value(json_array_get(t, 0));
	j->created_at = json_integer_value(json_array_get(t, 1));
	j->enqueued_at = json_integer_value(json_array_get(t, 2));
	j->started_at = json_integer_value(json_array_get(t, 3));
	j->finished_at = json_integer_value(json_array_get(t, 4));
	j->locked_until = json_integer_value(json_array_get(t, 5));
	j->locked_by = mem_intern(m, json_string_value(json_object_get(o, "locked_by")));
	j->last_error = dup_json(json_object_get(o, "last_error"));
	j->result = dup_json(json_object_get(o, "result"));
	j->backoff_base_ms = json_integer_value(json_array_get(json_object_get(o, "backoff"), 0));
	j->backoff_cap_ms = json_integer_value(json_array_get(json_object_get(o, "backoff"), 1));
	j->queue->counts[j->state]++;
	if (j->state == QML_STATE_SUCCEEDED || j->state == QML_STATE_FAILED ||
		j->state == QML_STATE_DELETED)
	{
		int64_t		fid = j->id;

		/* pruned in finish order as before: close enough, by id */
		if (m->fin_n == m->fin_cap)
		{
			size_t		cap = m->fin_cap ? m->fin_cap * 2 : 1024;
			int64_t    *ids = realloc(m->fin_ids, cap * sizeof(int64_t));

			if (ids == NULL)
				return qml__nomem();
			m->fin_ids = ids;
			m->fin_cap = cap;
		}
		m->fin_ids[m->fin_n++] = fid;
	}
	else
	{
		m->live++;
		if (j->unique_key)
			mem_map_put(&j->queue->unique, j->unique_key, j);
		mem_job_place(m, j);
	}
	for (size_t i = 0; i < json_array_size(ev); i++)
	{
		json_t	   *e = json_array_get(ev, i);
		mem_event  *me;

		if (j->nevents == j->cap_events)
		{
			mem_event  *more = malloc(j->cap_events * 2 * sizeof(mem_event));

			if (more == NULL)
				return qml__nomem();
			memcpy(more, j->events, j->nevents * sizeof(mem_event));
			if (j->events != j->inline_events)
				free(j->events);
			j->events = more;
			j->cap_events *= 2;
		}
		me = &j->events[j->nevents++];
		me->at = json_integer_value(json_array_get(e, 0));
		me->from = (int8_t) json_integer_value(json_array_get(e, 1));
		me->to = (int8_t) json_integer_value(json_array_get(e, 2));
		me->worker = mem_intern(m, json_string_value(json_array_get(e, 3)));
		me->error = dup_json(json_array_get(e, 4));
	}
	return QML_OK;
}

static qml_status
load_recurring(mem_store *m, json_t *o)
{
	qml_recurring_options opt = {0};
	const char *name = json_string_value(json_object_get(o, "name"));
	mem_recurring *r;
	qml_status	st;

	opt.queue = json_string_value(json_object_get(o, "queue"));
	opt.priority = (int) json_integer_value(json_object_get(o, "priority"));
	opt.max_attempts = (int) json_integer_value(json_object_get(o, "max_attempts"));
	if (name == NULL || opt.queue == NULL)
		return qml__error(QML_ERR_INVALID, "a recurring line of the snapshot is malformed");
	/* mem_recurring_add takes the lock: the store is not shared yet */
	if ((st = mem_recurring_add(&m->base, name, json_string_value(json_object_get(o, "schedule")),
								json_string_value(json_object_get(o, "method")),
								json_string_value(json_object_get(o, "arguments")), &opt)) != QML_OK)
		return st;
	for (r = m->recurring; r && strcmp(r->name, name) != 0; r = r->next)
		;
	if (r)
	{
		r->next_run_at = json_integer_value(json_object_get(o, "next_run_at"));
		r->last_run_at = json_integer_value(json_object_get(o, "last_run_at"));
	}
	return QML_OK;
}

qml_status
mem_snapshot_load(mem_store *m)
{
	FILE	   *f = fopen(m->path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	size_t		lineno = 0;
	qml_status	st = QML_OK;

	if (f == NULL)
	{
		if (errno == ENOENT)
			return QML_OK;		/* the first start: nothing to load */
		return qml__error(QML_ERR_SYSTEM, "cannot read the snapshot \"%s\": %s", m->path,
						  strerror(errno));
	}
	while (st == QML_OK && getline(&line, &cap, f) > 0)
	{
		json_error_t err;
		json_t	   *o = json_loads(line, 0, &err),
				   *v;

		lineno++;
		if (o == NULL)
			st = qml__error(QML_ERR_INVALID, "the snapshot \"%s\" is damaged at line %zu: %s",
							m->path, lineno, err.text);
		else if (lineno == 1 && json_integer_value(json_object_get(o, "qml_memory_snapshot")) != SNAPSHOT_FORMAT)
			st = qml__error(QML_ERR_INVALID, "\"%s\" is not a qml memory snapshot", m->path);
		else if ((v = json_object_get(o, "queue")) != NULL)
		{
			mem_queue  *q = mem_queue_get(m, json_string_value(json_object_get(v, "name")) ?
										  json_string_value(json_object_get(v, "name")) : "default", true);

			if (q == NULL)
				st = qml__nomem();
			else
				q->paused = json_is_true(json_object_get(v, "paused"));
		}
		else if ((v = json_object_get(o, "job")) != NULL)
			st = load_job(m, v);
		else if ((v = json_object_get(o, "recurring")) != NULL)
			st = load_recurring(m, v);
		json_decref(o);
	}
	free(line);
	fclose(f);
	return st;
}
