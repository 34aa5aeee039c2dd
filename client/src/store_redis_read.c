/*
 * store_redis_read.c
 *	  What the Redis store reads for the job API, the qml command and the
 *	  dashboard: one job, a list of jobs, a job's history, counts by queue
 *	  and state, throughput by minute, and the workers holding leases.
 *
 * Counts are the sizes of the per-state sets (one script per queue, so a
 * queue's counts are one consistent moment); a list walks each queue's
 * index of ids newest first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "store_redis.h"

#define LIST_SCAN_FACTOR 20		/* ids looked at per id listed, at most */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

qml_status
qml__rds_queues(rds_store *r, char ***names, size_t *count)
{
	char		key[96];
	const char *argv[2] = {"SMEMBERS", key};
	redisReply *reply;
	qml_status	st;
	char	  **out;

	snprintf(key, sizeof(key), "%s:queues", r->url.prefix);
	if ((st = qml__rds_command(r, qml__rds_key_slot(key, strlen(key)), 2, argv,
							   NULL, &reply)) != QML_OK)
		return st;
	out = calloc(reply->elements + 1, sizeof(char *));
	if (out == NULL)
	{
		freeReplyObject(reply);
		return qml__nomem();
	}
	for (size_t i = 0; i < reply->elements; i++)
		if ((out[i] = qml__strdup(reply->element[i]->str)) == NULL)
		{
			for (size_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			freeReplyObject(reply);
			return qml__nomem();
		}
	*count = reply->elements;
	freeReplyObject(reply);
	qsort(out, *count, sizeof(char *), cmp_names);
	*names = out;
	return QML_OK;
}

/* ---- one job ---- */

static int64_t
ms_field(const char *v)
{
	return v && v[0] ? strtoll(v, NULL, 10) * 1000 : QML_TIME_NULL;
}

static char *
str_field(const char *v, bool *oom)
{
	char	   *s;

	if (v == NULL || v[0] == '\0')
		return NULL;
	if ((s = qml__strdup(v)) == NULL)
		*oom = true;
	return s;
}

/* a job from HGETALL's field/value pairs; NULL (and *oom) on no memory */
static qml_job *
job_from_hash(int64_t id, const redisReply *h, bool *oom)
{
	qml_job    *j = calloc(1, sizeof(*j));

	if (j == NULL)
	{
		*oom = true;
		return NULL;
	}
	j->id = id;
	j->run_at = j->created_at = j->enqueued_at = j->started_at = QML_TIME_NULL;
	j->finished_at = j->locked_until = QML_TIME_NULL;
	for (size_t i = 0; i + 1 < h->elements; i += 2)
	{
		const char *f = h->element[i]->str;
		const char *v = h->element[i + 1]->str;

		if (strcmp(f, "q") == 0)
			j->queue = str_field(v, oom);
		else if (strcmp(f, "m") == 0)
			j->method = str_field(v, oom);
		else if (strcmp(f, "a") == 0)
			j->arguments = str_field(v, oom);
		else if (strcmp(f, "p") == 0)
			j->priority = atoi(v);
		else if (strcmp(f, "s") == 0)
			j->state = (qml_job_state) atoi(v);
		else if (strcmp(f, "n") == 0)
			j->attempts = atoi(v);
		else if (strcmp(f, "x") == 0)
			j->max_attempts = atoi(v);
		else if (strcmp(f, "r") == 0)
			j->run_at = ms_field(v);
		else if (strcmp(f, "c") == 0)
			j->created_at = ms_field(v);
		else if (strcmp(f, "e") == 0)
			j->enqueued_at = ms_field(v);
		else if (strcmp(f, "t") == 0)
			j->started_at = ms_field(v);
		else if (strcmp(f, "f") == 0)
			j->finished_at = ms_field(v);
		else if (strcmp(f, "w") == 0)
			j->locked_by = str_field(v, oom);
		else if (strcmp(f, "l") == 0)
			j->locked_until = ms_field(v);
		else if (strcmp(f, "err") == 0)
			j->last_error = str_field(v, oom);
		else if (strcmp(f, "res") == 0)
			j->result = str_field(v, oom);
		else if (strcmp(f, "u") == 0)
			j->unique_key = str_field(v, oom);
	}
	/* a job expiring as it is read: gone */
	if (*oom || j->queue == NULL || j->method == NULL || j->arguments == NULL)
	{
		qml_job_free(j);
		return NULL;
	}
	return j;
}

static void
job_key(rds_store *r, int64_t id, char *key, size_t size)
{
	size_t		n;

	qml__rds_base(r, RDS_ID_SLOT(id), key, size);
	n = strlen(key);
	snprintf(key + n, size - n, "j:%016lld", (long long) id);
}

/* *job NULL when there is no such job (or it expired) */
static qml_status
read_job(rds_store *r, int64_t id, qml_job **job)
{
	char		key[128];
	const char *argv[2] = {"HGETALL", key};
	redisReply *reply;
	qml_status	st;
	bool		oom = false;

	*job = NULL;
	if (id <= 0)
		return QML_OK;
	job_key(r, id, key, sizeof(key));
	if ((st = qml__rds_command(r, RDS_ID_SLOT(id), 2, argv, NULL, &reply)) != QML_OK)
		return st;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0)
		*job = job_from_hash(id, reply, &oom);
	freeReplyObject(reply);
	return oom ? qml__nomem() : QML_OK;
}

qml_status
qml__rds_job_get(qml_store *store, int64_t id, qml_job **job)
{
	qml_status	st = read_job((rds_store *) store, id, job);

	if (st == QML_OK && *job == NULL)
		return qml__error(QML_ERR_NOT_FOUND, "job %lld does not exist", (long long) id);
	return st;
}

/* ---- lists ---- */

static qml_status
list_queue(rds_store *r, const char *queue, const qml_job_filter *f,
		   qml_job **out, size_t *n, size_t want)
{
	size_t		limit = *n + want;
	int			slot = qml__rds_queue_slot(queue);
	char		key[300];
	char		max[24];
	char		lim[16];
	const char *argv[7] = {"ZREVRANGEBYLEX", key, max, "-", "LIMIT", "0", lim};
	size_t		klen;
	size_t		scanned = 0;
	qml_status	st = QML_OK;

	qml__rds_base(r, slot, key, sizeof(key));
	klen = strlen(key);
	snprintf(key + klen, sizeof(key) - klen, "q:%s:all", queue);
	if (f->before_id > 0)
		snprintf(max, sizeof(max), "(%016lld", (long long) f->before_id);
	else
		strcpy(max, "+");
	snprintf(lim, sizeof(lim), "%zu", want);
	while (*n < limit && scanned < want * LIST_SCAN_FACTOR + 1000 && st == QML_OK)
	{
		redisReply *reply;
		size_t		got;

		if ((st = qml__rds_command(r, slot, 7, argv, NULL, &reply)) != QML_OK)
			break;
		got = reply->elements;
		for (size_t i = 0; i < got && *n < limit && st == QML_OK; i++)
		{
			int64_t		id = strtoll(reply->element[i]->str, NULL, 10);
			qml_job    *job;

			snprintf(max, sizeof(max), "(%s", reply->element[i]->str);
			scanned++;
			if ((st = read_job(r, id, &job)) != QML_OK || job == NULL)
				continue;
			if ((f->state >= 0 && (int) job->state != f->state) ||
				(f->method && strcmp(job->method, f->method) != 0))
			{
				qml_job_free(job);
				continue;
			}
			out[(*n)++] = job;
		}
		freeReplyObject(reply);
		if (got < want)
			break;
	}
	return st;
}

static int
cmp_job_desc(const void *a, const void *b)
{
	int64_t		x = (*(qml_job *const *) a)->id;
	int64_t		y = (*(qml_job *const *) b)->id;

	return x < y ? 1 : x > y ? -1 : 0;
}

qml_status
qml__rds_job_list(qml_store *store, const qml_job_filter *filter,
				  qml_job_list **list)
{
	rds_store  *r = (rds_store *) store;
	size_t		limit = filter->limit > 0 ? (size_t) filter->limit : 100;
	char	  **queues = NULL;
	size_t		nq = 0;
	qml_job   **jobs;
	size_t		n = 0;
	qml_status	st = QML_OK;

	if (filter->queue)
	{
		queues = calloc(1, sizeof(char *));
		if (queues == NULL || (queues[0] = qml__strdup(filter->queue)) == NULL)
		{
			free(queues);
			return qml__nomem();
		}
		nq = 1;
	}
	else if ((st = qml__rds_queues(r, &queues, &nq)) != QML_OK)
		return st;
	/* each queue's newest `limit`, then the newest `limit` of them all */
	jobs = calloc(limit * (nq ? nq : 1), sizeof(*jobs));
	if (jobs == NULL)
		st = qml__nomem();
	for (size_t i = 0; i < nq && st == QML_OK; i++)
		st = list_queue(r, queues[i], filter, jobs, &n, limit);
	for (size_t i = 0; i < nq; i++)
		free(queues[i]);
	free(queues);
	if (st == QML_OK)
	{
		qsort(jobs, n, sizeof(*jobs), cmp_job_desc);
		while (n > limit)
			qml_job_free(jobs[--n]);
		*list = calloc(1, sizeof(**list));
		if (*list == NULL)
			st = qml__nomem();
	}
	if (st != QML_OK)
	{
		for (size_t i = 0; jobs && i < n; i++)
			qml_job_free(jobs[i]);
		free(jobs);
		return st;
	}
	(*list)->jobs = jobs;
	(*list)->count = n;
	return QML_OK;
}

qml_status
qml__rds_job_events(qml_store *store, int64_t id, qml_job_event **events,
					size_t *count)
{
	rds_store  *r = (rds_store *) store;
	char		key[128];
	const char *argv[4] = {"LRANGE", key, "0", "-1"};
	redisReply *reply;
	qml_job    *job;
	qml_job_event *ev;
	qml_status	st;
	size_t		n;

	if ((st = qml__rds_job_get(store, id, &job)) != QML_OK)
		return st;
	qml_job_free(job);
	qml__rds_base(r, RDS_ID_SLOT(id), key, sizeof(key));
	n = strlen(key);
	snprintf(key + n, sizeof(key) - n, "h:%016lld", (long long) id);
	if ((st = qml__rds_command(r, RDS_ID_SLOT(id), 4, argv, NULL, &reply)) != QML_OK)
		return st;
	ev = calloc(reply->elements + 1, sizeof(*ev));
	if (ev == NULL)
	{
		freeReplyObject(reply);
		return qml__nomem();
	}
	n = 0;
	for (size_t i = 0; i < reply->elements; i++)
	{
		json_t	   *a = json_loads(reply->element[i]->str, 0, NULL);
		json_t	   *w;
		json_t	   *e;

		if (!json_is_array(a) || json_array_size(a) < 5)
		{
			json_decref(a);
			continue;
		}
		ev[n].at = (int64_t) json_number_value(json_array_get(a, 0)) * 1000;
		ev[n].from_state = (int) json_number_value(json_array_get(a, 1));
		ev[n].to_state = (qml_job_state) json_number_value(json_array_get(a, 2));
		w = json_array_get(a, 3);
		e = json_array_get(a, 4);
		ev[n].worker = json_is_string(w) && json_string_value(w)[0] ?
			qml__strdup(json_string_value(w)) : NULL;
		ev[n].error = json_is_string(e) ? qml__strdup(json_string_value(e)) : NULL;
		n++;
		json_decref(a);
	}
	freeReplyObject(reply);
	*events = ev;
	*count = n;
	return QML_OK;
}

/* ---- counts ---- */

/* a queue's COUNTS reply: 11 integers */
static qml_status
queue_counts(rds_store *r, const char *queue, long long v[11])
{
	const char *argv[1] = {queue};
	redisReply *reply;
	qml_status	st;

	st = qml__rds_evals(r, RDS_COUNTS, qml__rds_queue_slot(queue), 1, argv, &reply);
	if (st != QML_OK)
		return st;
	for (size_t i = 0; i < 11; i++)
		v[i] = i < reply->elements ? reply->element[i]->integer : 0;
	freeReplyObject(reply);
	return QML_OK;
}

qml_status
qml__rds_stats(qml_store *store, const char *queue, qml_queue_stats **stats,
			   size_t *count)
{
	rds_store  *r = (rds_store *) store;
	char	  **queues = NULL;
	size_t		nq = 0;
	qml_queue_stats *out;
	qml_status	st;

	if ((st = qml__rds_queues(r, &queues, &nq)) != QML_OK)
		return st;
	out = calloc(nq + 1, sizeof(*out));
	if (out == NULL)
		st = qml__nomem();
	*count = 0;
	for (size_t i = 0; i < nq && st == QML_OK; i++)
	{
		long long	v[11];

		if (queue && strcmp(queue, queues[i]) != 0)
			continue;
		if ((st = queue_counts(r, queues[i], v)) != QML_OK)
			break;
		out[*count].queue = queues[i];
		queues[i] = NULL;
		out[*count].paused = v[7] == 1;
		for (int s = 0; s < QML_STATE_COUNT; s++)
			out[*count].counts[s] = v[s];
		(*count)++;
	}
	for (size_t i = 0; i < nq; i++)
		free(queues[i]);
	free(queues);
	if (st != QML_OK)
	{
		qml_stats_free(out, *count);
		*count = 0;
		return st;
	}
	*stats = out;
	return QML_OK;
}

/* succeeded + failed of a queue's minutes [from, to] */
static qml_status
minute_counts(rds_store *r, const char *queue, int64_t minute, int64_t *s, int64_t *f)
{
	char		key[320];
	const char *argv[4] = {"HMGET", key, "s", "f"};
	redisReply *reply;
	qml_status	st;
	int			slot = qml__rds_queue_slot(queue);
	size_t		n;

	qml__rds_base(r, slot, key, sizeof(key));
	n = strlen(key);
	snprintf(key + n, sizeof(key) - n, "q:%s:tp:%lld", queue, (long long) minute);
	if ((st = qml__rds_command(r, slot, 4, argv, NULL, &reply)) != QML_OK)
		return st;
	*s = reply->elements > 0 && reply->element[0]->str ? strtoll(reply->element[0]->str, NULL, 10) : 0;
	*f = reply->elements > 1 && reply->element[1]->str ? strtoll(reply->element[1]->str, NULL, 10) : 0;
	freeReplyObject(reply);
	return QML_OK;
}

qml_status
qml__rds_overview(qml_store *store, qml_store_session *via QML_UNUSED,
				  qml_overview **out)
{
	rds_store  *r = (rds_store *) store;
	qml_queue_stats *stats = NULL;
	size_t		n = 0;
	qml_overview *o;
	qml_status	st;
	int64_t		now_ms = 0;
	int64_t		lag_due = -1;

	if ((st = qml__rds_stats(store, NULL, &stats, &n)) != QML_OK)
		return st;
	o = calloc(1, sizeof(*o));
	if (o == NULL || (o->queues = calloc(n + 1, sizeof(*o->queues))) == NULL)
	{
		free(o);
		qml_stats_free(stats, n);
		return qml__nomem();
	}
	for (size_t i = 0; i < n && st == QML_OK; i++)
	{
		qml_queue_info *q = &o->queues[i];
		long long	v[11];
		int64_t		s1, f1, s2, f2;

		if ((st = queue_counts(r, stats[i].queue, v)) != QML_OK)
			break;
		now_ms = v[9];
		q->queue = stats[i].queue;
		stats[i].queue = NULL;
		q->paused = stats[i].paused;
		memcpy(q->counts, stats[i].counts, sizeof(q->counts));
		q->oldest_waiting_s = v[8] >= 0 ? (double) (now_ms - v[8]) / 1000.0 : -1;
		if (v[10] >= 0 && v[10] <= now_ms && (lag_due < 0 || v[10] < lag_due))
			lag_due = v[10];
		if ((st = minute_counts(r, q->queue, now_ms / 60000, &s1, &f1)) != QML_OK ||
			(st = minute_counts(r, q->queue, now_ms / 60000 - 1, &s2, &f2)) != QML_OK)
			break;
		q->jobs_per_second = (double) (s1 + f1 + s2 + f2) /
			(60.0 + (double) (now_ms % 60000) / 1000.0);
		o->count++;
	}
	qml_stats_free(stats, n);
	if (st != QML_OK)
	{
		qml_overview_free(o);
		return st;
	}
	o->at = now_ms * 1000;
	o->scheduler_lag_s = lag_due >= 0 ? (double) (now_ms - lag_due) / 1000.0 : -1;
	*out = o;
	return QML_OK;
}

qml_status
qml__rds_throughput(qml_store *store, qml_store_session *via QML_UNUSED,
					int minutes, qml_throughput_bucket **out, size_t *count)
{
	rds_store  *r = (rds_store *) store;
	char	  **queues = NULL;
	size_t		nq = 0;
	qml_throughput_bucket *b;
	qml_status	st;
	int64_t		now_min = (int64_t) time(NULL) / 60;

	if ((st = qml__rds_queues(r, &queues, &nq)) != QML_OK)
		return st;
	b = calloc((size_t) minutes, sizeof(*b));
	if (b == NULL)
		st = qml__nomem();
	for (int m = 0; st == QML_OK && m < minutes; m++)
	{
		int64_t		minute = now_min - (minutes - 1 - m);

		b[m].at = minute * 60 * 1000000;
		for (size_t i = 0; i < nq && st == QML_OK; i++)
		{
			int64_t		s, f;

			if ((st = minute_counts(r, queues[i], minute, &s, &f)) == QML_OK)
			{
				b[m].succeeded += s;
				b[m].failed += f;
			}
		}
	}
	for (size_t i = 0; i < nq; i++)
		free(queues[i]);
	free(queues);
	if (st != QML_OK)
	{
		free(b);
		return st;
	}
	*out = b;
	*count = (size_t) minutes;
	return QML_OK;
}

/* lease holders of processing jobs, from each queue's processing set */
qml_status
qml__rds_workers(qml_store *store, qml_worker_info **out, size_t *count)
{
	rds_store  *r = (rds_store *) store;
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_job_list *list = NULL;
	qml_worker_info *w;
	size_t		n = 0;
	qml_status	st;

	f.state = QML_STATE_PROCESSING;
	f.limit = 10000;
	if ((st = qml__rds_job_list(&r->base, &f, &list)) != QML_OK)
		return st;
	w = calloc(list->count + 1, sizeof(*w));
	if (w == NULL)
	{
		qml_job_list_free(list);
		return qml__nomem();
	}
	for (size_t i = 0; i < list->count; i++)
	{
		const qml_job *j = list->jobs[i];
		size_t		k;

		if (j->locked_by == NULL)
			continue;
		for (k = 0; k < n && strcmp(w[k].worker, j->locked_by) != 0; k++)
			;
		if (k == n)
		{
			if ((w[n].worker = qml__strdup(j->locked_by)) == NULL)
				break;
			w[n++].last_seen = j->started_at;
		}
		w[k].jobs++;
		if (j->started_at > w[k].last_seen)
			w[k].last_seen = j->started_at;
	}
	qml_job_list_free(list);
	*out = w;
	*count = n;
	return QML_OK;
}
