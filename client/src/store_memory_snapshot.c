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
#include <fcntl.h>
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
	int			fd = -1;
	bool		ok;

	if (tmp == NULL)
		return qml__nomem();
	snprintf(tmp, len, "%s.tmp", m->path);

	/*
	 * A new file only we can read (jobs' arguments may be secrets): a PATH
	 * in a shared directory such as /var/tmp could otherwise have PATH.tmp
	 * made a symbolic link to a file of ours, which we would overwrite. A
	 * PATH.tmp left by a crash is ours (we hold PATH.lock) and goes.
	 */
	if ((unlink(tmp) != 0 && errno != ENOENT) ||
		(fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0 ||
		(f = fdopen(fd, "w")) == NULL)
	{
		qml__error(QML_ERR_SYSTEM, "cannot write the snapshot \"%s\": %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
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

/*
 * The job mem_insert just filed (enqueued, as the time given is 0), taken
 * out again: out of its queue's ready index, its state's count and the
 * live jobs, for the caller to set as the file says.
 */
static mem_job *
take_back_last(mem_store *m)
{
	mem_job    *j = m->by_id[m->nby_id - 1];

	mem_index_remove(&j->queue->ready, j);
	j->queue->counts[j->state]--;
	m->live--;
	return j;
}

/* Ids are kept: pads the index with freed slots up to the job of this id. */
static qml_status
pad_ids(mem_store *m, int64_t id)
{
	int64_t		got;
	qml_status	st;

	while (m->by_id_base + (int64_t) m->nby_id < id)
	{
		mem_job    *j;

		if ((st = mem_insert(m, "-", "[]", NULL, 0, &got)) != QML_OK)
			return st;
		j = take_back_last(m);
		mem_job_free(j);
		m->by_id[m->nby_id - 1] = NULL;
	}
	return QML_OK;
}

/*
 * Inserts the job of line o in queue q, bare: no state, no history. The job
 * of an earlier line holding the same unique key lets go of it for the
 * insert (which would otherwise answer with that job) and gets it back;
 * file_job gives the key to this job if it is live.
 */
static qml_status
insert_bare(mem_store *m, json_t *o, mem_queue *q, const qml_enqueue_options *opt,
			mem_job **out)
{
	mem_job    *holder = opt->unique_key ? mem_map_get(&q->unique, opt->unique_key) : NULL;
	mem_job    *j;
	int64_t		got;
	qml_status	st;

	if (holder)
		mem_map_del(&q->unique, opt->unique_key);
	if ((st = mem_insert(m, json_string_value(json_object_get(o, "method")),
						 json_string_value(json_object_get(o, "arguments")), opt, 0, &got)) != QML_OK)
		return st;
	j = take_back_last(m);
	if (j->unique_key)
		mem_map_del(&j->queue->unique, j->unique_key);
	if (holder)
		mem_map_put(&q->unique, holder->unique_key, holder);
	for (uint32_t i = 0; i < j->nevents; i++)
		free(j->events[i].error);
	j->nevents = 0;
	*out = j;
	return QML_OK;
}

/* State, attempts, times, lease, error, result and backoff from line o. */
static void
read_fields(mem_store *m, mem_job *j, json_t *o, json_t *t)
{
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
}

/*
 * Files j in its state: a finished job for pruning (in finish order as
 * before: close enough, by id), a live one in its index and unique key.
 */
static qml_status
file_job(mem_store *m, mem_job *j)
{
	j->queue->counts[j->state]++;
	if (j->state == QML_STATE_SUCCEEDED || j->state == QML_STATE_FAILED ||
		j->state == QML_STATE_DELETED)
		return mem_remember_finished(m, j->id) ? QML_OK : qml__nomem();
	m->live++;
	if (j->unique_key)
		mem_map_put(&j->queue->unique, j->unique_key, j);
	mem_job_place(m, j);
	return QML_OK;
}

/* The history of line o: [at, from, to, worker, error] each. */
static qml_status
load_events(mem_store *m, mem_job *j, json_t *ev)
{
	for (size_t i = 0; i < json_array_size(ev); i++)
	{
		json_t	   *e = json_array_get(ev, i);
		mem_event  *me = mem_event_append(j);

		if (me == NULL)
			return qml__nomem();
		me->at = json_integer_value(json_array_get(e, 0));
		me->from = (int8_t) json_integer_value(json_array_get(e, 1));
		me->to = (int8_t) json_integer_value(json_array_get(e, 2));
		me->worker = mem_intern(m, json_string_value(json_array_get(e, 3)));
		me->error = dup_json(json_array_get(e, 4));
	}
	return QML_OK;
}

static qml_status
load_job(mem_store *m, json_t *o)
{
	qml_enqueue_options opt = {0};
	json_t	   *t = json_object_get(o, "times"),
			   *ev = json_object_get(o, "events");
	mem_job    *j;
	mem_queue  *q;
	int64_t		id = json_integer_value(json_object_get(o, "id"));
	qml_status	st;

	opt.queue = json_string_value(json_object_get(o, "queue"));
	opt.unique_key = json_string_value(json_object_get(o, "unique_key"));
	opt.priority = (int) json_integer_value(json_object_get(o, "priority"));
	opt.max_attempts = (int) json_integer_value(json_object_get(o, "max_attempts"));
	if (opt.queue == NULL || !json_is_string(json_object_get(o, "method")) ||
		!json_is_array(t) || json_array_size(t) != 6 || !json_is_array(ev) || id < m->by_id_base)
		return qml__error(QML_ERR_INVALID, "a job line of the snapshot is malformed");
	if ((st = pad_ids(m, id)) != QML_OK)
		return st;
	/* inserted as enqueued, then set to what the file says */
	if ((q = mem_queue_get(m, opt.queue, true)) == NULL)
		return qml__nomem();
	if ((st = insert_bare(m, o, q, &opt, &j)) != QML_OK)
		return st;
	read_fields(m, j, o, t);
	if ((st = file_job(m, j)) != QML_OK)
		return st;
	return load_events(m, j, ev);
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
