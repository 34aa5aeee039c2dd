/*
 * store_memory_read.c
 *	  What is read from the memory store: one job, job lists (newest first,
 *	  keyset paging on id), a job's history, counts by queue, the
 *	  dashboard's overview, throughput and workers, health and the
 *	  (versionless) schema. Copies are made under the lock and handed out.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_memory.h"

static char *
dup_or_null(const char *s, bool *oom)
{
	char	   *d;

	if (s == NULL)
		return NULL;
	if ((d = qml__strdup(s)) == NULL)
		*oom = true;
	return d;
}

static qml_job *
copy_job(const mem_job *j)
{
	qml_job    *c = calloc(1, sizeof(*c));
	bool		oom = false;

	if (c == NULL)
		return NULL;
	c->id = j->id;
	c->queue = dup_or_null(j->queue->name, &oom);
	c->method = dup_or_null(j->method, &oom);
	c->arguments = dup_or_null(j->arguments, &oom);
	c->priority = j->priority;
	c->state = (qml_job_state) j->state;
	c->attempts = j->attempts;
	c->max_attempts = j->max_attempts;
	c->run_at = j->run_at;
	c->created_at = j->created_at;
	c->enqueued_at = j->enqueued_at;
	c->started_at = j->started_at;
	c->finished_at = j->finished_at;
	c->locked_by = dup_or_null(j->locked_by, &oom);
	c->locked_until = j->locked_until;
	c->last_error = dup_or_null(j->last_error, &oom);
	c->result = dup_or_null(j->result, &oom);
	c->unique_key = dup_or_null(j->unique_key, &oom);
	if (oom)
	{
		qml_job_free(c);
		return NULL;
	}
	return c;
}

qml_status
mem_job_get(qml_store *store, int64_t id, qml_job **job)
{
	mem_store  *m = MEM(store);
	mem_job    *j;
	qml_status	st = QML_OK;

	pthread_mutex_lock(&m->mu);
	if ((j = mem_job_by_id(m, id)) == NULL)
		st = qml__error(QML_ERR_NOT_FOUND, "job %" PRId64 " does not exist", id);
	else if ((*job = copy_job(j)) == NULL)
		st = qml__nomem();
	pthread_mutex_unlock(&m->mu);
	return st;
}

static bool
matches(const mem_job *j, const qml_job_filter *f)
{
	return (f->state == -1 || j->state == f->state) &&
		(f->queue == NULL || strcmp(j->queue->name, f->queue) == 0) &&
		(f->method == NULL || strcmp(j->method, f->method) == 0);
}

qml_status
mem_job_list(qml_store *store, const qml_job_filter *f, qml_job_list **out)
{
	mem_store  *m = MEM(store);
	qml_job_list *list = calloc(1, sizeof(*list));
	qml_status	st = QML_OK;

	if (list == NULL || (list->jobs = calloc((size_t) f->limit, sizeof(qml_job *))) == NULL)
	{
		free(list);
		return qml__nomem();
	}
	pthread_mutex_lock(&m->mu);
	for (size_t i = m->nby_id; i-- > 0 && list->count < (size_t) f->limit;)
	{
		mem_job    *j = m->by_id[i];

		if (j == NULL || (f->before_id > 0 && j->id >= f->before_id) || !matches(j, f))
			continue;
		if ((list->jobs[list->count] = copy_job(j)) == NULL)
		{
			st = qml__nomem();
			break;
		}
		list->count++;
	}
	pthread_mutex_unlock(&m->mu);
	if (st != QML_OK)
	{
		qml_job_list_free(list);
		return st;
	}
	*out = list;
	return QML_OK;
}

qml_status
mem_job_events(qml_store *store, int64_t id, qml_job_event **events,
			   size_t *count)
{
	mem_store  *m = MEM(store);
	mem_job    *j;
	qml_job_event *ev = NULL;
	bool		oom = false;
	qml_status	st = QML_OK;

	pthread_mutex_lock(&m->mu);
	if ((j = mem_job_by_id(m, id)) == NULL)
		st = qml__error(QML_ERR_NOT_FOUND, "job %" PRId64 " does not exist", id);
	else if ((ev = calloc(j->nevents ? j->nevents : 1, sizeof(*ev))) == NULL)
		st = qml__nomem();
	else
	{
		for (uint32_t i = 0; i < j->nevents; i++)
		{
			ev[i].at = j->events[i].at;
			ev[i].from_state = j->events[i].from;
			ev[i].to_state = (qml_job_state) j->events[i].to;
			ev[i].worker = dup_or_null(j->events[i].worker, &oom);
			ev[i].error = dup_or_null(j->events[i].error, &oom);
		}
		*count = j->nevents;
	}
	pthread_mutex_unlock(&m->mu);
	if (oom)
	{
		qml_job_events_free(ev, *count);
		*count = 0;
		return qml__nomem();
	}
	if (st == QML_OK)
		*events = ev;
	return st;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const qml_queue_stats *) a)->queue, ((const qml_queue_stats *) b)->queue);
}

qml_status
mem_stats(qml_store *store, const char *queue, qml_queue_stats **stats,
		  size_t *count)
{
	mem_store  *m = MEM(store);
	qml_queue_stats *s;
	size_t		n = 0;
	bool		oom = false;

	pthread_mutex_lock(&m->mu);
	if ((s = calloc(m->nqueues ? m->nqueues : 1, sizeof(*s))) == NULL)
	{
		pthread_mutex_unlock(&m->mu);
		return qml__nomem();
	}
	for (size_t i = 0; i < m->nqueues; i++)
	{
		mem_queue  *q = m->queues[i];

		if (queue && strcmp(queue, q->name) != 0)
			continue;
		s[n].queue = dup_or_null(q->name, &oom);
		s[n].paused = q->paused;
		memcpy(s[n].counts, q->counts, sizeof(s[n].counts));
		n++;
	}
	pthread_mutex_unlock(&m->mu);
	if (oom)
	{
		qml_stats_free(s, n);
		return qml__nomem();
	}
	qsort(s, n, sizeof(*s), by_name);
	*stats = s;
	*count = n;
	return QML_OK;
}

static int
info_by_name(const void *a, const void *b)
{
	return strcmp(((const qml_queue_info *) a)->queue, ((const qml_queue_info *) b)->queue);
}

qml_status
mem_overview(qml_store *store, qml_store_session *via, qml_overview **out)
{
	mem_store  *m = MEM(store);
	qml_overview *o = calloc(1, sizeof(*o));
	int64_t		now = qml_now(),
				minute = now / 60000000;
	double		window = (double) (now - (minute - 1) * 60000000) / 1e6;
	mem_job    *due;
	bool		oom = false;

	(void) via;
	if (o == NULL)
		return qml__nomem();
	pthread_mutex_lock(&m->mu);
	if ((o->queues = calloc(m->nqueues ? m->nqueues : 1, sizeof(qml_queue_info))) == NULL)
		oom = true;
	for (size_t i = 0; !oom && i < m->nqueues; i++)
	{
		mem_queue  *q = m->queues[i];
		qml_queue_info *qi = &o->queues[o->count++];
		mem_job    *head = mem_index_top(&q->ready);
		int64_t		done = q->minute == minute ? q->done_cur + q->done_prev :
			q->minute == minute - 1 ? q->done_cur : 0;

		qi->queue = dup_or_null(q->name, &oom);
		qi->paused = q->paused;
		memcpy(qi->counts, q->counts, sizeof(qi->counts));
		qi->oldest_waiting_s = head ? (double) (now - head->run_at) / 1e6 : -1;
		if (head && qi->oldest_waiting_s < 0)
			qi->oldest_waiting_s = 0;
		qi->jobs_per_second = (double) done / window;
	}
	due = mem_index_top(&m->timers);
	o->scheduler_lag_s = due && due->run_at <= now ? (double) (now - due->run_at) / 1e6 : -1;
	o->at = now;
	pthread_mutex_unlock(&m->mu);
	if (oom)
	{
		qml_overview_free(o);
		return qml__nomem();
	}
	qsort(o->queues, o->count, sizeof(qml_queue_info), info_by_name);
	*out = o;
	return QML_OK;
}

qml_status
mem_throughput(qml_store *store, qml_store_session *via, int minutes,
			   qml_throughput_bucket **out, size_t *count)
{
	mem_store  *m = MEM(store);
	qml_throughput_bucket *b = calloc((size_t) minutes, sizeof(*b));
	int64_t		now_minute = qml_now() / 60000000;

	(void) via;
	if (b == NULL)
		return qml__nomem();
	pthread_mutex_lock(&m->mu);
	for (int i = 0; i < minutes; i++)
	{
		int64_t		minute = now_minute - (minutes - 1) + i;
		size_t		k = (size_t) (minute % MEM_MINUTES);

		b[i].at = minute * 60000000;
		if (m->tp_minute[k] == minute)
		{
			b[i].succeeded = m->tp_succeeded[k];
			b[i].failed = m->tp_failed[k];
		}
	}
	pthread_mutex_unlock(&m->mu);
	*out = b;
	*count = (size_t) minutes;
	return QML_OK;
}

typedef struct held_count
{
	const char *name;
	int64_t		jobs;
	int64_t		last;
} held_count;

static void
count_held(mem_job *j, void *arg)
{
	held_count *h = arg;

	if (j->locked_by == h->name)
	{
		h->jobs++;
		if (h->last == QML_TIME_NULL || j->started_at > h->last)
			h->last = j->started_at;
	}
}

/* Connected fetch sessions, and every holder of a processing job's lease. */
qml_status
mem_workers(qml_store *store, qml_worker_info **out, size_t *count)
{
	mem_store  *m = MEM(store);
	qml_worker_info *w;
	size_t		n = 0;
	bool		oom = false;
	int64_t		now = qml_now();
	held_count	held;

	pthread_mutex_lock(&m->mu);
	if ((w = calloc(m->nworkers ? m->nworkers : 1, sizeof(*w))) == NULL)
	{
		pthread_mutex_unlock(&m->mu);
		return qml__nomem();
	}
	for (size_t i = 0; i < m->nworkers; i++)
	{
		const char *name = m->workers[i];
		bool		connected = false;
		int64_t		jobs = 0,
					last = QML_TIME_NULL;

		for (mem_session *s = m->sessions; s; s = s->next)
			connected |= s->base.kind == QML_SESSION_FETCH && s->worker == name;
		held.name = name;
		held.jobs = 0;
		held.last = QML_TIME_NULL;
		mem_index_each(&m->leases, count_held, &held);
		jobs = held.jobs;
		last = held.last;
		if (!connected && jobs == 0)
			continue;
		w[n].worker = dup_or_null(name, &oom);
		w[n].connected = connected;
		w[n].jobs = jobs;
		w[n].last_seen = connected ? now : last;
		n++;
	}
	pthread_mutex_unlock(&m->mu);
	if (oom)
	{
		qml_workers_free(w, n);
		return qml__nomem();
	}
	*out = w;
	*count = n;
	return QML_OK;
}

/* ---- health and schema: nothing to install ---- */

qml_status
mem_schema_version(qml_store *store, char **installed, char **available)
{
	(void) store;
	*installed = qml__strdup("memory");
	if (available)
		*available = qml__strdup("memory");
	if (*installed == NULL || (available && *available == NULL))
	{
		free(*installed);
		*installed = NULL;
		if (available)
		{
			free(*available);
			*available = NULL;
		}
		return qml__nomem();
	}
	return QML_OK;
}

qml_status
mem_migrate(qml_store *store, bool only_if_needed, bool *migrated)
{
	(void) store;
	(void) only_if_needed;
	if (migrated)
		*migrated = false;
	return QML_OK;
}

qml_status
mem_health(qml_store *store, qml_health **out)
{
	mem_store  *m = MEM(store);
	qml_health *h = calloc(1, sizeof(*h));
	char		version[64];

	if (h == NULL)
		return qml__nomem();
	snprintf(version, sizeof(version), "memory store (libqml %s)", QML_VERSION);
	h->server_version = qml__strdup(version);
	h->database = qml__strdup(m->path ? m->path : "memory:");
	h->user = qml__strdup("");
	h->installed_version = qml__strdup("memory");
	h->available_version = qml__strdup("memory");
	pthread_mutex_lock(&m->mu);
	h->preloaded = h->preloaded_known = true;
	h->scheduler_processes = m->thread_started ? 1 : 0;
	for (mem_session *s = m->sessions; s; s = s->next)
		h->worker_servers += s->base.kind == QML_SESSION_FETCH;
	pthread_mutex_unlock(&m->mu);
	if (!h->server_version || !h->database || !h->user || !h->installed_version ||
		!h->available_version)
	{
		qml_health_free(h);
		return qml__nomem();
	}
	*out = h;
	return QML_OK;
}
